package proxmox

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Config says how to reach the Proxmox VE API. Its String method redacts the
// secrets, so a Config can be logged.
type Config struct {
	// Endpoint is the API base URL, always ending in /api2/json.
	Endpoint string
	// TokenID (user@realm!name) and TokenSecret authenticate with an API
	// token; Username and Password with a ticket. A token wins when both are set.
	TokenID     string
	TokenSecret string
	Username    string
	Password    string
	// CAFile is a PEM bundle to verify the server with, beside the system roots.
	CAFile string
	// Insecure skips TLS verification: an explicit opt-out, warned about.
	Insecure bool
	// Timeout bounds each HTTP request (default 30 s).
	Timeout time.Duration
	// TaskPoll is the first interval of task polling (default 100 ms); it grows
	// to TaskPollMax (default 2 s).
	TaskPoll    time.Duration
	TaskPollMax time.Duration
	// TaskTimeout bounds the wait for any one task; zero takes a bound per
	// task type (30 min for create, clone and resize, 5 min for a start).
	TaskTimeout time.Duration
	// WrapTransport, when set, wraps the HTTP transport: a hook for request
	// recording in tests and for metrics.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

func (c Config) String() string {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "REDACTED"
	}
	return fmt.Sprintf("proxmox.Config{Endpoint:%s TokenID:%s TokenSecret:%s Username:%s Password:%s CAFile:%s Insecure:%t}",
		c.Endpoint, c.TokenID, redact(c.TokenSecret), c.Username, redact(c.Password), c.CAFile, c.Insecure)
}

// GoString keeps %#v from printing the secrets too.
func (c Config) GoString() string { return c.String() }

// The environment variables, named as terraform-provider-proxmox names them
// where it has them.
const (
	EnvEndpoint = "PROXMOX_VE_ENDPOINT"
	EnvToken    = "PROXMOX_VE_API_TOKEN"
	EnvUsername = "PROXMOX_VE_USERNAME"
	EnvPassword = "PROXMOX_VE_PASSWORD"
	EnvCAFile   = "PROXMOX_VE_CA_FILE"
	EnvInsecure = "PROXMOX_VE_INSECURE"
)

// ConfigFromEnv reads the connection from the environment. Where credentials
// go is the environment's to say: the Cluster spec's endpoint and caFile must
// name the environment's, unless PHOENIX_ALLOW_SPEC_ENDPOINT lets the spec
// choose (see specConnection). Errors name the variable and never show a
// credential.
func ConfigFromEnv(getenv func(string) string, cluster spec.ClusterSpec) (Config, error) {
	c := Config{Username: getenv(EnvUsername), Password: getenv(EnvPassword)}
	var errs []error
	endpoint, err := specConnection(getenv, cluster, &c)
	if err != nil {
		errs = append(errs, err)
	}
	switch {
	case err != nil:
	case endpoint.raw == "":
		errs = append(errs, fmt.Errorf("%s is not set: want e.g. https://pve1:8006/", EnvEndpoint))
	default:
		if c.Endpoint, err = endpointFrom(endpoint.from, endpoint.raw); err != nil {
			errs = append(errs, err)
		}
	}
	if tok := getenv(EnvToken); tok != "" {
		id, secret, ok := strings.Cut(tok, "=")
		user, name, ok2 := strings.Cut(id, "!")
		if !ok || !ok2 || secret == "" || name == "" || !strings.Contains(user, "@") {
			errs = append(errs, fmt.Errorf("%s: want user@realm!tokenid=secret", EnvToken))
		} else {
			c.TokenID, c.TokenSecret = id, secret
		}
	}
	if c.TokenID == "" && (c.Username == "" || c.Password == "") && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("no credentials: set %s, or %s and %s", EnvToken, EnvUsername, EnvPassword))
	}
	if c.Username != "" && !strings.Contains(c.Username, "@") {
		c.Username += "@pam"
	}
	if v := getenv(EnvInsecure); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: want true or false, got %q", EnvInsecure, v))
		}
		c.Insecure = b
	}
	return c, errors.Join(errs...)
}
