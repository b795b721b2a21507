package features

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
		s    spec.NVIDIASettings
		want []string
	}{
		"defaults":                 {want: []string{consumer, datacenter}},
		"runfileURL first":         {s: spec.NVIDIASettings{RunfileURL: "https://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run"}, want: []string{mirror, consumer, datacenter}},
		"runfileURLs replace them": {s: spec.NVIDIASettings{RunfileURLs: []string{"https://mirror.lab.example/NVIDIA-Linux-x86_64-{version}.run"}}, want: []string{mirror}},
		"each once": {s: spec.NVIDIASettings{RunfileURL: DefaultRunfileURLs[1]},
			want: []string{datacenter, consumer}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, RunfileURLs(tc.s, v)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestDownloadTriesEachSource runs the real download script with real shells
// and curl against a local server that has the runfile under tesla/ only.
func TestDownloadTriesEachSource(t *testing.T) {
	testtool.Require(t, "curl")
	testtool.Require(t, "sha256sum")
	body := []byte("#!/bin/sh\necho runfile\n")
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/tesla/") {
			_, _ = w.Write(body)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	consumer := srv.URL + "/XFree86/Linux-x86_64/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"
	datacenter := srv.URL + "/tesla/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"

	run := func(t *testing.T, shell, phase, runfile string, env ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(shell, "-c", script("nvidia-driver/download"), "nvidia-driver/download", phase)
		cmd.Env = append(os.Environ(), append([]string{"NVIDIA_VERSION=550.127.08", "NVIDIA_RUNFILE=" + runfile}, env...)...)
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
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".part") {
					t.Errorf("left %s behind", e.Name())
				}
			}
		})
	}
}
