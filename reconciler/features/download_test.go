package features

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/spec"
)

func TestRunfileURLs(t *testing.T) {
	const v = "550.127.08"
	consumer := "https://download.nvidia.com/XFree86/Linux-x86_64/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"
	datacenter := "https://us.download.nvidia.com/tesla/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"
	mirror := "https://mirror.lab.example/NVIDIA-Linux-x86_64-550.127.08.run"
	cases := map[string]struct {
		s             spec.NVIDIASettings
		want, skipped []string
	}{
		"defaults":                 {want: []string{consumer, datacenter}},
		"runfileURL first":         {s: spec.NVIDIASettings{RunfileURL: "https://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run"}, want: []string{mirror, consumer, datacenter}},
		"runfileURLs replace them": {s: spec.NVIDIASettings{RunfileURLs: []string{"https://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run"}}, want: []string{mirror}},
		"each once": {s: spec.NVIDIASettings{RunfileURL: DefaultRunfileURLs[1]},
			want: []string{datacenter, consumer}},
		"plain http with the version's digest": {
			s:    spec.NVIDIASettings{RunfileURLs: []string{"http://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run"}, SHA256: map[string]string{v: strings.Repeat("a", 64)}},
			want: []string{"http://mirror.lab.example/NVIDIA-Linux-x86_64-550.127.08.run"}},
		"plain http without the version's digest": {
			s: spec.NVIDIASettings{RunfileURL: "HTTP://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run",
				SHA256: map[string]string{"580.76.05": strings.Repeat("a", 64)}},
			want: []string{consumer, datacenter}, skipped: []string{"HTTP://mirror.lab.example/NVIDIA-Linux-x86_64-550.127.08.run"}},
		"nothing left": {
			s:    spec.NVIDIASettings{RunfileURLs: []string{"http://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run"}},
			want: nil, skipped: []string{"http://mirror.lab.example/NVIDIA-Linux-x86_64-550.127.08.run"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, RunfileURLs(tc.s, v)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			use, skipped := RunfileSources(tc.s, v)
			if diff := cmp.Diff(tc.want, use); diff != "" {
				t.Errorf("RunfileSources' use (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.skipped, skipped); diff != "" {
				t.Errorf("RunfileSources' skipped (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDownloadTriesEachSource runs the real download script with real shells
// and curl against a local HTTPS server that has the runfile under tesla/
// only, and a plain-http one that has it too.
func TestDownloadTriesEachSource(t *testing.T) {
	testtool.Require(t, "curl")
	testtool.Require(t, "sha256sum")
	body := []byte("#!/bin/sh\necho runfile\n")
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	var plainRequests atomic.Int32
	handler := func(plain bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if plain {
				plainRequests.Add(1)
			}
			if strings.HasPrefix(r.URL.Path, "/tesla/") {
				_, _ = w.Write(body)
				return
			}
			if to, ok := strings.CutPrefix(r.URL.Path, "/to-plain/"); ok {
				http.Redirect(w, r, "http://"+to, http.StatusFound)
				return
			}
			http.NotFound(w, r)
		}
	}
	srv := httptest.NewTLSServer(handler(false))
	defer srv.Close()
	plain := httptest.NewServer(handler(true))
	defer plain.Close()
	// curl trusts the test server's certificate through CURL_CA_BUNDLE.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	consumer := srv.URL + "/XFree86/Linux-x86_64/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"
	datacenter := srv.URL + "/tesla/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"
	plainDatacenter := plain.URL + "/tesla/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"

	run := func(t *testing.T, shell, phase, runfile string, env ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(shell, "-c", prelude+script("nvidia-driver/download"), "nvidia-driver/download", phase)
		cmd.Env = append(os.Environ(), append([]string{"NVIDIA_VERSION=550.127.08", "NVIDIA_RUNFILE=" + runfile, "CURL_CA_BUNDLE=" + caFile}, env...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, shell := range []string{"sh", "bash"} {
		testtool.Require(t, shell)
		t.Run(shell, func(t *testing.T) {
			dir := t.TempDir()
			runfile := filepath.Join(dir, "NVIDIA-Linux-x86_64-550.127.08.run")
			urls := "NVIDIA_URLS=" + consumer + "\n" + datacenter
			if out, err := run(t, shell, "check", runfile, urls); err == nil {
				t.Fatalf("check before the download passed: %s", out)
			}
			if out, err := run(t, shell, "apply", runfile, urls, "NVIDIA_SHA256="+digest); err != nil {
				t.Fatalf("apply: %v\n%s", err, out)
			}
			got, err := os.ReadFile(runfile)
			if err != nil || string(got) != string(body) {
				t.Fatalf("runfile %q, %v", got, err)
			}
			if fi, _ := os.Stat(runfile); fi.Mode().Perm() != 0o755 {
				t.Errorf("runfile mode %v", fi.Mode())
			}
			if out, err := run(t, shell, "check", runfile, urls, "NVIDIA_SHA256="+digest); err != nil {
				t.Errorf("check after the download: %v\n%s", err, out)
			}

			// A wrong digest: nothing kept, the source named.
			other := filepath.Join(dir, "other.run")
			out, err := run(t, shell, "apply", other, urls, "NVIDIA_SHA256="+strings.Repeat("0", 64))
			if err == nil || !strings.Contains(out, "sha256 of "+datacenter+" does not match") {
				t.Errorf("apply with a wrong digest: %v\n%s", err, out)
			}
			// No source has it: each is named with curl's reason.
			out, err = run(t, shell, "apply", other, "NVIDIA_URLS="+consumer)
			if err == nil || !strings.Contains(out, "no source has the runfile of NVIDIA driver 550.127.08: tried "+consumer+" (curl: (22)") {
				t.Errorf("apply without a source: %v\n%s", err, out)
			}
			// NVIDIA_URL alone still works.
			if out, err := run(t, shell, "apply", other, "NVIDIA_URL="+datacenter); err != nil {
				t.Errorf("apply with NVIDIA_URL: %v\n%s", err, out)
			}
			// Plain http without a digest is not even asked: anyone on the
			// path could answer it with a root shell for every container.
			plainRequests.Store(0)
			unchecked := filepath.Join(dir, "unchecked.run")
			out, err = run(t, shell, "apply", unchecked, "NVIDIA_URLS="+plainDatacenter+"\nfile:///etc/shadow")
			if err == nil || !strings.Contains(out, "no source has the runfile of NVIDIA driver 550.127.08: tried "+
				plainDatacenter+" (plain http, and no NVIDIA_SHA256 to check it with: not used), file:///etc/shadow (neither https nor http: not used)") {
				t.Errorf("apply from plain http without a digest: %v\n%s", err, out)
			}
			if n := plainRequests.Load(); n != 0 {
				t.Errorf("the plain-http source was asked %d times", n)
			}
			if _, err := os.Stat(unchecked); err == nil {
				t.Error("a runfile from plain http without a digest was kept")
			}
			// Nor through a redirect from https.
			redirected := srv.URL + "/to-plain/" + strings.TrimPrefix(plainDatacenter, "http://")
			out, err = run(t, shell, "apply", unchecked, "NVIDIA_URLS="+redirected)
			if err == nil || plainRequests.Load() != 0 {
				t.Errorf("apply redirected to plain http without a digest: %v, %d requests\n%s", err, plainRequests.Load(), out)
			}
			if out, err := run(t, shell, "apply", unchecked, "NVIDIA_URLS="+redirected, "NVIDIA_SHA256="+digest); err != nil {
				t.Errorf("apply redirected to plain http with a digest: %v\n%s", err, out)
			}
			// With the digest, plain http is as good as any source.
			if out, err := run(t, shell, "apply", unchecked, "NVIDIA_URLS="+plainDatacenter, "NVIDIA_SHA256="+digest); err != nil {
				t.Errorf("apply from plain http with a digest: %v\n%s", err, out)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".part") {
					t.Errorf("left %s behind", e.Name())
				}
			}
		})
	}
}
