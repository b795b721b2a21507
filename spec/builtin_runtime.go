package spec

import (
	"regexp"
	"strings"
)

// The formats of the built-ins' runtime settings: each reaches a unit file,
// so none may hold a quote, a newline or anything systemd would expand.
var (
	listenAddress = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$`)
	hostAddress   = regexp.MustCompile(`^(\[?[0-9A-Fa-f:.]+\]?|[A-Za-z0-9.-]+)$`)
	portNumber    = regexp.MustCompile(`^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$`)
	modelName     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/@-]*$`)
	serveArgs     = regexp.MustCompile(`^[A-Za-z0-9._/=:,+-]+( [A-Za-z0-9._/=:,+-]+)*$`)
	boolWord      = regexp.MustCompile(`^(true|false)$`)
)

// ollamaRuntime keeps ollama's service running, listening where its host
// setting says: a systemd drop-in sets OLLAMA_HOST for the unit ollama's
// installer writes.
func ollamaRuntime(p Params) ([]File, []Service) {
	dropIn := File{Path: "/etc/systemd/system/ollama.service.d/phoenix.conf", Verbatim: true,
		OnChange: &OnChange{Restart: "ollama"}, origin: "the ollama feature",
		body: "# Written by phoenix from the ollama feature's settings.\n[Service]\nEnvironment=\"OLLAMA_HOST=" + p["host"] + "\"\n"}
	return []File{dropIn}, []Service{{Name: "ollama"}}
}

// vllmRuntime serves a model as vLLM's OpenAI-compatible server when the
// model setting names one: a unit running vllm serve from the virtual
// environment the install made.
func vllmRuntime(p Params) ([]File, []Service) {
	if p["model"] == "" {
		return nil, nil
	}
	exec := []string{"/opt/vllm/bin/vllm", "serve", p["model"], "--host", p["host"], "--port", p["port"]}
	if a := p["args"]; a != "" {
		exec = append(exec, strings.Fields(a)...)
	}
	unit := File{Path: UnitFile("vllm"), Verbatim: true, OnChange: &OnChange{Restart: "vllm"}, origin: "the vllm feature",
		body: "# Written by phoenix from the vllm feature's settings.\n" +
			"[Unit]\nDescription=vLLM OpenAI-compatible server (" + p["model"] + ")\nAfter=network-online.target\nWants=network-online.target\n\n" +
			"[Service]\nType=simple\nExecStart=" + strings.Join(exec, " ") + "\nRestart=on-failure\nRestartSec=10\n\n" +
			"[Install]\nWantedBy=multi-user.target\n"}
	return []File{unit}, []Service{{Name: "vllm"}}
}
