package standin

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html"
	"slices"
	"strings"
)

// VLLMVersions are the vllm stand-in wheels the index serves.
var VLLMVersions = []string{"0.10.2", "0.11.0"}

const torchVersion = "2.8.0"

// buildPyPI serves a simple index (PEP 503) with stand-in wheels of vllm
// and of the torch it imports, whose cuda.is_available() asks nvidia-smi.
func (s *Sources) buildPyPI() error {
	wheels := map[string][]string{} // project -> wheel file names
	add := func(project, version string, files map[string]string, requires []string) error {
		name, data, err := wheel(project, version, files, requires)
		if err != nil {
			return err
		}
		s.files["/pypi/packages/"+name] = data
		wheels[project] = append(wheels[project], name)
		return nil
	}
	for _, v := range VLLMVersions {
		if err := add("vllm", v, map[string]string{"vllm/__init__.py": `"""vllm: a stand-in made by phoenix's tests, not vLLM."""
import torch  # vLLM runs on torch

__version__ = "` + v + `"
STANDIN = "phoenix stand-in, not vLLM"
`, "vllm/cli.py": vllmCLI, "vllm-" + v + ".dist-info/entry_points.txt": "[console_scripts]\nvllm = vllm.cli:main\n"}, []string{"torch"}); err != nil {
			return err
		}
	}
	if err := add("torch", torchVersion, map[string]string{"torch/__init__.py": `"""torch: a stand-in made by phoenix's tests, not PyTorch."""
import subprocess as _subprocess

__version__ = "` + torchVersion + `+phoenix.standin"


class cuda:
    @staticmethod
    def is_available():
        """A CUDA device is there when nvidia-smi reaches it."""
        try:
            return _subprocess.run(["nvidia-smi", "-L"], stdout=_subprocess.DEVNULL,
                                   stderr=_subprocess.DEVNULL).returncode == 0
        except OSError:
            return False
`}, nil); err != nil {
		return err
	}
	var root strings.Builder
	root.WriteString("<!DOCTYPE html>\n<html><body>\n")
	for _, project := range []string{"torch", "vllm"} {
		fmt.Fprintf(&root, "<a href=\"%s/\">%s</a>\n", project, project)
		var page strings.Builder
		page.WriteString("<!DOCTYPE html>\n<html><body>\n")
		names := slices.Sorted(slices.Values(wheels[project]))
		for _, n := range names {
			sum := sha256.Sum256(s.files["/pypi/packages/"+n])
			fmt.Fprintf(&page, "<a href=\"../../packages/%s#sha256=%s\">%s</a>\n", html.EscapeString(n), hex.EncodeToString(sum[:]), html.EscapeString(n))
		}
		page.WriteString("</body></html>\n")
		s.files["/pypi/simple/"+project+"/index.html"] = []byte(page.String())
	}
	root.WriteString("</body></html>\n")
	s.files["/pypi/simple/index.html"] = []byte(root.String())
	return nil
}

// wheel builds a pure-Python wheel.
func wheel(project, version string, files map[string]string, requires []string) (string, []byte, error) {
	distInfo := project + "-" + version + ".dist-info"
	meta := "Metadata-Version: 2.1\nName: " + project + "\nVersion: " + version +
		"\nSummary: phoenix stand-in, not the real " + project + "\n"
	for _, r := range requires {
		meta += "Requires-Dist: " + r + "\n"
	}
	all := map[string]string{
		distInfo + "/METADATA": meta,
		distInfo + "/WHEEL":    "Wheel-Version: 1.0\nGenerator: phoenix-standin\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
	}
	for k, v := range files {
		all[k] = v
	}
	var record strings.Builder
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range all {
			if !yield(k) {
				return
			}
		}
	}) {
		w, err := zw.Create(name)
		if err != nil {
			return "", nil, err
		}
		if _, err := w.Write([]byte(all[name])); err != nil {
			return "", nil, err
		}
		sum := sha256.Sum256([]byte(all[name]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", name, base64.RawURLEncoding.EncodeToString(sum[:]), len(all[name]))
	}
	record.WriteString(distInfo + "/RECORD,,\n")
	w, err := zw.Create(distInfo + "/RECORD")
	if err != nil {
		return "", nil, err
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		return "", nil, err
	}
	if err := zw.Close(); err != nil {
		return "", nil, err
	}
	return project + "-" + version + "-py3-none-any.whl", b.Bytes(), nil
}

// vllmCLI is the stand-in's vllm command: vllm serve MODEL answers the
// OpenAI API's model listing (GET /v1/models) and /health on --host and
// --port, as vLLM's OpenAI-compatible server does, serving no model; it
// refuses to start without a CUDA device, as vLLM does.
const vllmCLI = `"""vllm's command line: a stand-in made by phoenix's tests, not vLLM."""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


def main(argv=None):
    parser = argparse.ArgumentParser(prog="vllm")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("model")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name", default=None)
    args, _ = parser.parse_known_args(argv)
    if not torch.cuda.is_available():
        print("RuntimeError: No CUDA GPUs are available", file=sys.stderr)
        return 1
    name = args.served_model_name or args.model
    listing = json.dumps({"object": "list", "data": [
        {"id": name, "object": "model", "owned_by": "vllm", "root": args.model}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/v1/models":
                body, kind = listing, "application/json"
            elif self.path == "/health":
                body, kind = b"", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    print("INFO: serving %s on http://%s:%d (phoenix stand-in)" % (name, args.host, args.port), flush=True)
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
`
