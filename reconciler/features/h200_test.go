package features

import (
	"os"
	"strings"
	"testing"
)

// h200 holds what a real NVIDIA H200 with driver 580.159.04 printed,
// captured by hack/gpuprobe/collect.sh (see hack/gpuprobe/README.md).
const h200 = "../../hack/gpuprobe/testdata/h200/"

func captured(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(h200 + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replay is a fake program that prints a captured stdout and exits with the
// captured status.
func replay(t *testing.T, name string) string {
	out := captured(t, name+".stdout")
	rc := strings.TrimSpace(captured(t, name+".rc"))
	return "cat <<'CAPTURED'\n" + out + "CAPTURED\nexit " + rc
}

// TestAUserWhoSeesNoGPUIsNotAUserOfTheGPU: on a real H200, a user who may
// open nvidiactl but not the GPU's node gets "No devices found." from
// nvidia-smi -L, with exit status 0. A verify that runs nvidia-smi as a user
// other than root must look for a listed GPU, not only at the exit status.
func TestAUserWhoSeesNoGPUIsNotAUserOfTheGPU(t *testing.T) {
	for _, tc := range []struct{ step, user string }{
		{"nvidia-driver/userspace", "nobody"},
		{"ollama/install", "ollama"},
	} {
		t.Run(tc.step, func(t *testing.T) {
			eachShell(t, func(t *testing.T, sh string) {
				s := newSandbox(t)
				s.model()
				// runuser marks the command as not root's; nvidia-smi then
				// answers as the H200 did for such a user.
				s.fake("runuser", `shift 3; PHOENIX_TEST_AS_USER=1 exec "$@"`)
				s.fake("nvidia-smi", `
if [ -n "${PHOENIX_TEST_AS_USER:-}" ]; then
`+replay(t, "nvml-gpu-root-only")+`
fi
case "$*" in
*driver_version*) echo 580.76.05 ;;
*) `+replay(t, "nvidia-smi-L")+` ;;
esac`)
				s.fake("ollama", `echo "ollama version is 0.9.0"`)
				s.fake("curl", `exit 0`)
				s.file("dev/nvidiactl", "")
				st := builtinStep(t, tc.step, nil)
				r := s.run(sh, st, "verify")
				if r.code == 0 {
					t.Fatalf("verify passed although %s sees no GPU: %v", tc.user, r)
				}
				if !strings.Contains(r.lastLine(), tc.user) || !strings.Contains(r.lastLine(), "No devices found.") {
					t.Errorf("want a last line that names %s and quotes nvidia-smi: %v", tc.user, r)
				}

				// The same step passes where the user is listed the GPU.
				s.fake("runuser", `shift 3; exec "$@"`)
				if r := s.run(sh, st, "verify"); r.code != 0 {
					t.Errorf("verify fails where %s sees the GPU: %v", tc.user, r)
				}
			})
		})
	}
}
