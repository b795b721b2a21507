package sim

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
)

// The control API at PHOENIX_SIM_URL: what tests and demos read and change
// outside Proxmox's own API.
//
//	GET  /journal  every event, in order
//	GET  /stats    API requests per endpoint ("METHOD /path/{template}")
//	POST /world    change node facts: {"nodes":{"pve1":{"driverVersion":"580.95.05","uvmLoaded":true}}}

// NodeChange is a change to one node's facts.
type NodeChange struct {
	// Online false takes the node out of reach of the cluster (proxied
	// requests answer 595), true brings it back.
	Online        *bool   `json:"online"`
	DriverVersion *string `json:"driverVersion"`
	UVMLoaded     *bool   `json:"uvmLoaded"`
	GPUs          *int    `json:"gpus"`
}

// WorldChange is the body of POST /world.
type WorldChange struct {
	Nodes map[string]NodeChange `json:"nodes"`
}

// Change applies a world change, as a node upgrade or reboot would.
func (s *Sim) Change(wc WorldChange) error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(wc.Nodes)) {
		if s.c.node(name) == nil {
			return &apiError{Status: http.StatusNotFound, Reason: "no node " + name}
		}
	}
	for name, ch := range wc.Nodes {
		n := s.c.node(name)
		if ch.DriverVersion != nil {
			n.DriverVersion = *ch.DriverVersion
		}
		if ch.UVMLoaded != nil {
			v := *ch.UVMLoaded
			n.UVMLoaded = &v
		}
		if ch.GPUs != nil {
			n.GPUs = *ch.GPUs
		}
		if ch.Online != nil {
			n.offline = !*ch.Online
		}
		s.c.journal.add(s.c.now(), Event{Node: name, Kind: "world", Name: "change", OK: true})
	}
	return nil
}

// Stats returns API request counts per endpoint.
func (s *Sim) Stats() map[string]int {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return maps.Clone(s.c.stats)
}

func (s *Sim) controlHandler() http.Handler {
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /journal", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Journal()) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Stats()) })
	mux.HandleFunc("POST /world", func(w http.ResponseWriter, r *http.Request) {
		var wc WorldChange
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wc); err != nil {
			http.Error(w, "bad world change: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.Change(wc); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, map[string]string{"status": "ok"})
	})
	return mux
}

// SetScriptFault sets the failure probability of a named script's apply, as a
// test heals or breaks one step.
func (s *Sim) SetScriptFault(name string, p float64) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	scripts := maps.Clone(s.c.world.Spec.Faults.Exec.Scripts)
	if scripts == nil {
		scripts = map[string]float64{}
	}
	scripts[name] = p
	s.c.world.Spec.Faults.Exec.Scripts = scripts
}
