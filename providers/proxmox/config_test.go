package proxmox

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/spec"
)

func TestConfigFromEnv(t *testing.T) {
	cases := map[string]struct {
		env     map[string]string
		cluster spec.ClusterSpec
		want    Config
		wantErr string
	}{
		"token, endpoint as terraform users write it": {
			env:  map[string]string{EnvEndpoint: "https://pve1:8006/", EnvToken: "root@pam!phoenix=a-b-c"},
			want: Config{Endpoint: "https://pve1:8006/api2/json", TokenID: "root@pam!phoenix", TokenSecret: "a-b-c"},
		},
		"endpoint with /api2/json, password": {
			env:  map[string]string{EnvEndpoint: "https://10.0.0.2:8006/api2/json/", EnvUsername: "root", EnvPassword: "pw", EnvInsecure: "true"},
			want: Config{Endpoint: "https://10.0.0.2:8006/api2/json", Username: "root@pam", Password: "pw", Insecure: true},
		},
		"the Cluster spec overrides the environment": {
			env:     map[string]string{EnvEndpoint: "https://old:8006", EnvToken: "u@pve!t=s", EnvCAFile: "/env/ca.pem"},
			cluster: spec.ClusterSpec{Endpoint: "https://new:8006/", CAFile: "/spec/ca.pem"},
			want:    Config{Endpoint: "https://new:8006/api2/json", TokenID: "u@pve!t", TokenSecret: "s", CAFile: "/spec/ca.pem"},
		},
		"no endpoint":      {env: map[string]string{EnvToken: "u@pve!t=s"}, wantErr: "PROXMOX_VE_ENDPOINT is not set"},
		"http endpoint":    {env: map[string]string{EnvEndpoint: "http://pve1:8006", EnvToken: "u@pve!t=s"}, wantErr: "https only"},
		"malformed token":  {env: map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "rootpam-secret"}, wantErr: "PROXMOX_VE_API_TOKEN: want user@realm!tokenid=secret"},
		"no credentials":   {env: map[string]string{EnvEndpoint: "https://pve1:8006"}, wantErr: "no credentials"},
		"bad insecure":     {env: map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "u@pve!t=s", EnvInsecure: "maybe"}, wantErr: "PROXMOX_VE_INSECURE"},
		"odd path":         {env: map[string]string{EnvEndpoint: "https://pve1:8006/ui", EnvToken: "u@pve!t=s"}, wantErr: "unexpected path"},
		"user in the URL":  {env: map[string]string{EnvEndpoint: "https://root:pw@pve1:8006", EnvToken: "u@pve!t=s"}, wantErr: "remove the credentials"},
		"secret not shown": {env: map[string]string{EnvEndpoint: "ftp://x", EnvToken: "u@pve!t=TOPSECRET"}, wantErr: "https only"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tc.env[k] }, tc.cluster)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), ":pw@") {
					t.Errorf("error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c := Config{Endpoint: "https://pve1:8006/api2/json", TokenID: "root@pam!x", TokenSecret: "s3cr3t-token", Password: "hunter2"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, c)
		if strings.Contains(out, "s3cr3t-token") || strings.Contains(out, "hunter2") {
			t.Errorf("%s prints a secret: %s", format, out)
		}
	}
}
