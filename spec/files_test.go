package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFileValidation(t *testing.T) {
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"valid files and services": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: gateway}
spec:
  settings: {listen: "80"}
  steps: [{name: nginx, check: "command -v nginx", apply: "apt-get install -y nginx"}]
  services: [{name: nginx}]
  files:
  - {path: /etc/nginx/conf.d/gw.conf, content: "listen {{ .Params.listen }};", onChange: {reload: nginx}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  features: [gateway]
  files:
  - {path: /etc/app.conf, mode: "0600", owner: "app:1000", content: "name {{ .Guest.Name }}", secrets: {token: {env: APP_TOKEN}}}
`,
		},
		"bad files": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  files:
  - {path: etc/relative, content: x}
  - {path: /etc/a, content: x, source: a.conf}
  - {path: /etc/b, content: x, mode: "888"}
  - {path: /etc/c, content: x, owner: "Bad User"}
  - {path: /etc/d, content: "{{ .Guest.Name "}
  - {path: /etc/e, content: x, secrets: {t: {env: A, file: /x}}}
  - {path: /etc/f, content: x, secrets: {t: {file: relative}}}
  - {path: /etc/g, content: x, onChange: {restart: a, reload: b}}
  - {path: /etc/a, content: y}
  - {path: /proc/sys/x, content: y}
`,
			want: []problem{
				{18, "spec.files[0].path", "want an absolute, clean path"},
				{19, "spec.files[1]", "give source or content, not both"},
				{20, "spec.files[2].mode", "want octal permission bits"},
				{21, "spec.files[3].owner", "want user or user:group"},
				{22, "spec.files[4]", "is not a valid template"},
				{23, "spec.files[5].secrets.t", "give env (an environment variable) or file"},
				{24, "spec.files[6].secrets.t.file", "absolute path, outside the spec repository"},
				{25, "spec.files[7].onChange", "give restart or reload, one service"},
				{26, "spec.files[8].path", "/etc/a is also written by spec.files[1]"},
				{27, "spec.files[9].path", "is not a file phoenix can keep"},
			},
		},
		"a feature's files restart only its own services": {
			src: header + `---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: gateway}
spec:
  config: {port: "80"}
  settings: {port: "81", Bad-Name: x}
  steps: [{name: nginx, check: "true", apply: "true"}]
  services: [{name: nginx.service}, {name: web, state: paused}]
  files:
  - {path: /etc/gw.conf, content: x, onChange: {restart: apache2}}
`,
			want: []problem{
				{16, "spec.settings.Bad-Name", "parameter names reach the scripts as environment variables"},
				{16, "spec.settings.port", "also in config"},
				{18, "spec.services[0].name", "is not a service name"},
				{18, "spec.services[1].state", "want running or stopped"},
				{20, "spec.files[0].onChange", "apache2 is not a service this feature declares"},
			},
		},
		"a template keeps no files of its own": {
			src:  header + "  files: [{path: /etc/x, content: y}]\n",
			want: []problem{{10, "spec.files", "a Template keeps no files of its own"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// A source is read relative to its spec file and may not leave the
// repository; a secret file may not be inside it.
func TestFileSources(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "guests"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("base.yaml", header)
	write("gw.conf", "backend {{ .Guest.Name }}\n")
	write("guests/app.yaml", `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  files:
  - {path: /etc/gw.conf, source: ../gw.conf}
`)
	res, err := LoadResolved(root)
	if err != nil {
		t.Fatal(err)
	}
	app, _ := res.Guest("app")
	if len(app.Files) != 1 || app.Files[0].Body() != "backend {{ .Guest.Name }}\n" || app.Files[0].Origin() != filepath.Join(root, "gw.conf") {
		t.Fatalf("files: %+v", app.Files)
	}

	write("guests/app.yaml", `apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: app}
spec:
  vmid: 101
  from: {template: base}
  files:
  - {path: /etc/a, source: ../../outside.conf}
  - {path: /etc/b, source: missing.conf}
  - {path: /etc/c, content: x, secrets: {t: {file: `+filepath.Join(root, "token")+`}}}
`)
	_, err = LoadResolved(root)
	for _, want := range []string{`"../../outside.conf" leaves the spec repository`, "missing.conf: no such file", "is inside the spec repository"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

func TestBuiltinRuntimeSettings(t *testing.T) {
	res := resolveSrc(t, header+`---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: llm}
spec:
  vmid: 101
  from: {template: base}
  features: [ollama]
  featureConfig: {ollama: {host: "0.0.0.0:11434"}}
`)
	llm, _ := res.Guest("llm")
	if _, recorded := llm.Params[FeatureOllama]["host"]; recorded || llm.Runtime[FeatureOllama]["host"] != "0.0.0.0:11434" {
		t.Errorf("params %v runtime %v: a setting is no install parameter", llm.Params[FeatureOllama], llm.Runtime[FeatureOllama])
	}
	def, _ := res.Catalog.Lookup(FeatureVLLM)
	if files, services := def.FeatureFiles(Params{"port": "8000", "host": "0.0.0.0"}); files != nil || services != nil {
		t.Errorf("vllm without a model serves: %v %v", files, services)
	}
	files, services := def.FeatureFiles(Params{"model": "Qwen/Qwen2.5-7B-Instruct", "port": "8001", "host": "0.0.0.0", "args": "--max-model-len 8192"})
	if len(files) != 1 || len(services) != 1 || services[0].Name != "vllm" ||
		!strings.Contains(files[0].Body(), "ExecStart=/opt/vllm/bin/vllm serve Qwen/Qwen2.5-7B-Instruct --host 0.0.0.0 --port 8001 --max-model-len 8192\n") {
		t.Errorf("vllm: %+v %+v", files, services)
	}
	for _, bad := range []string{`{vllm: {port: "70000"}}`, `{vllm: {args: "--x 'quoted'"}}`, `{ollama: {host: "nohost"}}`} {
		feature := "vllm"
		if strings.Contains(bad, "ollama") {
			feature = "ollama"
		}
		src := header + "---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: x}\nspec:\n  vmid: 101\n  from: {template: base}\n  features: [" + feature + "]\n  featureConfig: " + bad + "\n"
		if feature == "vllm" {
			src = strings.Replace(src, "features: [vllm]", "features: [vllm]\n  gpus: all", 1)
		}
		if _, err := Parse("test.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "malformed value") {
			t.Errorf("%s: %v, want a malformed value", bad, err)
		}
	}
}

func resolveSrc(t *testing.T, src string) *Resolution {
	t.Helper()
	set, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Resolve(set)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestResolutionAt: a guest is found by its VMID and by its renewal VMIDs,
// through the index Resolve builds and, for a Resolution made by hand,
// by a walk of its guests.
func TestResolutionAt(t *testing.T) {
	res := resolveSrc(t, header+"  renewal: {vmids: [9001]}\n---\napiVersion: phoenix/v1alpha1\nkind: Container\nmetadata: {name: app}\nspec: {vmid: 101, from: {template: base}}\n")
	byHand := &Resolution{Guests: res.Guests}
	for _, r := range []*Resolution{res, byHand} {
		for vmid, want := range map[int]string{9000: "base", 9001: "base", 101: "app"} {
			if g, ok := r.At(vmid); !ok || g.Name != want {
				t.Errorf("At(%d) = %v, %v; want %s", vmid, g, ok, want)
			}
		}
		if g, ok := r.At(102); ok {
			t.Errorf("At(102) = %s", g.Name)
		}
	}
}
