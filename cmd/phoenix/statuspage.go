package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/reconciler"
	"github.com/phoenixhv/phoenix/spec"
)

// The status page: phoenix run --listen serves it at / and its live events
// at /events. It is read-only (GET only), rendered on the server from what
// the loop's last pass saw, and works without JavaScript; a few lines of
// script append the events the stream brings. Everything on it goes through
// html/template's escaping (guest names and errors are user data) and, as
// the rest of the HTTP output, through the credential redactor.
//
// Access: open when the listen address is a loopback address. Otherwise,
// when PHOENIX_STATUS_TOKEN is set, / and /events want it, as
// "Authorization: Bearer TOKEN" or once as ?token=TOKEN, which sets an
// HttpOnly cookie and redirects to the address without it. Without the
// variable the page is served to anyone who reaches the address, and the
// log says so once when phoenix starts.

// statusTokenEnv names the variable with the status page's token.
const statusTokenEnv = "PHOENIX_STATUS_TOKEN"

// statusPageEvents is how many apply events the page keeps.
const statusPageEvents = 100

// statusCookie is the cookie a ?token= sets.
const statusCookie = "phoenix_status"

//go:embed statuspage.html
var statusPageHTML string

// statusPageScript appends the events /events streams to the table; the
// page is whole without it. Its hash is in the Content-Security-Policy, so
// that no other script can run on the page.
var statusPageScript = `(function () {
  var body = document.getElementById("events-body");
  if (!body || !window.EventSource) { return; }
  var es = new EventSource("events?after=" + encodeURIComponent(body.getAttribute("data-last-seq")));
  es.onmessage = function (m) {
    var ev = JSON.parse(m.data);
    var tr = document.createElement("tr");
    tr.className = "event outcome-" + ev.outcome;
    tr.setAttribute("data-seq", ev.seq);
    tr.setAttribute("data-live", "true");
    [ev.time, ev.guest, ev.what, ev.outcome, ev.detail || ""].forEach(function (v) {
      var td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    });
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > ` + strconv.Itoa(statusPageEvents) + `) { body.deleteRow(body.rows.length - 1); }
    body.setAttribute("data-last-seq", ev.seq);
    var none = document.getElementById("no-events");
    if (none) { none.remove(); }
  };
})();`

var statusPageTmpl = template.Must(template.New("status").Funcs(template.FuncMap{
	"script": func() template.JS { return template.JS(statusPageScript) },
	"join":   func(s []string) string { return strings.Join(s, ", ") },
}).Parse(statusPageHTML))

// statusPageCSP allows the page's own style and script and nothing else: no
// external asset, no inline script but the one above.
var statusPageCSP = func() string {
	sum := sha256.Sum256([]byte(statusPageScript))
	return "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
		"script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// passSource is what the page shows: the loop (reconciler.Loop).
type passSource interface {
	Report() reconciler.Report
	LastView() reconciler.PassView
}

// statusPage serves / and /events.
type statusPage struct {
	loop    passSource
	version string
	now     func() time.Time

	// token is PHOENIX_STATUS_TOKEN; open is set for a loopback address,
	// where no token is asked.
	token string
	open  bool

	mu     sync.Mutex
	seq    uint64
	events []pageEvent
	subs   map[chan pageEvent]struct{}
}

// pageEvent is an apply event as the page shows it.
type pageEvent struct {
	Seq     uint64 `json:"seq"`
	Time    string `json:"time"`
	Guest   string `json:"guest"`
	What    string `json:"what"`
	Outcome string `json:"outcome"`
	Detail  string `json:"detail,omitempty"`
}

func newStatusPage(loop passSource, token string) *statusPage {
	return &statusPage{loop: loop, version: version, now: time.Now, token: token, subs: map[chan pageEvent]struct{}{}}
}

// event keeps an apply event for the page and sends it to the streams: the
// actions' starts and ends and what is noteworthy, not the heartbeats.
func (p *statusPage) event(ev reconciler.Event) {
	if ev.Outcome == reconciler.Running || ev.Outcome == reconciler.Output || !(ev.ActionLevel() || ev.Noteworthy()) {
		return
	}
	pe := pageEvent{Time: ev.Time.Format("15:04:05"), Guest: ev.Guest, What: ev.Name(), Outcome: string(ev.Outcome)}
	if ev.Time.IsZero() {
		pe.Time = p.now().Format("15:04:05")
	}
	switch {
	case ev.Err != nil:
		pe.Detail = ev.Err.Error()
	case ev.Outcome == reconciler.Retrying:
		pe.Detail = "again in " + ev.Duration.Round(time.Second).String()
	case ev.Outcome == reconciler.Started && ev.Reason != "":
		pe.Detail = ev.Reason
	case ev.Duration > 0:
		pe.Detail = ev.Duration.Round(time.Millisecond).String()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	pe.Seq = p.seq
	p.events = append(p.events, pe)
	if len(p.events) > statusPageEvents {
		p.events = slices.Delete(p.events, 0, len(p.events)-statusPageEvents)
	}
	for ch := range p.subs {
		select {
		case ch <- pe:
		default:
			// A reader that does not keep up is let go; its browser
			// reconnects and asks for what it missed.
			delete(p.subs, ch)
			close(ch)
		}
	}
}

// listening registers the handlers on mux for a server listening on addr.
func (p *statusPage) listening(mux *http.ServeMux, addr net.Addr, log *slog.Logger) {
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		p.open = true
	}
	if !p.open && p.token == "" {
		log.Warn("the status page at / is open to anyone who reaches "+addr.String()+": set "+statusTokenEnv+" to ask for a token, or listen on 127.0.0.1",
			"address", addr.String())
	}
	mux.Handle("GET /{$}", p.guard(http.HandlerFunc(p.servePage)))
	mux.Handle("GET /events", p.guard(http.HandlerFunc(p.serveEvents)))
}

// cookieValue is what the cookie holds: a digest of the token, not the token.
func (p *statusPage) cookieValue() string {
	sum := sha256.Sum256([]byte("phoenix status page\x00" + p.token))
	return hex.EncodeToString(sum[:])
}

func equalSecret(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// guard asks for the token where one is needed.
func (p *statusPage) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.open || p.token == "" {
			h.ServeHTTP(w, r)
			return
		}
		if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equalSecret(strings.TrimSpace(auth), p.token) {
			h.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(statusCookie); err == nil && equalSecret(c.Value, p.cookieValue()) {
			h.ServeHTTP(w, r)
			return
		}
		q := r.URL.Query()
		if q.Has("token") && equalSecret(q.Get("token"), p.token) {
			http.SetCookie(w, &http.Cookie{Name: statusCookie, Value: p.cookieValue(), Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
			// The token leaves the address bar and the history.
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			w.Header().Set("Referrer-Policy", "no-referrer")
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="phoenix"`)
		http.Error(w, "the status page wants the token in "+statusTokenEnv+": send it as Authorization: Bearer TOKEN, or open /?token=TOKEN once", http.StatusUnauthorized)
	})
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", statusPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (p *statusPage) servePage(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	if err := statusPageTmpl.Execute(&b, p.data()); err != nil {
		http.Error(w, "the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// serveEvents streams the events after ?after= (or Last-Event-ID, which a
// reconnecting browser sends) as Server-Sent Events, then each new one.
func (p *statusPage) serveEvents(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if id, err := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64); err == nil {
		after = id
	}
	ch := make(chan pageEvent, 64)
	p.mu.Lock()
	var backlog []pageEvent
	for _, ev := range p.events {
		if ev.Seq > after {
			backlog = append(backlog, ev)
		}
	}
	p.subs[ch] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if _, ok := p.subs[ch]; ok {
			delete(p.subs, ch)
			close(ch)
		}
		p.mu.Unlock()
	}()
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	send := func(ev pageEvent) bool {
		data, _ := json.Marshal(ev)
		// One write per message: the redactor sees it whole.
		if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", ev.Seq, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for _, ev := range backlog {
		if !send(ev) {
			return
		}
	}
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok || !send(ev) {
				return
			}
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// The page's data.
type (
	pageData struct {
		Version, Revision string
		// RevisionError is why a newer revision was refused (run --git).
		RevisionError string
		Now           string
		Pass          *pagePass
		Ready, Total  int
		Lineage       pageLineage
		Guests        []pageGuest
		Nodes         []pageNode
		Plan, PlanAt  string
		PlanRemaining string
		Events        []pageEvent
		LastSeq       uint64
	}
	pagePass struct {
		Started, Duration, Result, Class string
		Error                            string
		Changed, Failed, Problems        int
		LastGood                         string
		PruneHeld                        string
	}
	pageLineage struct {
		Width, Height int
		Nodes         []pageLineageNode
		Edges         []pageEdge
	}
	pageLineageNode struct {
		Name, Label, Kind, Sub, Cond string
		X, Y, W, H, TextX            int
	}
	pageEdge struct {
		Parent, Child string
		Path          string
		Cond          string
	}
	pageGuest struct {
		Name, Kind, Node, Cond, Parent string
		VMID                           int
		Conditions                     []reconciler.Condition
		Features                       []pageFeature
		Pending                        []string
		Errors                         []string
		Health, HealthClass            string
	}
	pageFeature struct {
		Name, Version, State string
	}
	pageNode struct {
		Name, Online, Driver, Error string
		GPUs, Devices               int
		Probed, Mismatch, Broken    bool
		Userspace                   []string
		MismatchText                string
	}
)

// The colours of the lineage: a class each.
const (
	condReady      = "ready"
	condConverging = "converging"
	condFailed     = "failed"
	condUnknown    = "unknown"
)

func (p *statusPage) data() pageData {
	r := p.loop.Report()
	v := p.loop.LastView()
	d := pageData{Version: p.version, Revision: r.Revision, RevisionError: r.RevisionError, Now: p.now().Format(time.RFC3339)}
	if r.Pass != nil {
		pp := &pagePass{Started: r.Pass.Started.Format(time.RFC3339), Duration: r.Pass.Duration.Round(time.Millisecond).String(),
			Error: r.Pass.Error, Changed: r.Pass.Changed, Failed: r.Pass.Failed, Problems: r.Pass.Problems, PruneHeld: r.Pass.PruneHeld}
		switch {
		case r.Pass.Error != "":
			pp.Result, pp.Class = "could not run", condFailed
		case r.Pass.Converged():
			pp.Result, pp.Class = "converged", condReady
		default:
			pp.Result, pp.Class = "not converged", condConverging
		}
		if r.LastGood != nil {
			pp.LastGood = r.LastGood.Format(time.RFC3339)
		}
		d.Pass = pp
	}
	statuses := map[string]reconciler.GuestStatus{}
	for _, st := range r.Guests {
		statuses[st.Name] = st
	}
	// The guests in lineage order, as the last pass resolved them.
	var order []*spec.Resolved
	if v.Res != nil {
		order = v.Res.Guests
	} else {
		for _, st := range r.Guests {
			order = append(order, &spec.Resolved{Name: st.Name, Kind: st.Kind, VMID: st.VMID})
		}
	}
	for _, res := range order {
		st, known := statuses[res.Name]
		g := pageGuest{Name: res.Name, Kind: string(res.Kind), VMID: res.VMID, Node: res.Settings.Node, Parent: res.Parent}
		if known {
			g.VMID, g.Node, g.Conditions = st.VMID, st.Node, st.Conditions
			g.Pending = append(g.Pending, st.Pending...)
			if st.LastError != nil {
				g.Errors = append(g.Errors, fmt.Sprintf("%s: %s (%s, %s)", st.LastError.Step, st.LastError.Message, st.LastError.Kind, st.LastError.At.Format(time.RFC3339)))
			}
			if st.Health != nil {
				g.Health, g.HealthClass = healthText(*st.Health)
			}
		}
		if wait, ok := r.Backoff[res.Name]; ok {
			g.Errors = append(g.Errors, wait)
		}
		problem := false
		if v.Remaining != nil {
			if gp, ok := v.Remaining.Guest(res.Name); ok {
				for _, c := range gp.Changes {
					g.Pending = append(g.Pending, c.Step()+": "+c.Reason)
				}
				for _, e := range gp.Errors {
					g.Errors = append(g.Errors, fmt.Sprintf("%s (%s)", e.Message, e.Kind))
					problem = true
				}
			}
		}
		g.Features = pageFeatures(res, g.VMID, v.Obs)
		g.Cond = guestCond(st, known, problem || len(g.Errors) > 0 || g.HealthClass == condFailed)
		d.Guests = append(d.Guests, g)
		d.Total++
		if g.Cond == condReady {
			d.Ready++
		}
	}
	d.Lineage = lineage(order, d.Guests)
	d.Nodes = pageNodes(v)
	if v.Applied != nil {
		var b strings.Builder
		_ = v.Applied.WriteText(&b, reconciler.TextOptions{})
		d.Plan, d.PlanAt = b.String(), v.Started.Format(time.RFC3339)
		if v.Remaining != v.Applied {
			b.Reset()
			_ = v.Remaining.WriteText(&b, reconciler.TextOptions{})
			d.PlanRemaining = b.String()
		}
	}
	p.mu.Lock()
	d.Events = slices.Clone(p.events)
	d.LastSeq = p.seq
	p.mu.Unlock()
	slices.Reverse(d.Events) // newest first
	return d
}

// guestCond is the colour of a guest: red for a failure or a problem,
// green when Ready, grey when unknown or not phoenix's, amber otherwise.
func guestCond(st reconciler.GuestStatus, known, failed bool) string {
	switch {
	case !known:
		return condUnknown
	case failed:
		return condFailed
	case st.Ready():
		return condReady
	}
	for _, c := range st.Conditions {
		if c.Type == reconciler.CondExists && !c.Status && strings.Contains(c.Message, "held by") {
			return condUnknown // a guest phoenix does not manage holds its VMID
		}
	}
	return condConverging
}

func healthText(h reconciler.GuestHealth) (string, string) {
	if h.NotChecked != "" {
		return "not checked: " + h.NotChecked, condUnknown
	}
	var parts []string
	class := condReady
	for _, c := range h.Checks {
		s := "healthy"
		if !c.Healthy {
			s, class = "unhealthy", condFailed
		}
		parts = append(parts, c.Name+" "+s)
	}
	if h.LastAction != "" {
		parts = append(parts, h.LastAction)
	}
	return strings.Join(parts, "; "), class
}

// pageFeatures lists a guest's effective features with the versions its
// record has: installed here, inherited (installed in a template it was
// cloned from), or missing.
func pageFeatures(res *spec.Resolved, vmid int, obs *reconciler.Observed) []pageFeature {
	var recs map[string]reconciler.FeatureRecord
	if obs != nil {
		if og := obs.Guests[vmid]; og != nil && og.State != nil {
			recs = og.State.Features
		}
	}
	var out []pageFeature
	for _, f := range res.Effective {
		rec, ok := recs[f]
		switch {
		case !ok:
			out = append(out, pageFeature{Name: f, State: "missing"})
		case rec.VMID != vmid:
			out = append(out, pageFeature{Name: f, Version: rec.Version, State: "inherited"})
		default:
			out = append(out, pageFeature{Name: f, Version: rec.Version, State: "installed"})
		}
	}
	return out
}

// lineage lays the guests out as a tree, left to right: a column per
// generation, a row per guest in lineage order (parents before clones).
func lineage(order []*spec.Resolved, guests []pageGuest) pageLineage {
	const (
		colW, rowH, boxW, boxH, pad = 230, 50, 200, 38, 10
		maxLabel                    = 26
	)
	var l pageLineage
	at := map[string]pageLineageNode{}
	depth := 0
	for i, res := range order {
		g := guests[i]
		x, y := pad+len(res.Lineage)*colW, pad+i*rowH
		depth = max(depth, len(res.Lineage))
		label := g.Name
		if len(label) > maxLabel {
			label = label[:maxLabel-1] + "…"
		}
		n := pageLineageNode{Name: g.Name, Label: label, Kind: g.Kind, Sub: fmt.Sprintf("%s %d on %s", g.Kind, g.VMID, g.Node),
			Cond: g.Cond, X: x, Y: y, W: boxW, H: boxH, TextX: x + 8}
		at[g.Name] = n
		l.Nodes = append(l.Nodes, n)
		if parent, ok := at[res.Parent]; ok && res.Parent != "" {
			x1, y1 := parent.X+parent.W, parent.Y+parent.H/2
			x2, y2 := x, y+boxH/2
			mid := (x1 + x2) / 2
			l.Edges = append(l.Edges, pageEdge{Parent: parent.Name, Child: g.Name, Cond: g.Cond,
				Path: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mid, y1, mid, y2, x2, y2)})
		}
	}
	l.Width = 2*pad + depth*colW + boxW
	l.Height = 2*pad + max(len(order), 1)*rowH
	return l
}

// pageNodes are the cluster's nodes with their GPUs and drivers, a
// mismatch marked where a guest's userspace driver is not the node's.
func pageNodes(v reconciler.PassView) []pageNode {
	if v.Obs == nil {
		return nil
	}
	mismatch := map[string]reconciler.DriverMismatch{}
	for _, m := range reconciler.DriverMismatches(v.Res, v.Obs, v.Remaining) {
		mismatch[m.Node] = m
	}
	userspace := map[string][]string{}
	if v.Res != nil && v.Remaining != nil {
		for _, r := range v.Res.Guests {
			gp, ok := v.Remaining.Guest(r.Name)
			if !ok {
				continue
			}
			if og := v.Obs.Guests[gp.VMID]; og != nil && og.State != nil {
				if rec, ok := og.State.Features[spec.FeatureNVIDIADriver]; ok && rec.Version != "" {
					userspace[r.Settings.Node] = append(userspace[r.Settings.Node], r.Name+" "+rec.Version)
				}
			}
		}
	}
	names := map[string]string{}
	for _, n := range v.Obs.Nodes {
		names[n.Name] = "offline"
		if n.Online {
			names[n.Name] = "online"
		}
	}
	for n := range v.Obs.Hosts {
		if _, ok := names[n]; !ok {
			names[n] = ""
		}
	}
	var out []pageNode
	if v.Res != nil {
		for _, r := range v.Res.Guests {
			if _, ok := names[r.Settings.Node]; !ok && r.Settings.Node != "" {
				names[r.Settings.Node] = ""
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		pn := pageNode{Name: name, Online: names[name], Userspace: userspace[name]}
		if h := v.Obs.Hosts[name]; h != nil {
			pn.Probed = true
			if h.Err != nil {
				pn.Error = h.Err.Error()
			} else {
				pn.Driver, pn.GPUs, pn.Devices, pn.Broken = h.Info.DriverVersion, h.Info.PCIGPUs, len(h.Info.Devices), h.Info.BrokenDriver()
			}
		}
		if m, ok := mismatch[name]; ok {
			pn.Mismatch = true
			pn.MismatchText = "host driver " + m.HostDriver + "; " + strings.Join(m.Guests, ", ")
		}
		out = append(out, pn)
	}
	return out
}
