package e2e

import (
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/reconciler"
)

// TestHostnameWithDots: spec.hostname gives a guest a DNS name with dots,
// which its metadata.name cannot have. The clone is created with it, a clone
// of a template with a hostname does not inherit it, changing it is one
// field change applied in place, and a second pass is a no-op.
func TestHostnameWithDots(t *testing.T) {
	r := newRig(t, nil)
	r.respec(specEdit{"containers.yaml", "  vmid: 950\n", "  vmid: 950\n  hostname: vllm-qwen2.5-7b-awq\n"})
	p := r.mustPlan(reconciler.PlanOptions{})
	if !strings.Contains(planText(p), "vllm-qwen") {
		t.Fatalf("plan:\n%s", planText(p))
	}
	r.mustConverge(r.options())
	hostname := func() string {
		cfg, err := r.cluster.GuestConfig(t.Context(), "pve1", 950)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Values["hostname"]
	}
	if got := hostname(); got != "vllm-qwen2.5-7b-awq" {
		t.Errorf("hostname %q", got)
	}
	if p := r.mustPlan(reconciler.PlanOptions{}); p.HasChanges() {
		t.Fatalf("second plan is not empty:\n%s", planText(p))
	}

	r.respec(specEdit{"containers.yaml", "  vmid: 950\n", "  vmid: 950\n  hostname: qwen.lab.example\n"})
	p = r.mustPlan(reconciler.PlanOptions{})
	if got := changesOf(t, p, "vllm-qwen"); len(got) != 1 || got[0] != "update" {
		t.Fatalf("changing the hostname plans %v:\n%s", got, planText(p))
	}
	if text := planText(p); !strings.Contains(text, "hostname") || !strings.Contains(text, "qwen.lab.example") {
		t.Errorf("the plan does not show the hostname change:\n%s", text)
	}
	r.mustConverge(r.options())
	if got := hostname(); got != "qwen.lab.example" {
		t.Errorf("hostname after the change %q", got)
	}
}
