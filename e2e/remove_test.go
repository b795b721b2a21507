package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
)

// changesOf lists a guest's planned changes as "action feature".
func changesOf(t *testing.T, p *reconciler.Plan, name string) []string {
	t.Helper()
	g, ok := p.Guest(name)
	if !ok {
		t.Fatalf("no plan for %s", name)
	}
	var out []string
	for _, c := range g.Changes {
		out = append(out, stepKey(c))
	}
	return out
}

// TestRemovedBuiltinFeatureIsUninstalled: a feature taken out of a guest's
// spec is uninstalled by its steps' uninstall phase, and its record goes.
func TestRemovedBuiltinFeatureIsUninstalled(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	r.respec(specEdit{"containers.yaml", "  features: [ollama]\n", ""})
	p := r.mustPlan(reconciler.PlanOptions{})
	if got := changesOf(t, p, "ollama"); !slices.Equal(got, []string{"uninstall ollama"}) {
		t.Fatalf("ollama plans %v\n%s", got, planText(p))
	}
	from := r.lastSeq()
	r.mustConverge(r.options())
	if first(r.events(from), execOK(955, "ollama/install", "uninstall")) == 0 {
		t.Error("ollama/install's uninstall phase did not run")
	}
	cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 955)
	if err != nil {
		t.Fatal(err)
	}
	_, st, _ := reconciler.ParseDescription(cfg.Values["description"])
	if _, ok := st.Features["ollama"]; ok {
		t.Error("the ollama record is still there")
	}
}

// TestRemovedFeatureWithoutUninstallStaysAndSaysSo: a user feature whose
// steps cannot be undone stays installed; the plan says so and what to do,
// and nothing is run. Given uninstall bodies, it is removed.
func TestRemovedFeatureWithoutUninstallStaysAndSaysSo(t *testing.T) {
	r := newRig(t, nil)
	r.mustConverge(r.options())
	r.respec(specEdit{"containers.yaml", "  features: [nginx]\n", ""})
	p := r.mustPlan(reconciler.PlanOptions{})
	g, _ := p.Guest("nginx")
	if g.Action != reconciler.NoOp || len(g.Notes) != 1 || !strings.Contains(g.Notes[0], "nginx is no longer in the spec but stays installed: it has no uninstall steps") {
		t.Fatalf("nginx plan %+v", g)
	}
	var text strings.Builder
	_ = p.WriteText(&text, reconciler.TextOptions{})
	if !strings.Contains(text.String(), "stays installed") {
		t.Errorf("the text plan does not say it:\n%s", text.String())
	}

	r.respec(specEdit{"containers.yaml", "  features: [nginx]\n", ""},
		specEdit{"features/nginx.yaml", "      verify: nginx -v\n", "      verify: nginx -v\n      uninstall: apt-get purge -y nginx\n"},
		specEdit{"features/nginx.yaml", "/etc/nginx/sites-available/default\n", "/etc/nginx/sites-available/default\n      uninstall: \"true\"\n"},
		specEdit{"features/nginx.yaml", "systemctl reload nginx\n", "systemctl reload nginx\n      uninstall: systemctl disable --now nginx\n"})
	p = r.mustPlan(reconciler.PlanOptions{})
	if got := changesOf(t, p, "nginx"); !slices.Equal(got, []string{"uninstall nginx"}) {
		t.Fatalf("nginx plans %v\n%s", got, planText(p))
	}
	from := r.lastSeq()
	r.mustConverge(r.options())
	var order []string
	for _, e := range r.events(from) {
		if e.VMID == 960 && e.Kind == "exec" && e.Phase == "uninstall" && e.OK {
			order = append(order, e.Name)
		}
	}
	if want := []string{"nginx/enable", "nginx/listen", "nginx/install"}; !slices.Equal(order, want) {
		t.Errorf("uninstall ran %v, want %v (the install order reversed)", order, want)
	}
}

// TestRemovedGPUsAndNICsAreRemoved: passthrough and a NIC taken out of the
// spec leave the container too: a running container's existing devices wait
// for a restart, which the plan shows and apply makes.
func TestRemovedGPUsAndNICsAreRemoved(t *testing.T) {
	r := newRig(t, nil)
	r.respec(specEdit{"containers.yaml", "  features: [nginx]\n", "  features: [nginx]\n  gpus: [0]\n"},
		specEdit{"containers.yaml", "      ip: 10.0.0.160/24\n      gw: 10.0.0.1\n", "      ip: 10.0.0.160/24\n      gw: 10.0.0.1\n    - name: eth1\n      ip: dhcp\n"})
	r.mustConverge(r.options())
	cfg, _ := r.cluster.GuestConfig(t.Context(), "pve1", 960)
	if !strings.Contains(cfg.Values["net1"], "name=eth1") || !slices.Contains(devices(cfg), "/dev/nvidia0") {
		t.Fatalf("nginx was not given the GPU and the NIC: %v", cfg.Values)
	}

	r.respec()
	p := r.mustPlan(reconciler.PlanOptions{})
	g, _ := p.Guest("nginx")
	var removed []string
	for _, c := range g.Changes {
		for _, f := range c.Fields {
			if f.After == "" {
				removed = append(removed, f.Key)
			}
		}
	}
	if got := changesOf(t, p, "nginx"); !slices.Equal(got, []string{"update", "restart"}) || len(removed) != 6 || !slices.Contains(removed, "net1") {
		t.Fatalf("nginx plans %v removing %v\n%s", got, removed, planText(p))
	}
	r.mustConverge(r.options())
	cfg, _ = r.cluster.GuestConfig(t.Context(), "pve1", 960)
	if cfg.Values["net1"] != "" || len(devices(cfg)) != 0 {
		t.Errorf("after the apply: net1 %q, devices %v", cfg.Values["net1"], devices(cfg))
	}
}

// devices are the paths of a config's devN entries, sorted.
func devices(cfg reconciler.Config) []string {
	var out []string
	for k, v := range cfg.Values {
		if strings.HasPrefix(k, "dev") {
			path, _, _ := strings.Cut(v, ",")
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}
