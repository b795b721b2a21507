package sim

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
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
	c      *cluster
	schema *pveapi.Schema
	routes map[string]handler
	mu     sync.Mutex
	// tickets and csrf are what the simulator signed: PVE verifies both by
	// signature and age, so a CSRF token is bound to its user, not to the
	// ticket it came with.
	tickets map[string]grant
	csrf    map[string]grant
}

// grant is what a ticket or CSRF token carries: its user and when it was
// made (pve-common src/PVE/Ticket.pm puts the time in both).
type grant struct {
	user string
	at   time.Time
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
	s := &apiServer{c: c, schema: schema, tickets: map[string]grant{}, csrf: map[string]grant{}}
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
		"GET /nodes/{node}/lxc/{vmid}/interfaces":     s.lxcInterfaces,
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
	maps.Copy(s.routes, s.firewallRoutes())
	maps.Copy(s.routes, s.firewallSetRoutes())
	maps.Copy(s.routes, s.downloadRoutes())
	maps.Copy(s.routes, s.snapshotRoutes())
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
	// rest_handler checks the caller's privileges before the parameters
	// (privileges.go).
	if verrs == nil && route != "POST /access/ticket" {
		s.c.mu.Lock()
		aerr = s.c.authorize(who, m, merged)
		s.c.mu.Unlock()
		if aerr != nil {
			s.fail(w, r, path, vmid, aerr)
			return
		}
	}
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
		// A key sent without a value is Perl's undef: a handler sees no
		// value, as if the key had not been sent.
		if v != nil {
			params[k] = paramString(v)
		}
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

// limitMaxPost is the largest request body pveproxy reads
// (pve-http-server src/PVE/APIServer/AnyEvent.pm $limit_max_post).
const limitMaxPost = 64 * 1024

// readParams collects a request's parameters as pve-http-server does
// (src/PVE/APIServer/AnyEvent.pm authenticate_and_handle_request,
// extract_params, handle_api2_request): only PUT and POST may carry a body, of
// at most 64 KiB, form-encoded or JSON; the query's parameters then replace
// the body's of the same name, and the _dc cache-buster is dropped.
func readParams(r *http.Request) (map[string]any, *apiError) {
	out := map[string]any{}
	if r.ContentLength > 0 {
		body, aerr := readBody(r)
		if aerr != nil {
			return nil, aerr
		}
		out = body
	}
	maps.Copy(out, decodeURLEncoded(r.URL.RawQuery))
	delete(out, "_dc")
	return out, nil
}

// readBody decodes a PUT or POST body by its Content-Type, compared as
// parse_content_type leaves it: the part before the first ; or , as sent,
// case and all.
func readBody(r *http.Request) (map[string]any, *apiError) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		return nil, &apiError{Status: http.StatusNotImplemented, Reason: fmt.Sprintf("Unexpected content for method '%s'", r.Method)}
	}
	if r.ContentLength > limitMaxPost {
		// Read what the client sends before answering, so that the answer
		// is not lost to a reset of a connection closed with unread data.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, r.ContentLength))
		return nil, &apiError{Status: http.StatusNotImplemented, Reason: "for data too large"}
	}
	ctype := r.Header.Get("Content-Type")
	ct, _, _ := strings.Cut(strings.ReplaceAll(ctype, ",", ";"), ";")
	ct = strings.TrimSpace(ct)
	if ct != "" && ct != "application/x-www-form-urlencoded" && ct != "application/json" {
		return nil, &apiError{Status: 506, Reason: fmt.Sprintf("upload 'Content-Type '%s' not implemented", ctype)}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limitMaxPost))
	if err != nil {
		return nil, die("unable to read request body: %v", err)
	}
	if ct != "application/json" {
		return decodeURLEncoded(string(body)), nil
	}
	return decodeJSONBody(body)
}

// decodeJSONBody is extract_params' decode_json: a body that does not parse,
// or is no object, dies in handle_api2_request, which answers 500.
func decodeJSONBody(body []byte) (map[string]any, *apiError) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, die("malformed JSON string: %v", err)
	}
	switch obj := v.(type) {
	case map[string]any:
		return obj, nil
	case nil:
		return map[string]any{}, nil
	}
	return nil, die("Not a HASH reference")
}

// decodeURLEncoded is pve-http-server's decode_urlencoded: pairs split on &
// or ;, each split on = the way Perl's split does (the value ends at the next
// =, and "k" or "k=" leave the value undef), + and %XX decoded. A key sent
// again collects its values into a list, which PVE::RESTHandler joins with
// commas for a parameter of a -list format and PVE::JSONSchema refuses for
// any other string ("type check ('string') failed - got ARRAY"); a key sent
// without a value makes it undef again.
func decodeURLEncoded(data string) map[string]any {
	out := map[string]any{}
	if data == "" || data == "0" { // return $res if !$data
		return out
	}
	for _, kv := range perlSplit(data, "&;") {
		fields := perlSplit(kv, "=")
		k := ""
		if len(fields) > 0 {
			k = formUnescape(fields[0], true)
		}
		if len(fields) < 2 {
			out[k] = nil
			continue
		}
		v := formUnescape(fields[1], true)
		switch old := out[k].(type) {
		case nil:
			out[k] = v
		case []any:
			out[k] = append(old, v)
		default:
			out[k] = []any{old, v}
		}
	}
	return out
}

// perlSplit is Perl's split on a character class: leading empty fields stay,
// trailing ones are dropped, and an empty string gives no field at all.
func perlSplit(s, seps string) []string {
	var fields []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(seps, s[i]) >= 0 {
			fields = append(fields, s[start:i])
			start = i + 1
		}
	}
	fields = append(fields, s[start:])
	for len(fields) > 0 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	return fields
}

// formUnescape decodes %XX (and + as a space when plus is set) the way
// decode_urlencoded's substitutions and URI::Escape's uri_unescape do: a %
// not followed by two hex digits stays as it is.
func formUnescape(s string, plus bool) string {
	if plus {
		s = strings.ReplaceAll(s, "+", " ")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			n, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(n))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// pveTicketLifetime is how long a ticket and its CSRF token are valid
// (pve-access-control src/PVE/AccessControl.pm $ticket_lifetime).
const pveTicketLifetime = 2 * time.Hour

// authenticate accepts an API token header or a ticket cookie, and for ticket
// writes the CSRF header, as pve-manager's PVE/HTTPServer.pm auth_handler does
// (the checks themselves are pve-access-control's verify_token, verify_ticket
// and verify_csrf_prevention_token).
func (s *apiServer) authenticate(r *http.Request, m *pveapi.Method) (caller, *apiError) {
	if m.Path == "/access/ticket" && r.Method == http.MethodPost {
		return caller{}, nil
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "PVEAPIToken=") {
		return s.authenticateToken(strings.TrimPrefix(h, "PVEAPIToken="), m)
	}
	cookie, err := r.Cookie("PVEAuthCookie")
	if err != nil || cookie.Value == "" {
		return caller{}, unauthorized("No ticket")
	}
	// pve-http-server's extract_auth_value unescapes with uri_unescape,
	// which leaves + alone (a ticket's base64 signature has them).
	user, ok := s.validTicket(formUnescape(cookie.Value, false))
	if !ok {
		return caller{}, s.authFailed("permission denied - invalid PVE ticket")
	}
	if r.Method != http.MethodGet && !s.validCSRF(r.Header.Get("CSRFPreventionToken"), user) {
		// Checked outside auth_handler's eval: its text survives 9.1.5.
		return caller{}, unauthorized("Permission denied - invalid csrf token")
	}
	return caller{user: user}, nil
}

// authenticateToken is verify_token for a PVEAPIToken header's value.
func (s *apiServer) authenticateToken(value string, m *pveapi.Method) (caller, *apiError) {
	id, secret, ok := strings.Cut(value, "=")
	if !ok {
		return caller{}, s.authFailed("no tokenid specified")
	}
	user, name, ok := strings.Cut(id, "!")
	if !ok || !strings.Contains(user, "@") || name == "" {
		return caller{}, s.authFailed(fmt.Sprintf("'%s' is not a valid token ID - not able to split into user and token parts", id))
	}
	for _, t := range s.c.world.Spec.Users.Tokens {
		if t.ID != id {
			continue
		}
		if t.Secret != secret {
			return caller{}, s.authFailed("invalid token value!")
		}
		if !m.AllowToken {
			return caller{}, &apiError{Status: http.StatusForbidden,
				Reason: fmt.Sprintf("Permission check failed (URI '%s' not available with API token, need proper ticket.", m.Path)}
		}
		return caller{user: user, token: name}, nil
	}
	return caller{}, s.authFailed(fmt.Sprintf("no such token '%s' for user '%s'", name, user))
}

func unauthorized(reason string) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Reason: reason}
}

// authFailed is a refused token or ticket. Since pve-manager 9.1.5
// (PVE/HTTPServer.pm auth_handler, "unify error message in case of auth
// failure") the client only learns "Authentication failed!"; before, it got
// pve-access-control's own message.
func (s *apiServer) authFailed(detail string) *apiError {
	if versionAtLeastPatch(s.c.world.Spec.Version, 9, 1, 5) {
		return unauthorized("Authentication failed!")
	}
	return unauthorized(detail)
}

// versionAtLeastPatch reports whether a version such as 9.1.2 is at least
// major.minor.patch.
func versionAtLeastPatch(v string, major, minor, patch int) bool {
	got := [3]int{}
	for i, part := range strings.SplitN(v, ".", 3) {
		got[i], _ = strconv.Atoi(part)
	}
	want := [3]int{major, minor, patch}
	for i := range got {
		if got[i] != want[i] {
			return got[i] > want[i]
		}
	}
	return true
}

// ticketLifetime is the world's ticket lifetime in wall time.
func (s *apiServer) ticketLifetime() time.Duration {
	l := s.c.world.Spec.Users.TicketLifetime
	if l == 0 {
		l = Duration(pveTicketLifetime)
	}
	return s.c.world.Scaled(l)
}

// fresh reports whether a grant is younger than the ticket lifetime
// (pve-common src/PVE/Ticket.pm verify_rsa_ticket and
// verify_csrf_prevention_token: age < max_age).
func (s *apiServer) fresh(g grant) bool {
	return s.c.now().Sub(g.at) < s.ticketLifetime()
}

// validTicket returns the user of a ticket the simulator signed and that has
// not expired.
func (s *apiServer) validTicket(ticket string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.tickets[ticket]
	if !ok {
		return "", false
	}
	if !s.fresh(g) {
		delete(s.tickets, ticket)
		return "", false
	}
	return g.user, true
}

// validCSRF reports whether a CSRF token was made for user and has not
// expired. It is not tied to a ticket: a renewed ticket works with the token
// that came with the one before, for as long as that token lives.
func (s *apiServer) validCSRF(token, user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.csrf[token]
	return ok && g.user == user && s.fresh(g)
}

// login is POST /access/ticket (pve-access-control src/PVE/API2/AccessControl.pm
// create_ticket): the password, or a still valid ticket of the user (or of
// root@pam) in its place, which is how a ticket is renewed.
func (s *apiServer) login(p map[string]any) (any, *apiError) {
	user, _ := p["username"].(string)
	pass, _ := p["password"].(string)
	if realm, ok := p["realm"].(string); ok && !strings.Contains(user, "@") {
		user += "@" + realm
	}
	owner, renewal := s.validTicket(pass)
	renewal = renewal && (owner == "root@pam" || owner == user)
	// root@pam is the only user the simulated user.cfg has.
	if user != "root@pam" || !renewal && pass != s.c.world.Spec.Users.RootPassword {
		time.Sleep(s.c.world.Scaled(Duration(3 * time.Second)))
		return nil, unauthorized("authentication failure")
	}
	ticket, csrf := s.issue(user)
	return map[string]any{
		"username": user, "ticket": ticket, "CSRFPreventionToken": csrf,
		"cap": map[string]any{"vms": map[string]int{"VM.Allocate": 1}},
	}, nil
}

// issue makes a ticket and a CSRF token for user, shaped as
// pve-common's PVE/Ticket.pm assembles them: the time in hex, then an RSA
// signature (base64) or an HMAC (base64 without padding).
func (s *apiServer) issue(user string) (ticket, csrf string) {
	now := s.c.now()
	stamp := fmt.Sprintf("%08X", now.Unix())
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	mac := make([]byte, 32)
	_, _ = rand.Read(mac)
	ticket = "PVE:" + strings.ReplaceAll(user, ":", "%3A") + ":" + stamp + "::" + base64.StdEncoding.EncodeToString(sig)
	csrf = stamp + ":" + base64.RawStdEncoding.EncodeToString(mac)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, grants := range []map[string]grant{s.tickets, s.csrf} {
		maps.DeleteFunc(grants, func(_ string, g grant) bool { return !s.fresh(g) })
	}
	s.tickets[ticket] = grant{user: user, at: now}
	s.csrf[csrf] = grant{user: user, at: now}
	return ticket, csrf
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
