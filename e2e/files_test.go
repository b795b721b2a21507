package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
)

// fileSpecs: a gateway feature with a unit file, a config rendered from its
// settings and its dependency's facts, and a container with a secret of its
// own; the llm container runs ollama listening on every interface.
const fileSpecs = `apiVersion: phoenix/v1alpha1
kind: Template
metadata: {name: fbase}
spec:
  vmid: 940
  from: {ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}
  features: [base]
---
apiVersion: phoenix/v1alpha1
kind: Feature
metadata: {name: gateway}
spec:
  requires: [base]
  settings: {listen: "80"}
  steps:
    - {name: install, check: "command -v gatewayd", apply: "apt-get install -y gatewayd", verify: "gatewayd --version"}
  services: [{name: gateway}]
  files:
    - path: /etc/systemd/system/gateway.service
      verbatim: true
      content: |
        [Service]
        ExecStart=/usr/bin/gatewayd -c /etc/gateway/gateway.conf
        [Install]
        WantedBy=multi-user.target
    - path: /etc/gateway/gateway.conf
      onChange: {restart: gateway}
      content: |
        listen {{ .Guest.IP }}:{{ .Params.listen }}
        {{ range .Deps }}backend {{ .Name }} {{ .IP }} {{ index .Params.ollama "host" }}
        {{ end }}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: fllm}
spec:
  vmid: 941
  from: {template: fbase}
  network: [{name: eth0, bridge: vmbr0, ip: 10.0.0.41/24, gw: 10.0.0.1}]
  features: [ollama]
  featureConfig: {ollama: {host: "0.0.0.0:11434"}}
---
apiVersion: phoenix/v1alpha1
kind: Container
metadata: {name: fgw}
spec:
  vmid: 942
  from: {template: fbase}
  network: [{name: eth0, bridge: vmbr0, ip: 10.0.0.42/24, gw: 10.0.0.1}]
  dependsOn: [fllm]
  features: [gateway]
  files:
    - path: /etc/gateway/token
      mode: "0600"
      owner: "33:33"
      secrets: {token: {env: PHOENIX_E2E_GATEWAY_TOKEN}}
      content: "{{ .Secrets.token }}"
`

// TestFilesAndServicesConverge: files are rendered with the facts of their
// guest and its dependencies, pushed, and kept at their content; a secret
// never reaches the plan or the journal; services are enabled and running; a
// file changed inside the guest is written again; a changed setting rewrites
// the file and restarts its service without installing anything again.
func TestFilesAndServicesConverge(t *testing.T) {
	t.Setenv("PHOENIX_E2E_GATEWAY_TOKEN", "hunter2-e2e-token")
	r := newRig(t, nil)
	r.res = withCluster(t, "files.yaml", fileSpecs)

	_, plan := r.plan(reconciler.PlanOptions{})
	var text strings.Builder
	if err := plan.WriteText(&text, reconciler.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"file /etc/gateway/gateway.conf (sha256:", "file /etc/gateway/token (sha256:",
		"file /etc/systemd/system/ollama.service.d/phoenix.conf (sha256:", "service gateway"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the plan lacks %q:\n%s", want, text.String())
		}
	}
	from := r.lastSeq()
	r.mustConverge(r.options())
	for _, e := range r.events(from) {
		if strings.Contains(e.Detail, "hunter2") || strings.Contains(e.Name, "hunter2") {
			t.Errorf("the journal shows the secret: %+v", e)
		}
	}
	if strings.Contains(text.String(), "hunter2") || strings.Contains(r.out.String(), "hunter2") {
		t.Error("the secret reached the plan or the log")
	}

	ctx := context.Background()
	node, err := r.node("pve1")
	if err != nil {
		t.Fatal(err)
	}
	inside := func(vmid int, files, services []string) *reconciler.Inside {
		t.Helper()
		res, err := node.Exec(ctx, vmid, reconciler.Script{Name: "phoenix/inspect", Phase: "check", Body: reconciler.InspectScript,
			Env: map[string]string{"PHOENIX_FILES": strings.Join(files, " "), "PHOENIX_SERVICES": strings.Join(services, " ")}})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("inspect %d: %v %+v", vmid, err, res)
		}
		in, err := reconciler.ParseInspect(res.Stdout, files, services)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	in := inside(942, []string{"/etc/gateway/token", "/etc/gateway/gateway.conf"}, []string{"gateway"})
	if tok := in.Files["/etc/gateway/token"]; tok.Mode != 0o600 || !strings.HasPrefix(tok.IDs, "33:33") {
		t.Errorf("token: %+v, want mode 0600 owned by 33:33", tok)
	}
	if s := in.Services["gateway"]; s.Enabled != "enabled" || s.Active != "active" {
		t.Errorf("gateway service: %+v", s)
	}
	if s := inside(941, nil, []string{"ollama"}).Services["ollama"]; s.Active != "active" {
		t.Errorf("ollama service: %+v", s)
	}

	// Someone edits the config inside the guest: drift, written again.
	if err := node.WriteFile(ctx, 942, reconciler.FileWrite{Path: "/etc/gateway/gateway.conf", Content: []byte("edited by hand\n"), Mode: 0o644, User: "root", Group: "root"}); err != nil {
		t.Fatal(err)
	}
	_, plan = r.plan(reconciler.PlanOptions{})
	g, _ := plan.Guest("fgw")
	if len(g.Changes) != 2 || g.Changes[0].Action != reconciler.WriteFile || !strings.HasPrefix(g.Changes[0].Reason, "changed inside the guest") ||
		g.Changes[1].Action != reconciler.Service || g.Changes[1].Restart != "restart" {
		t.Errorf("after an edit inside the guest: %+v", g.Changes)
	}
	r.mustConverge(r.options())

	// A changed setting: the file is written again and its service
	// restarted; nothing is installed again.
	r.res = withCluster(t, "files.yaml", strings.Replace(fileSpecs, `settings: {listen: "80"}`, `settings: {listen: "8080"}`, 1))
	from = r.lastSeq()
	res := r.apply(ctx, r.options())
	if res.Failed() {
		t.Fatalf("apply: %+v", res.Guests)
	}
	for _, gr := range res.Guests {
		if len(gr.Installed) > 0 {
			t.Errorf("%s installed %v after a setting changed", gr.Name, gr.Installed)
		}
	}
	restarts := 0
	for _, e := range r.events(from) {
		if e.Name == "phoenix/service" && e.VMID == 942 && e.OK {
			restarts++
		}
	}
	if restarts != 1 {
		t.Errorf("the gateway service was brought up %d times after its config changed, want 1", restarts)
	}
	r.mustConverge(r.options())
}
