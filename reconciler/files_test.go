package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/spec"
)

// The spec set of these tests: a gateway whose config lists its backend and
// carries a token, and a backend running ollama.
const filesSpecs = `
apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: base}
spec:
  vmid: 9000
  node: pve1
  storage: local-lvm
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: llm}
spec:
  vmid: 101
  from: {template: base}
  network: [{name: eth0, ip: 10.0.0.11/24, gw: 10.0.0.1}]
  features: [ollama]
  featureConfig: {ollama: {host: "0.0.0.0:11434"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: gateway}
spec:
  vmid: 102
  from: {template: base}
  network: [{name: eth0, ip: 10.0.0.10/24, gw: 10.0.0.1}]
  dependsOn: [llm]
  files:
  - path: /etc/gateway/backends.conf
    mode: "0600"
    owner: www-data
    secrets: {token: {env: PHOENIX_TEST_GATEWAY_TOKEN}}
    content: |
      listen {{ .Guest.IP }}
      {{ range .Deps }}backend {{ .Name }} {{ .IP }}:{{ index .Params.ollama "host" | printf "%s" }}
      {{ end }}token {{ .Secrets.token }}
      llm-vmid {{ (guest "llm").VMID }}
`

func secretOf(v string) SecretReader {
	return func(spec.Secret) (string, error) { return v, nil }
}

func TestFileRendersFactsOfGuestAndDependencies(t *testing.T) {
	res := resolve(t, filesSpecs)
	gw, _ := res.Guest("gateway")
	files, problems := guestFiles(res, gw, secretOf("s3cret"))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if len(files) != 1 {
		t.Fatalf("files: %+v", files)
	}
	want := "listen 10.0.0.10\nbackend llm 10.0.0.11:0.0.0.0:11434\ntoken s3cret\nllm-vmid 101\n"
	f := files[0]
	if string(f.Content) != want {
		t.Errorf("content:\n%s\nwant:\n%s", f.Content, want)
	}
	sum := sha256.Sum256([]byte(want))
	if f.Digest != hex.EncodeToString(sum[:]) || f.Mode != 0o600 || f.User != "www-data" || f.Group != "root" || !f.Secret {
		t.Errorf("file: digest %s mode %o owner %s:%s secret %v", f.Digest, f.Mode, f.User, f.Group, f.Secret)
	}
}

// A secret never reaches the plan: the plan shows a digest, and a missing
// secret names where it was looked for, not a value.
func TestFileSecretsStayOutOfThePlan(t *testing.T) {
	res := resolve(t, filesSpecs)
	obs := converged(res, "")
	delete(obs.Guests, 102)
	p := MakePlan(res, obs, PlanOptions{Secret: secretOf("hunter2-very-secret")})
	var text, js strings.Builder
	if err := p.WriteText(&text, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{text.String(), js.String()} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("the plan shows the secret:\n%s", out)
		}
	}
	if !strings.Contains(text.String(), "file /etc/gateway/backends.conf (sha256:") {
		t.Errorf("the plan does not show the file's digest:\n%s", text.String())
	}

	p = MakePlan(res, obs, PlanOptions{Secret: func(s spec.Secret) (string, error) {
		return "", errors.New("environment variable " + s.Env + " is not set")
	}})
	g, _ := p.Guest("gateway")
	if len(g.Errors) != 1 || !strings.Contains(g.Errors[0].Message, "secret token: environment variable PHOENIX_TEST_GATEWAY_TOKEN is not set") {
		t.Errorf("errors: %+v", g.Errors)
	}
}

func TestReadSecret(t *testing.T) {
	t.Setenv("PHOENIX_TEST_SECRET", "from-env")
	if v, err := ReadSecret(spec.Secret{Env: "PHOENIX_TEST_SECRET"}); err != nil || v != "from-env" {
		t.Errorf("env: %q, %v", v, err)
	}
	if _, err := ReadSecret(spec.Secret{Env: "PHOENIX_TEST_SECRET_UNSET"}); err == nil || !strings.Contains(err.Error(), "PHOENIX_TEST_SECRET_UNSET is not set") {
		t.Errorf("unset env: %v", err)
	}
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadSecret(spec.Secret{File: p}); err != nil || v != "from-file" {
		t.Errorf("file: %q, %v", v, err)
	}
}

// changesOf lists a guest's changes as "action what: reason".
func changesOf(t *testing.T, p *Plan, name string) []string {
	t.Helper()
	g, ok := p.Guest(name)
	if !ok {
		t.Fatalf("no plan for %s", name)
	}
	if len(g.Errors) > 0 {
		t.Fatalf("%s: %+v", name, g.Errors)
	}
	var out []string
	for _, c := range g.Changes {
		out = append(out, stepName(c)+": "+c.Reason)
	}
	return out
}

func TestFilesConverge(t *testing.T) {
	res := resolve(t, filesSpecs)
	opts := PlanOptions{Secret: secretOf("s3cret")}
	base := func() *Observed {
		obs := converged(res, "")
		// converged() renders with its own secret; this test's is another.
		for _, g := range obs.Guests {
			if g.Inside != nil {
				r := specAt(res, g.VMID)
				files, _ := guestFiles(res, r, opts.Secret)
				for _, f := range files {
					g.State.Files[f.Path] = recordDigest(f.Digest)
					o := g.Inside.Files[f.Path]
					o.Digest = f.Digest
					g.Inside.Files[f.Path] = o
				}
			}
		}
		return obs
	}
	if p := MakePlan(res, base(), opts); p.HasChanges() {
		t.Fatalf("a converged cluster plans changes: %v", brief(p))
	}

	t.Run("changed inside the guest", func(t *testing.T) {
		obs := base()
		f := obs.Guests[102].Inside.Files["/etc/gateway/backends.conf"]
		f.Digest = strings.Repeat("ab", 32)
		obs.Guests[102].Inside.Files["/etc/gateway/backends.conf"] = f
		got := changesOf(t, MakePlan(res, obs, opts), "gateway")
		if len(got) != 1 || !strings.HasPrefix(got[0], "file /etc/gateway/backends.conf: changed inside the guest: sha256:abababababababab") {
			t.Errorf("changes: %q", got)
		}
	})
	t.Run("mode and owner", func(t *testing.T) {
		obs := base()
		f := obs.Guests[102].Inside.Files["/etc/gateway/backends.conf"]
		f.Mode = 0o644
		obs.Guests[102].Inside.Files["/etc/gateway/backends.conf"] = f
		if got := changesOf(t, MakePlan(res, obs, opts), "gateway"); len(got) != 1 || !strings.HasSuffix(got[0], "mode 0644 -> 0600") {
			t.Errorf("changes: %q", got)
		}
		obs = base()
		f = obs.Guests[102].Inside.Files["/etc/gateway/backends.conf"]
		f.IDs, f.Names = "0:0", "root:root"
		obs.Guests[102].Inside.Files["/etc/gateway/backends.conf"] = f
		if got := changesOf(t, MakePlan(res, obs, opts), "gateway"); len(got) != 1 || !strings.HasSuffix(got[0], "owner root:root -> www-data:root") {
			t.Errorf("changes: %q", got)
		}
	})
	t.Run("a changed setting rewrites and restarts, never reinstalls", func(t *testing.T) {
		edited := resolve(t, strings.Replace(filesSpecs, `host: "0.0.0.0:11434"`, `host: "10.0.0.11:11434"`, 1))
		got := changesOf(t, MakePlan(edited, base(), opts), "llm")
		want := []string{"file /etc/systemd/system/ollama.service.d/phoenix.conf", "service ollama"}
		if len(got) != 2 || !strings.HasPrefix(got[0], want[0]+": content differs") || !strings.HasPrefix(got[1], want[1]+": a file it reads changed") {
			t.Errorf("changes: %q, want %q", got, want)
		}
		// The gateway renders the llm's host: its file changes too.
		if got := changesOf(t, MakePlan(edited, base(), opts), "gateway"); len(got) != 1 || !strings.HasPrefix(got[0], "file /etc/gateway/backends.conf: content differs") {
			t.Errorf("gateway: %q", got)
		}
	})
	t.Run("a restart the record still asks for", func(t *testing.T) {
		obs := base()
		obs.Guests[101].State.Restarts = []string{"restart ollama"}
		got := changesOf(t, MakePlan(res, obs, opts), "llm")
		if len(got) != 1 || got[0] != "service ollama: a file it reads changed" {
			t.Errorf("changes: %q", got)
		}
	})
	t.Run("a failed service", func(t *testing.T) {
		obs := base()
		obs.Guests[101].Inside.Services["ollama"] = ObservedService{Enabled: "disabled", Active: "failed"}
		got := changesOf(t, MakePlan(res, obs, opts), "llm")
		if len(got) != 1 || got[0] != "service ollama: disabled -> enabled; failed -> running" {
			t.Errorf("changes: %q", got)
		}
	})
	t.Run("a stopped guest is compared through its records", func(t *testing.T) {
		stopped := resolve(t, strings.Replace(filesSpecs, "  dependsOn: [llm]\n", "  dependsOn: [llm]\n  state: stopped\n", 1))
		obs := base()
		obs.Guests[102].Status, obs.Guests[102].Inside = "stopped", nil
		if p := MakePlan(stopped, obs, opts); p.HasChanges() {
			t.Fatalf("changes: %v", brief(p))
		}
		obs.Guests[102].State.Files["/etc/gateway/backends.conf"] = "0000000000000000"
		got := changesOf(t, MakePlan(stopped, obs, opts), "gateway")
		if len(got) != 3 || got[0] != "start: to write its files" || !strings.HasPrefix(got[1], "file /etc/gateway/backends.conf: content changed") || !strings.HasPrefix(got[2], "stop") {
			t.Errorf("changes: %q", got)
		}
	})
	t.Run("a failed service is not Ready", func(t *testing.T) {
		obs := base()
		obs.Guests[101].Inside.Services["ollama"] = ObservedService{Enabled: "enabled", Active: "failed"}
		for _, st := range Status(res, obs, MakePlan(res, obs, opts)) {
			if st.Name != "llm" {
				continue
			}
			if st.Ready() {
				t.Errorf("llm is Ready with its service failed: %+v", st.Conditions)
			}
			for _, c := range st.Conditions {
				if c.Type == CondFeaturesReady && (c.Status || !strings.Contains(c.Message, "service ollama: failed -> running")) {
					t.Errorf("FeaturesReady: %+v", c)
				}
			}
		}
	})
	t.Run("inspection failed", func(t *testing.T) {
		obs := base()
		obs.Guests[101].Inside, obs.Guests[101].InsideErr = nil, errors.New("pct exec: 255")
		g, _ := MakePlan(res, obs, opts).Guest("llm")
		if len(g.Errors) != 1 || !strings.Contains(g.Errors[0].Message, "reading its files and services failed: pct exec: 255") {
			t.Errorf("errors: %+v", g.Errors)
		}
	})
}

func TestParseInspect(t *testing.T) {
	sum := strings.Repeat("0a", 32)
	out := "file /etc/a " + sum + " 600 0:0 root:root\nfile /etc/b -\nservice ollama enabled active\n"
	in, err := ParseInspect(out, []string{"/etc/a", "/etc/b"}, []string{"ollama"})
	if err != nil {
		t.Fatal(err)
	}
	if a := in.Files["/etc/a"]; a.Digest != sum || a.Mode != 0o600 || !a.ownerMatches("root", "root") || !a.ownerMatches("0", "0") || a.ownerMatches("ollama", "root") {
		t.Errorf("a: %+v", a)
	}
	if !in.Files["/etc/b"].Missing || in.Services["ollama"] != (ObservedService{Enabled: "enabled", Active: "active"}) {
		t.Errorf("inside: %+v", in)
	}
	for _, bad := range []struct{ out, want string }{
		{"file /etc/a nothex 600 0:0 root:root\n", "not a SHA-256 digest"},
		{"file /etc/a " + sum + " 999 0:0 root:root\n", "not a file mode"},
		{"file /etc/a " + sum + " 600 0 root\n", "want UID:GID USER:GROUP"},
		{"service ollama enabled\n", "want service NAME ENABLED ACTIVE"},
		{"hello\n", "not a file or service line"},
		{"file /etc/b -\nfile /etc/b -\n", "file listed twice"},
		{"", "said nothing of file /etc/a"},
	} {
		if _, err := ParseInspect(bad.out, []string{"/etc/a"}, nil); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.out, err, bad.want)
		}
	}
}

func FuzzParseInspect(f *testing.F) {
	f.Add("file /etc/a "+strings.Repeat("0a", 32)+" 600 0:0 root:root\nfile /etc/b -\nservice x enabled active\n", "/etc/a")
	f.Add("service x\n", "")
	f.Fuzz(func(t *testing.T, out, path string) {
		in, err := ParseInspect(out, strings.Fields(path), nil)
		if err == nil && in == nil {
			t.Fatal("no error and no result")
		}
	})
}
