package proxmox

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phoenixhv/phoenix/providers/redact"
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
		"the Cluster spec names the environment's endpoint and CA": {
			env:     map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "u@pve!t=s", EnvCAFile: "/etc/phoenix/ca.pem"},
			cluster: spec.ClusterSpec{Endpoint: "https://pve1:8006/api2/json/", CAFile: "/etc/phoenix/./ca.pem"},
			want:    Config{Endpoint: "https://pve1:8006/api2/json", TokenID: "u@pve!t", TokenSecret: "s", CAFile: "/etc/phoenix/ca.pem"},
		},
		"a spec endpoint other than the environment's": {
			env:     map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "u@pve!t=s"},
			cluster: spec.ClusterSpec{Endpoint: "https://collector.example:8006/"},
			wantErr: "the Cluster spec's endpoint https://collector.example:8006/ is not PROXMOX_VE_ENDPOINT (https://pve1:8006): a spec file does not choose where phoenix sends its credentials; remove spec.endpoint, or set PHOENIX_ALLOW_SPEC_ENDPOINT=1",
		},
		"a spec endpoint without one in the environment": {
			env:     map[string]string{EnvToken: "u@pve!t=s"},
			cluster: spec.ClusterSpec{Endpoint: "https://collector.example:8006/"},
			wantErr: "the Cluster spec sets endpoint https://collector.example:8006/ and PROXMOX_VE_ENDPOINT is not set: a spec file does not choose where phoenix sends its credentials; set PROXMOX_VE_ENDPOINT, or set PHOENIX_ALLOW_SPEC_ENDPOINT=1",
		},
		"a spec CA other than the environment's": {
			env:     map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "u@pve!t=s", EnvCAFile: "/etc/phoenix/ca.pem"},
			cluster: spec.ClusterSpec{CAFile: "ca/attacker.pem"},
			wantErr: "the Cluster spec's caFile ca/attacker.pem is not PROXMOX_VE_CA_FILE (/etc/phoenix/ca.pem): a spec file does not choose which CA phoenix trusts; remove spec.caFile, or set PHOENIX_ALLOW_SPEC_ENDPOINT=1",
		},
		"a spec CA without one in the environment": {
			env:     map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "u@pve!t=s"},
			cluster: spec.ClusterSpec{CAFile: "ca/attacker.pem"},
			wantErr: "the Cluster spec sets caFile ca/attacker.pem and PROXMOX_VE_CA_FILE is not set",
		},
		"the operator lets the spec choose": {
			env:     map[string]string{EnvEndpoint: "https://old:8006", EnvToken: "u@pve!t=s", EnvCAFile: "/env/ca.pem", EnvAllowSpecEndpoint: "1"},
			cluster: spec.ClusterSpec{Endpoint: "https://new:8006/", CAFile: "/spec/ca.pem"},
			want:    Config{Endpoint: "https://new:8006/api2/json", TokenID: "u@pve!t", TokenSecret: "s", CAFile: "/spec/ca.pem"},
		},
		"the opt-in must be a boolean": {
			env:     map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "u@pve!t=s", EnvAllowSpecEndpoint: "please"},
			wantErr: "PHOENIX_ALLOW_SPEC_ENDPOINT: want 1 or 0 (true or false)",
		},
		"no endpoint":     {env: map[string]string{EnvToken: "u@pve!t=s"}, wantErr: "PROXMOX_VE_ENDPOINT is not set"},
		"http endpoint":   {env: map[string]string{EnvEndpoint: "http://pve1:8006", EnvToken: "u@pve!t=s"}, wantErr: "https only"},
		"malformed token": {env: map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "rootpam-secret"}, wantErr: "PROXMOX_VE_API_TOKEN: want user@realm!tokenid=secret"},
		"no credentials":  {env: map[string]string{EnvEndpoint: "https://pve1:8006"}, wantErr: "no credentials"},
		"bad insecure":    {env: map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "u@pve!t=s", EnvInsecure: "maybe"}, wantErr: "PROXMOX_VE_INSECURE"},
		"odd path":        {env: map[string]string{EnvEndpoint: "https://pve1:8006/ui", EnvToken: "u@pve!t=s"}, wantErr: "unexpected path"},
		"user in the URL": {env: map[string]string{EnvEndpoint: "https://root:TOPSECRET@pve1:8006", EnvToken: "u@pve!t=s"},
			wantErr: `PROXMOX_VE_ENDPOINT "https://pve1:8006" holds a user name and password: remove them from the URL and set PROXMOX_VE_API_TOKEN, or PROXMOX_VE_USERNAME and PROXMOX_VE_PASSWORD`},
		"user in an http URL": {env: map[string]string{EnvEndpoint: "http://root:TOPSECRET@pve1:8006", EnvToken: "u@pve!t=s"},
			wantErr: `PROXMOX_VE_ENDPOINT "http://pve1:8006" holds a user name and password`},
		"user in a URL that does not parse": {env: map[string]string{EnvEndpoint: "https://root:TOP/SECRET#x@pve1:8006", EnvToken: "u@pve!t=s"},
			wantErr: `PROXMOX_VE_ENDPOINT "https://pve1:8006" holds a user name and password`},
		"user without a scheme": {env: map[string]string{EnvEndpoint: "root:TOPSECRET@pve1:8006", EnvToken: "u@pve!t=s"},
			wantErr: `PROXMOX_VE_ENDPOINT "pve1:8006" holds a user name and password`},
		"user in the spec's URL": {env: map[string]string{EnvToken: "u@pve!t=s", EnvAllowSpecEndpoint: "true"},
			cluster: spec.ClusterSpec{Endpoint: "https://root:TOPSECRET@pve1:8006"},
			wantErr: `the Cluster spec's endpoint "https://pve1:8006" holds a user name and password`},
		"secret not shown": {env: map[string]string{EnvEndpoint: "ftp://x", EnvToken: "u@pve!t=TOPSECRET"}, wantErr: "https only"},
		"token secret not shown when malformed": {env: map[string]string{EnvEndpoint: "https://pve1:8006", EnvToken: "TOPSECRET"},
			wantErr: "PROXMOX_VE_API_TOKEN: want user@realm!tokenid=secret"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tc.env[k] }, tc.cluster)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), "SECRET") {
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

func TestSecrets(t *testing.T) {
	env := map[string]string{
		EnvEndpoint: "https://root:p%40ss%2Fword@pve1:8006/", EnvToken: "root@pam!phoenix=5f1c2a9e-0b7d",
		EnvPassword: "hunter22", EnvUsername: "root@pam", EnvCAFile: "/etc/ca.pem",
	}
	got := Secrets(func(k string) string { return env[k] })
	want := []redact.Secret{
		{Var: EnvToken, Value: "5f1c2a9e-0b7d"},
		{Var: EnvPassword, Value: "hunter22"},
		{Var: EnvEndpoint, Value: "p%40ss%2Fword"},
		{Var: EnvEndpoint, Value: "p@ss/word"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := Secrets(func(string) string { return "" }); len(got) != 0 {
		t.Errorf("an empty environment has secrets: %v", got)
	}
}

// FuzzConfigFromEnv feeds the parser endpoints with a user and password in
// them, tokens and passwords, from the environment and from the spec: it
// never panics, and its errors never show the token's secret, the password,
// or the endpoint's password. Each secret starts with a mark that no message
// of phoenix holds, so that a secret that is also an ordinary word cannot
// count as shown.
func FuzzConfigFromEnv(f *testing.F) {
	f.Add(uint8(0), "root", "hunter22", "pve1:8006", "secret-123", "hunter22", false, false)
	f.Add(uint8(1), "root", "a/b#c?d", "pve1:8006/", "", "pw", true, false)
	f.Add(uint8(2), "", "x@y", "pve1", "s", "", true, true)
	f.Add(uint8(3), "u", "", "[::1]:8006/api2/json", "abc", "", false, true)
	f.Fuzz(func(t *testing.T, scheme uint8, user, pass, host, tokenSecret, password string, inSpec, allow bool) {
		const mark = "§"
		prefix := []string{"https://", "http://", "", "ftp://"}[scheme%4]
		endpoint := prefix + user + ":" + mark + pass + "@" + host
		if scheme%8 >= 4 {
			endpoint = prefix + host // no user
		}
		env := map[string]string{EnvToken: "root@pam!t=" + mark + tokenSecret, EnvPassword: mark + password, EnvUsername: "root"}
		var cs spec.ClusterSpec
		if inSpec {
			cs.Endpoint = endpoint
		} else {
			env[EnvEndpoint] = endpoint
		}
		if allow {
			env[EnvAllowSpecEndpoint] = "1"
		}
		_, err := ConfigFromEnv(func(k string) string { return env[k] }, cs)
		if err == nil || strings.Contains(host, mark) {
			return
		}
		for _, secret := range []string{mark + pass, mark + tokenSecret, mark + password} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows %q: %v", secret, err)
			}
		}
	})
}
