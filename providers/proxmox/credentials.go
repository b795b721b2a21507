package proxmox

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/providers/redact"
	"github.com/phoenixhv/phoenix/spec"
)

// EnvAllowSpecEndpoint, set to 1, lets the Cluster spec's endpoint and caFile
// choose where phoenix connects and which CA it trusts. Without it a spec file
// (one a pull request changed, which CI plans) cannot send the credentials of
// the environment anywhere else: its endpoint and caFile must be the
// environment's, and only say which cluster the specs are meant for.
const EnvAllowSpecEndpoint = "PHOENIX_ALLOW_SPEC_ENDPOINT"

// endpointSource is the endpoint as given, and where it was given.
type endpointSource struct {
	raw, from string
}

// specConnection settles the endpoint and the CA file between the
// environment and the Cluster spec, setting c.CAFile, and returns the
// endpoint to use. A spec value that names what the environment names is
// fine; another one is an error unless EnvAllowSpecEndpoint is set, in which
// case the spec's wins.
func specConnection(getenv func(string) string, cluster spec.ClusterSpec, c *Config) (endpointSource, error) {
	envEndpoint, envCA := getenv(EnvEndpoint), getenv(EnvCAFile)
	c.CAFile = envCA
	ep := endpointSource{raw: envEndpoint, from: EnvEndpoint}
	allow := false
	if v := getenv(EnvAllowSpecEndpoint); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return ep, fmt.Errorf("%s: want 1 or 0 (true or false), got %q", EnvAllowSpecEndpoint, v)
		}
		allow = b
	}
	const (
		where = "a spec file does not choose where phoenix sends its credentials"
		trust = "a spec file does not choose which CA phoenix trusts"
	)
	var errs []error
	switch spec := cluster.Endpoint; {
	case spec == "":
	case allow:
		ep = endpointSource{raw: spec, from: "the Cluster spec's endpoint"}
	case envEndpoint == "":
		errs = append(errs, fmt.Errorf("the Cluster spec sets endpoint %s and %s is not set: %s; set %s, or set %s=1",
			withoutUserinfo(spec), EnvEndpoint, where, EnvEndpoint, EnvAllowSpecEndpoint))
	default:
		a, errA := endpointFrom("", spec)
		b, errB := endpointFrom("", envEndpoint)
		if errA != nil || errB != nil || a != b {
			errs = append(errs, fmt.Errorf("the Cluster spec's endpoint %s is not %s (%s): %s; remove spec.endpoint, or set %s=1",
				withoutUserinfo(spec), EnvEndpoint, withoutUserinfo(envEndpoint), where, EnvAllowSpecEndpoint))
		}
	}
	switch spec := cluster.CAFile; {
	case spec == "":
	case allow:
		c.CAFile = spec
	case envCA == "":
		errs = append(errs, fmt.Errorf("the Cluster spec sets caFile %s and %s is not set: %s; set %s, or set %s=1",
			spec, EnvCAFile, trust, EnvCAFile, EnvAllowSpecEndpoint))
	case filepath.Clean(spec) != filepath.Clean(envCA):
		errs = append(errs, fmt.Errorf("the Cluster spec's caFile %s is not %s (%s): %s; remove spec.caFile, or set %s=1",
			spec, EnvCAFile, envCA, trust, EnvAllowSpecEndpoint))
	}
	return ep, errors.Join(errs...)
}

// normalizeEndpoint accepts the endpoint as users write it, with or without
// /api2/json, and returns the API base.
func normalizeEndpoint(raw string) (string, error) { return endpointFrom("endpoint", raw) }

// endpointFrom is normalizeEndpoint for an endpoint given in from (a
// variable, the spec), which its errors name; they show the URL without a
// user name or password in it.
func endpointFrom(from, raw string) (string, error) {
	shown := withoutUserinfo(raw)
	if shown != raw {
		return "", fmt.Errorf("%s %q holds a user name and password: remove them from the URL and set %s, or %s and %s",
			from, shown, EnvToken, EnvUsername, EnvPassword)
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%s %q: want a URL such as https://pve1:8006/", from, raw)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("%s %q: Proxmox VE serves its API over https only", from, raw)
	}
	path := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api2/json")
	if path != "" {
		return "", fmt.Errorf("%s %q: unexpected path %q (want https://HOST:8006/)", from, raw, u.Path)
	}
	u.Path, u.RawPath, u.RawQuery, u.Fragment = "/api2/json", "", "", ""
	return u.String(), nil
}

// withoutUserinfo removes a user name and password from a URL as written,
// whether or not it parses: everything between the scheme and the last @.
// A password may hold any of / ? # @, which would end the authority for a
// URL parser and leave the rest of the password in the path.
func withoutUserinfo(raw string) string {
	shown, _ := splitUserinfo(raw)
	return shown
}

// splitUserinfo returns raw without its user name and password, and them.
func splitUserinfo(raw string) (shown, userinfo string) {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	at := strings.LastIndex(raw[start:], "@")
	if at < 0 {
		return raw, ""
	}
	return raw[:start] + raw[start+at+1:], raw[start : start+at]
}

// Secrets returns the credential values among the variables ConfigFromEnv
// reads, for phoenix to keep out of everything it writes: the API token's
// secret (the whole value when it has no ID), the password, and a password
// written into the endpoint (which ConfigFromEnv refuses, but which may
// still be in the environment). The token's ID and user names are not
// secret.
func Secrets(getenv func(string) string) []redact.Secret {
	var out []redact.Secret
	add := func(v, value string) {
		if value != "" {
			out = append(out, redact.Secret{Var: v, Value: value})
		}
	}
	tok := getenv(EnvToken)
	if _, secret, ok := strings.Cut(tok, "="); ok {
		add(EnvToken, secret)
	} else {
		add(EnvToken, tok)
	}
	add(EnvPassword, getenv(EnvPassword))
	if _, userinfo := splitUserinfo(getenv(EnvEndpoint)); userinfo != "" {
		// user:password, or a token or password alone.
		pass := userinfo
		if _, p, ok := strings.Cut(userinfo, ":"); ok {
			pass = p
		}
		add(EnvEndpoint, pass)
		if p, err := url.PathUnescape(pass); err == nil && p != pass {
			add(EnvEndpoint, p)
		}
	}
	return out
}
