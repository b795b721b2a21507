package nodecmd

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/reconciler"
)

func TestParseRunfileSource(t *testing.T) {
	cases := map[string]struct {
		out  string
		want reconciler.RunfileSource
		bad  bool
	}{
		"cached": {out: "cached\n", want: reconciler.RunfileSource{Cached: true}},
		"found after one": {out: "tried https://a/x.run 404\ntried https://b/x.run 200\nfound https://b/x.run\n", want: reconciler.RunfileSource{URL: "https://b/x.run",
			Tried: []reconciler.RunfileTry{{URL: "https://a/x.run", Status: "404"}, {URL: "https://b/x.run", Status: "200"}}}},
		"none":               {out: "tried https://a/x.run 404\ntried https://b/x.run 000\nnone\n", want: reconciler.RunfileSource{Tried: []reconciler.RunfileTry{{URL: "https://a/x.run", Status: "404"}, {URL: "https://b/x.run", Status: "000"}}}},
		"cut short":          {out: "tried https://a/x.run 404", bad: true},
		"empty":              {out: "", bad: true},
		"no conclusion":      {out: "tried https://a/x.run 404\n", bad: true},
		"found, then more":   {out: "found https://a/x.run\nnone\n", bad: true},
		"a stray line":       {out: "curl: (6) Could not resolve host\nnone\n", bad: true},
		"cached after tries": {out: "tried https://a/x.run 404\ncached\n", bad: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseRunfileSource(tc.out)
			if tc.bad {
				if err == nil {
					t.Errorf("accepted %q as %+v", tc.out, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunfileSourceScript runs the real script with real shells and curl
// against a local server: the node's copy wins; otherwise the first URL
// that answers 200, each tried one reported.
func TestRunfileSourceScript(t *testing.T) {
	testtool.Require(t, "curl")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/tesla/550.127.08/") {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	urls := []string{srv.URL + "/XFree86/Linux-x86_64/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run",
		srv.URL + "/tesla/550.127.08/NVIDIA-Linux-x86_64-550.127.08.run"}
	run := func(shell, path string, urls ...string) reconciler.RunfileSource {
		t.Helper()
		cmd := exec.Command(shell, "-c", runfileSourceBody, RunfileSourceName)
		cmd.Env = append(os.Environ(), "NVIDIA_VERSION=550.127.08", "NVIDIA_RUNFILE="+path, "NVIDIA_URLS="+strings.Join(urls, "\n"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		src, err := ParseRunfileSource(string(out))
		if err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		return src
	}
	for _, shell := range testtool.Shells(t) {
		src := run(shell, filepath.Join(dir, "absent.run"), urls...)
		want := reconciler.RunfileSource{URL: urls[1], Tried: []reconciler.RunfileTry{{URL: urls[0], Status: "404"}, {URL: urls[1], Status: "200"}}}
		if diff := cmp.Diff(want, src); diff != "" {
			t.Errorf("%s (-want +got):\n%s", shell, diff)
		}
		kept := filepath.Join(dir, "kept.run")
		if err := os.WriteFile(kept, []byte("runfile"), 0o755); err != nil {
			t.Fatal(err)
		}
		if src := run(shell, kept, urls...); !src.Cached {
			t.Errorf("%s: the node's copy is not used: %+v", shell, src)
		}
		// No source phoenix may use: only the node's copy counts.
		if src := run(shell, kept); !src.Cached {
			t.Errorf("%s, no URLs: the node's copy is not used: %+v", shell, src)
		}
		if src := run(shell, filepath.Join(dir, "absent.run")); src.Found() || len(src.Tried) != 0 {
			t.Errorf("%s, no URLs: %+v", shell, src)
		}
	}
}
