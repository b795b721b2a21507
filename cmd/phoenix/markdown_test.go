package main

import (
	"strings"
	"testing"

	"github.com/phoenixhv/phoenix/providers/sim"
)

func TestPlanMarkdown(t *testing.T) {
	startSim(t, "../../examples/homelab/world.yaml", func(w *sim.World) {
		w.Spec.Guests = append(w.Spec.Guests, sim.WorldGuest{VMID: 950, Name: "handmade", Node: "pve1", Running: true})
	})
	code, out, errOut := phoenix(t, "plan", "-f", "../../examples/homelab", "-o", "markdown")
	if code != 1 {
		t.Errorf("exit %d, want 1 (a guest cannot be converged)\n%s", code, errOut)
	}
	if want := "### phoenix plan: 5 to create, 0 to change, 0 to replace, 0 to delete, 7 features to install, 1 problem\n\n"; !strings.HasPrefix(out, want) {
		t.Errorf("plan -o markdown does not start with the summary %q:\n%s", want, out)
	}
	for _, want := range []string{
		"> [!WARNING]\n> **`vllm-qwen`** (Container 950 on pve1) cannot be converged: nothing is done to it.\n",
		"> - **conflict**: VMID 950 is held by container \"handmade\" on pve1",
		"<details><summary><code>+</code> <b>nginx</b> (Container 960 on pve1): clone</summary>\n\n- `+` clone: linked clone of ubuntu-2404-base",
		"  ```diff\n  - cores = \"2\"\n  + cores = \"1\"\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan -o markdown lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "<details>"); n != 5 || strings.Count(out, "</details>") != 5 {
		t.Errorf("%d guests folded, want 5:\n%s", n, out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes in markdown:\n%q", out)
	}
	code, _, errOut = phoenix(t, "plan", "-f", "../../examples/homelab", "-o", "html")
	if code != 1 || !strings.Contains(errOut, `unknown --output "html" (text, json or markdown)`) {
		t.Errorf("-o html: exit %d: %s", code, errOut)
	}
}
