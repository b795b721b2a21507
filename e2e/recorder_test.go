package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/phoenixhv/phoenix/providers/pveapi"
)

// recorder keeps every API request the provider sends, so that the suite can
// check each one against the real schemas of Proxmox VE 9.1 and 8.3: the
// simulator accepting a request proves nothing about a real server.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path string
	params       map[string]any
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{method: req.Method, path: strings.TrimPrefix(req.URL.Path, "/api2/json"), params: map[string]any{}}
	for k, vs := range req.URL.Query() {
		rec.params[k] = vs[len(vs)-1]
	}
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		if len(body) > 0 {
			var obj map[string]any
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&obj); err != nil {
				form, ferr := url.ParseQuery(string(body))
				if ferr != nil {
					return nil, err
				}
				for k, vs := range form {
					obj[k] = vs[len(vs)-1]
				}
			}
			for k, v := range obj {
				rec.params[k] = v
			}
		}
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

// check validates every recorded request against both schemas.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no requests recorded")
	}
	for _, v := range []pveapi.Version{pveapi.V91, pveapi.V83} {
		schema, err := pveapi.Load(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range r.reqs {
			m, pathParams, err := schema.Lookup(req.method, req.path)
			if err != nil {
				t.Errorf("PVE %s: %s %s: %v", v, req.method, req.path, err)
				continue
			}
			merged, errs := pveapi.MergeParams(pathParams, req.params)
			if errs == nil {
				errs = m.Verify(merged)
			}
			if errs != nil {
				shown := map[string]any{}
				for k, v := range req.params {
					if k == "password" {
						v = "REDACTED"
					}
					shown[k] = v
				}
				t.Errorf("PVE %s would reject %s %s %v:\n%v", v, req.method, req.path, shown, errs)
			}
		}
	}
}
