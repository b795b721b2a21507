package spec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRunfileSourcesAndEndpointsKeepSecrets: a plain-http runfile source is
// accepted only beside digests (the runfile runs as root in every GPU
// container), and an endpoint with credentials in it is refused without
// quoting them, whatever else is wrong with it.
func TestRunfileSourcesAndEndpointsKeepSecrets(t *testing.T) {
	const cluster = `apiVersion: phoenix/v1alpha1
kind: Cluster
metadata: {name: c}
spec:
`
	digest := strings.Repeat("a", 64)
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"plain http without any digest": {
			src: cluster + `  nvidia:
    runfileURL: http://mirror.lab/NVIDIA-Linux-x86_64-{version}.run
    runfileURLs: ["https://mirror.lab/{version}.run", "HTTP://other.lab/{version}.run"]
`,
			want: []problem{
				{6, "spec.nvidia.runfileURL", "a plain-http source needs the runfile's digest: give it for each driver version in spec.nvidia.sha256, or use https"},
				{7, "spec.nvidia.runfileURLs[1]", "a plain-http source needs the runfile's digest"},
			},
		},
		"plain http beside digests": {
			src: cluster + `  nvidia:
    runfileURL: http://mirror.lab/NVIDIA-Linux-x86_64-{version}.run
    sha256: {580.76.05: ` + digest + `}
`,
		},
		"an http endpoint with credentials": {
			src:  cluster + "  endpoint: http://root:hunter2@pve1:8006\n",
			want: []problem{{5, "spec.endpoint", "credentials never go in spec files"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			for _, p := range got {
				if strings.Contains(p.text, "hunter2") {
					t.Errorf("a diagnostic shows the password: %s", p)
				}
			}
		})
	}
}
