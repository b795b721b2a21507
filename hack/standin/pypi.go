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
`}, []string{"torch"}); err != nil {
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
