package sim

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/providers/pveapi"
)

// apiServer answers /api2/json the way pveproxy does: it authenticates, checks
// every request against the real API schema before a handler sees it, and writes
// errors with Proxmox's message as the HTTP reason phrase.
type apiServer struct {
	c       *cluster
	schema  *pveapi.Schema
	routes  map[string]handler
	mu      sync.Mutex
	tickets map[string]string // ticket -> user
	csrf    map[string]string // ticket -> CSRF token
}

// request is what a handler gets: the caller and every parameter, path ones
// included, as strings.
type request struct {
	who    caller
	params map[string]string
}

func (r request) node() string { return r.params["node"] }
func (r request) vmid() int    { n, _ := strconv.Atoi(r.params["vmid"]); return n }

type handler func(r request) (any, *apiError)

func newAPIServer(c *cluster, schema *pveapi.Schema) *apiServer {
	s := &apiServer{c: c, schema: schema, tickets: map[string]string{}, csrf: map[string]string{}}
	s.routes = map[string]handler{
		"GET /version":                        s.version,
		"GET /cluster/status":                 s.clusterStatus,
		"GET /cluster/resources":              s.clusterResources,
		"GET /cluster/nextid":                 s.nextID,
		"GET /nodes":                          s.nodesList,
		"GET /nodes/{node}/status":            s.nodeStatus,
		"GET /nodes/{node}/lxc":               s.lxcList,
		"POST /nodes/{node}/lxc":              s.locked(func(r request) (any, *apiError) { return s.c.create(r.who, r.node(), r.params) }),
		"GET /nodes/{node}/lxc/{vmid}":        s.lxcIndex,
		"DELETE /nodes/{node}/lxc/{vmid}":     s.locked(func(r request) (any, *apiError) { return s.c.destroy(r.who, r.node(), r.vmid(), r.params) }),
		"GET /nodes/{node}/lxc/{vmid}/config": s.lxcConfig,
		"PUT /nodes/{node}/lxc/{vmid}/config": s.locked(func(r request) (any, *apiError) {
			return s.c.setConfig(r.who, r.node(), r.vmid(), r.params)
		}),
		"GET /nodes/{node}/lxc/{vmid}/pending":        s.lxcPending,
		"GET /nodes/{node}/lxc/{vmid}/status/current": s.lxcStatus,
		"POST /nodes/{node}/lxc/{vmid}/status/start":  s.locked(func(r request) (any, *apiError) { return s.c.start(r.who, r.node(), r.vmid()) }),
		"POST /nodes/{node}/lxc/{vmid}/status/stop": s.locked(func(r request) (any, *apiError) {
			return s.c.stop(r.who, r.node(), r.vmid(), "vzstop")
		}),
		"POST /nodes/{node}/lxc/{vmid}/status/shutdown": s.locked(func(r request) (any, *apiError) {
			return s.c.stop(r.who, r.node(), r.vmid(), "vzshutdown")
		}),
		"POST /nodes/{node}/lxc/{vmid}/status/reboot": s.locked(func(r request) (any, *apiError) { return s.c.reboot(r.who, r.node(), r.vmid()) }),
		"POST /nodes/{node}/lxc/{vmid}/clone":         s.locked(func(r request) (any, *apiError) { return s.c.clone(r.who, r.node(), r.vmid(), r.params) }),
		"POST /nodes/{node}/lxc/{vmid}/template":      s.locked(func(r request) (any, *apiError) { return s.c.template(r.who, r.node(), r.vmid()) }),
		"PUT /nodes/{node}/lxc/{vmid}/resize":         s.locked(func(r request) (any, *apiError) { return s.c.resize(r.who, r.node(), r.vmid(), r.params) }),
		"GET /nodes/{node}/tasks":                     s.taskList,
		"GET /nodes/{node}/tasks/{upid}/status":       s.taskStatus,
		"GET /nodes/{node}/tasks/{upid}/log":          s.taskLog,
		"GET /nodes/{node}/storage":                   s.storageIndex,
		"GET /nodes/{node}/storage/{storage}/content": s.storageContent,
		"GET /nodes/{node}/network":                   s.networkIndex,
	}
	return s
}

// locked runs a handler with the cluster lock held.
func (s *apiServer) locked(h handler) handler {
	return func(r request) (any, *apiError) {
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		return h(r)
	}
}

const apiPrefix = "/api2/json"

func (s *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := s.c.world.Spec.Latency.D(); d > 0 {
		time.Sleep(d)
	}
	path, ok := strings.CutPrefix(r.URL.Path, apiPrefix)
	if !ok {
		s.fail(w, r, "", 0, &apiError{Status: http.StatusNotImplemented, Reason: fmt.Sprintf("Method '%s %s' not implemented", r.Method, r.URL.Path)})
		return
	}
	m, pathParams, err := s.schema.Lookup(r.Method, path)
	if err != nil {
		var le *pveapi.LookupError
		if errors.As(err, &le) {
			s.fail(w, r, path, 0, &apiError{Status: le.StatusCode(), Reason: le.Error()})
			return
		}
		s.fail(w, r, path, 0, die("%v", err))
		return
	}
	route := r.Method + " " + m.Path
	s.c.mu.Lock()
	s.c.stats[route]++
	s.c.mu.Unlock()
	vmid, _ := strconv.Atoi(pathParams["vmid"])

	who, aerr := s.authenticate(r, m)
	if aerr != nil {
		if aerr.Status == http.StatusUnauthorized {
			// pveproxy holds every 401 for three seconds, against guessing.
			time.Sleep(s.c.world.Scaled(Duration(3 * time.Second)))
		}
		s.fail(w, r, path, vmid, aerr)
		return
	}
	raw, perr := readParams(r)
	if perr != nil {
		s.fail(w, r, path, vmid, perr)
		return
	}
	merged, verrs := pveapi.MergeParams(pathParams, raw)
	if verrs == nil {
		verrs = m.Verify(merged)
	}
	if verrs != nil {
		s.fail(w, r, path, vmid, paramError(verrs))
		return
	}
	if route == "POST /access/ticket" {
		data, aerr := s.login(merged)
		s.answer(w, r, path, vmid, data, aerr)
		return
	}
	// pveproxy forwards a node's requests to that node; one it cannot reach
	// answers 595, a status of Proxmox's own.
	if name := pathParams["node"]; name != "" && route != "GET /nodes" {
		s.c.mu.Lock()
		n := s.c.node(name)
		down := n != nil && n.offline
		s.c.mu.Unlock()
		if down {
			s.fail(w, r, path, vmid, &apiError{Status: 595, Reason: "Connection refused"})
			return
		}
	}
	h, ok := s.routes[route]
	if !ok {
		s.fail(w, r, path, vmid, &apiError{Status: http.StatusNotImplemented,
			Reason: fmt.Sprintf("Method '%s %s' not implemented (the simulator does not model it)", r.Method, path)})
		return
	}
	if f := s.fault(r, vmid); f != nil {
		if f == errDropped {
			dropConnection(w)
			s.record(r, path, vmid, false, "connection dropped (injected)")
			return
		}
		s.fail(w, r, path, vmid, f)
		return
	}
	params := map[string]string{}
	for k, v := range merged {
		params[k] = paramString(v)
	}
	data, aerr := h(request{who: who, params: params})
	// A dropped connection after the work is done is the nastiest fault: the
	// change happened, the client does not know.
	if aerr == nil && r.Method != http.MethodGet && s.dropAfter() {
		dropConnection(w)
		s.record(r, path, vmid, false, "connection dropped after the change (injected)")
		return
	}
	s.answer(w, r, path, vmid, data, aerr)
}

// paramString turns a decoded JSON value into the string form handlers read.
func paramString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "1"
		}
		return "0"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, paramString(e))
		}
		return strings.Join(parts, ",")
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// readParams collects query parameters and, for writes, the form or JSON body.
func readParams(r *http.Request) (map[string]any, *apiError) {
	out := map[string]any{}
	for k, vs := range r.URL.Query() {
		out[k] = vs[len(vs)-1]
	}
	if r.Method == http.MethodGet || r.Body == nil {
		return out, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, die("unable to read request body: %v", err)
	}
	if len(body) == 0 {
		return out, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var obj map[string]any
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			return nil, &apiError{Status: http.StatusBadRequest, Reason: "malformed JSON body: " + err.Error()}
		}
		maps.Copy(out, obj)
	default:
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &apiError{Status: http.StatusBadRequest, Reason: "malformed form body"}
		}
		for k, vs := range form {
			out[k] = vs[len(vs)-1]
		}
	}
	return out, nil
}

// authenticate accepts an API token header or a ticket cookie, and for ticket
// writes the CSRF header, as pveproxy does.
func (s *apiServer) authenticate(r *http.Request, m *pveapi.Method) (caller, *apiError) {
	if m.Path == "/access/ticket" && r.Method == http.MethodPost {
		return caller{}, nil
	}
	unauthorized := func(reason string) *apiError { return &apiError{Status: http.StatusUnauthorized, Reason: reason} }
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "PVEAPIToken=") {
		id, secret, ok := strings.Cut(strings.TrimPrefix(h, "PVEAPIToken="), "=")
		if !ok {
			return caller{}, unauthorized("no tokenid specified")
		}
		user, name, ok := strings.Cut(id, "!")
		if !ok || !strings.Contains(user, "@") || name == "" {
			return caller{}, unauthorized(fmt.Sprintf("'%s' is not a valid token ID - not able to split into user and token parts", id))
		}
		for _, t := range s.c.world.Spec.Users.Tokens {
			if t.ID != id {
				continue
			}
			if t.Secret != secret {
				return caller{}, unauthorized("invalid token value!")
			}
			if !m.AllowToken {
				return caller{}, &apiError{Status: http.StatusForbidden,
					Reason: fmt.Sprintf("Permission check failed (URI '%s' not available with API token, need proper ticket.", m.Path)}
			}
			return caller{user: user, token: name}, nil
		}
		return caller{}, unauthorized(fmt.Sprintf("no such token '%s' for user '%s'", name, user))
	}
	cookie, err := r.Cookie("PVEAuthCookie")
	if err != nil || cookie.Value == "" {
		return caller{}, unauthorized("No ticket")
	}
	ticket, _ := url.QueryUnescape(cookie.Value)
	s.mu.Lock()
	user, ok := s.tickets[ticket]
	csrf := s.csrf[ticket]
	s.mu.Unlock()
	if !ok {
		return caller{}, unauthorized("permission denied - invalid PVE ticket")
	}
	if r.Method != http.MethodGet && r.Header.Get("CSRFPreventionToken") != csrf {
		return caller{}, unauthorized("Permission denied - invalid csrf token")
	}
	return caller{user: user}, nil
}

// login is POST /access/ticket.
func (s *apiServer) login(p map[string]any) (any, *apiError) {
	user, _ := p["username"].(string)
	pass, _ := p["password"].(string)
	if realm, ok := p["realm"].(string); ok && !strings.Contains(user, "@") {
		user += "@" + realm
	}
	if user != "root@pam" || pass != s.c.world.Spec.Users.RootPassword {
		time.Sleep(s.c.world.Scaled(Duration(3 * time.Second)))
		return nil, &apiError{Status: http.StatusUnauthorized, Reason: "authentication failure"}
	}
	ticket := "PVE:" + user + ":" + strings.ToUpper(randomHex(4)) + "::" + randomHex(64)
	csrf := strings.ToUpper(randomHex(4)) + ":" + randomHex(20)
	s.mu.Lock()
	s.tickets[ticket], s.csrf[ticket] = user, csrf
	s.mu.Unlock()
	return map[string]any{
		"username": user, "ticket": ticket, "CSRFPreventionToken": csrf,
		"cap": map[string]any{"vms": map[string]int{"VM.Allocate": 1}},
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var errDropped = &apiError{Status: -1, Reason: "dropped"}

// fault draws the world's injected faults for one request.
func (s *apiServer) fault(r *http.Request, vmid int) *apiError {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	f := s.c.world.Spec.Faults.API
	switch {
	case s.c.chance(f.DropConnection / 2):
		return errDropped
	case s.c.chance(f.Error500):
		return die("proxy handler failed: got timeout")
	case r.Method != http.MethodGet && vmid != 0 && s.c.chance(f.LockTimeout):
		return die("can't lock file '/run/lock/lxc/pve-config-%d.lock' - got timeout", vmid)
	}
	return nil
}

func (s *apiServer) dropAfter() bool {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.c.chance(s.c.world.Spec.Faults.API.DropConnection / 2)
}

// dropConnection closes the connection without an answer.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (s *apiServer) record(r *http.Request, path string, vmid int, ok bool, detail string) {
	node := ""
	if rest, found := strings.CutPrefix(path, "/nodes/"); found {
		node, _, _ = strings.Cut(rest, "/")
	}
	s.c.journal.add(s.c.now(), Event{Node: node, VMID: vmid, Kind: "api", Name: r.Method + " " + path, OK: ok, Detail: detail})
}

// pveHeaders are what pveproxy sends with every answer.
func pveHeaders(h http.Header, now time.Time) {
	date := now.UTC().Format(http.TimeFormat)
	h.Set("Server", "pve-api-daemon/3.0")
	h.Set("Cache-Control", "max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Date", date)
	h.Set("Expires", date)
	h.Set("Content-Type", "application/json;charset=UTF-8")
}

func (s *apiServer) answer(w http.ResponseWriter, r *http.Request, path string, vmid int, data any, aerr *apiError) {
	if aerr != nil {
		s.fail(w, r, path, vmid, aerr)
		return
	}
	body, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		s.fail(w, r, path, vmid, die("unable to encode answer: %v", err))
		return
	}
	s.record(r, path, vmid, true, "")
	pveHeaders(w.Header(), s.c.now())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// fail writes an error answer. Go's server always sends the standard reason
// phrase, but Proxmox puts its message there and clients read it from the
// status line, so the answer is written by hand on the hijacked connection.
func (s *apiServer) fail(w http.ResponseWriter, r *http.Request, path string, vmid int, e *apiError) {
	s.record(r, path, vmid, false, e.Reason)
	payload := map[string]any{"data": nil}
	if versionAtLeast(s.c.world.Spec.Version, 9) {
		payload["message"] = e.Reason + "\n"
	}
	if e.Errors != nil {
		payload["errors"] = e.Errors
	}
	body, _ := json.Marshal(payload)
	h := http.Header{}
	pveHeaders(h, s.c.now())
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Connection", "close")
	hj, ok := w.(http.Hijacker)
	if !ok {
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(e.Status)
		_, _ = w.Write(body)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	reason := strings.ReplaceAll(strings.ReplaceAll(e.Reason, "\r", " "), "\n", " ")
	writeRaw(buf.Writer, e.Status, reason, h, body)
}

func writeRaw(bw *bufio.Writer, status int, reason string, h http.Header, body []byte) {
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", status, reason)
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			fmt.Fprintf(bw, "%s: %s\r\n", k, v)
		}
	}
	bw.WriteString("\r\n")
	bw.Write(body)
	_ = bw.Flush()
}
