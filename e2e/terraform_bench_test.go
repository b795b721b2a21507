package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/providers/sim"
)

// tfScale runs the comparison with terraform at the world's real-world
// durations (a 20 s create, a 3 s start, the network up 2-8 s later): the
// provider polls a task and a status once a second whatever the simulator's
// time scale, so a faster world would count its polling against it.
const tfScale = 1

// BenchmarkVersusTerraform creates N plain containers over three nodes,
// once with `phoenix apply` at its defaults and once with `terraform apply`
// and the bpg Proxmox provider at terraform's default parallelism of 10, each
// against a simulator of its own (`phoenix sim`, 5 ms a request), and reports
// both wall times (each command from its start, its planning included) and
// the API requests each made; then, on the cluster each made, a plan that
// finds nothing to change (`phoenix plan`, `terraform plan`, which reads
// every resource back). The containers are the same: the same node,
// VMID, template, 8 GiB root disk on local-lvm, unprivileged, eth0 on vmbr0
// by DHCP; each tool waits until its containers run and have an address
// (phoenix from inside, the provider through .../interfaces).
//
// It needs terraform and terraform-provider-proxmox in
// $PHOENIX_TERRAFORM_DIR: hack/tfbench/build.sh builds them.
func BenchmarkVersusTerraform(b *testing.B) {
	dir := os.Getenv("PHOENIX_TERRAFORM_DIR")
	if dir == "" {
		b.Skip("PHOENIX_TERRAFORM_DIR is not set: hack/tfbench/build.sh DIR builds terraform and the bpg provider into DIR")
	}
	for _, f := range []string{"terraform", "terraform-provider-proxmox"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			b.Fatalf("PHOENIX_TERRAFORM_DIR: %v (hack/tfbench/build.sh builds it)", err)
		}
	}
	bin := buildPhoenix(b)
	for _, n := range []int{20, 100} {
		b.Run(fmt.Sprintf("guests=%d", n), func(b *testing.B) {
			for b.Loop() {
				px := phoenixBulk(b, bin, n)
				tf := terraformBulk(b, bin, dir, n)
				b.ReportMetric(px.create.Seconds(), "phoenix-s")
				b.ReportMetric(tf.create.Seconds(), "terraform-s")
				b.ReportMetric(float64(tf.create)/float64(px.create), "x-faster-than-terraform")
				b.ReportMetric(float64(px.createRequests), "phoenix-requests")
				b.ReportMetric(float64(tf.createRequests), "terraform-requests")
				b.ReportMetric(px.plan.Seconds(), "phoenix-plan-s")
				b.ReportMetric(tf.plan.Seconds(), "terraform-plan-s")
				b.ReportMetric(float64(tf.plan)/float64(px.plan), "x-plan-faster-than-terraform")
				b.ReportMetric(float64(px.planRequests), "phoenix-plan-requests")
				b.ReportMetric(float64(tf.planRequests), "terraform-plan-requests")
			}
		})
	}
}

// tfWorld is the bulk creation's cluster at tfScale.
func tfWorld(b *testing.B) *sim.World {
	b.Helper()
	world, err := sim.ParseWorld([]byte(bulkWorld(tfScale)))
	if err != nil {
		b.Fatal(err)
	}
	return world
}

// toolRun is what one tool took: the wall time and API requests of creating
// the containers, then of a plan that finds nothing to change.
type toolRun struct {
	create, plan                 time.Duration
	createRequests, planRequests int
}

// timed runs cmd and returns its wall time; it fails the benchmark when cmd
// fails.
func timed(b *testing.B, cmd *exec.Cmd) (time.Duration, []byte) {
	b.Helper()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return took, out
}

// phoenixBulk runs `phoenix apply` on N containers, then `phoenix plan`.
func phoenixBulk(b *testing.B, bin string, n int) toolRun {
	b.Helper()
	env, stats := startSimProcess(b, bin, tfWorld(b))
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "specs.yaml"), []byte(bulkSpecs(n)), 0o644); err != nil {
		b.Fatal(err)
	}
	phoenix := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = os.Environ()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		return cmd
	}
	var run toolRun
	run.create, _ = timed(b, phoenix("apply", "-f", dir, "--auto-approve", "--quiet"))
	run.createRequests = total(stats())
	// --detailed-exitcode: 2 (a failure here) when there is a change.
	run.plan, _ = timed(b, phoenix("plan", "-f", dir, "--detailed-exitcode"))
	run.planRequests = total(stats()) - run.createRequests
	return run
}

// terraformBulk runs `terraform apply` with the bpg provider on N
// containers, then `terraform plan`.
func terraformBulk(b *testing.B, bin, tfDir string, n int) toolRun {
	b.Helper()
	env, stats := startSimProcess(b, bin, tfWorld(b))
	dir := b.TempDir()
	rc := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"bpg/proxmox\" = %q\n  }\n  direct {}\n}\n", tfDir)
	var main strings.Builder
	main.WriteString("terraform {\n  required_providers {\n    proxmox = { source = \"bpg/proxmox\" }\n  }\n}\n\nprovider \"proxmox\" {}\n")
	for i := range n {
		fmt.Fprintf(&main, `
resource "proxmox_virtual_environment_container" "ct%[1]d" {
  node_name    = "pve%[2]d"
  vm_id        = %[3]d
  unprivileged = true
  initialization {
    hostname = "ct%[1]d"
    ip_config {
      ipv4 { address = "dhcp" }
    }
  }
  network_interface { name = "eth0" }
  disk {
    datastore_id = "local-lvm"
    size         = 8
  }
  operating_system {
    template_file_id = %[4]q
    type             = "debian"
  }
}
`, i, i%bulkNodes+1, 1000+i, debianTemplate)
	}
	for name, text := range map[string]string{"terraform.rc": rc, "main.tf": main.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	terraform := func(args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(tfDir, "terraform"), args...)
		cmd.Dir = dir
		// The provider reads PROXMOX_VE_ENDPOINT and PROXMOX_VE_API_TOKEN; it
		// is given those alone (a user name beside a token is an error to
		// it), and the simulator's CA through SSL_CERT_FILE.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "PROXMOX_VE_") && !strings.HasPrefix(kv, "TF_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env,
			"PROXMOX_VE_ENDPOINT="+env["PROXMOX_VE_ENDPOINT"],
			"PROXMOX_VE_API_TOKEN="+env["PROXMOX_VE_API_TOKEN"],
			"SSL_CERT_FILE="+env["PROXMOX_VE_CA_FILE"],
			"TF_CLI_CONFIG_FILE="+filepath.Join(dir, "terraform.rc"),
			"TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1")
		return cmd
	}
	var run toolRun
	var out []byte
	run.create, out = timed(b, terraform("apply", "-auto-approve", "-input=false", "-no-color"))
	if want := fmt.Sprintf("Resources: %d added", n); !strings.Contains(string(out), want) {
		b.Fatalf("terraform apply did not say %q:\n%s", want, out)
	}
	run.createRequests = total(stats())
	// -detailed-exitcode: 2 (a failure here) when there is a change.
	run.plan, _ = timed(b, terraform("plan", "-detailed-exitcode", "-input=false", "-no-color"))
	run.planRequests = total(stats()) - run.createRequests
	return run
}
