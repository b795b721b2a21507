package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// SavedPlanFormat is the version of the saved plan file.
const SavedPlanFormat = 1

// SavedPlan is a plan written to a file by plan --out, for apply FILE to carry
// out exactly, as terraform users expect: it holds the plan, the options it
// was made with, the digests of the spec files it was made from, and a
// fingerprint of the cluster it observed. Apply refuses it when the specs or
// the cluster have changed since.
type SavedPlan struct {
	// Format marks the file and its version.
	Format  int       `json:"phoenix_saved_plan"`
	Created time.Time `json:"created"`
	// Endpoint is the API the plan observed.
	Endpoint string      `json:"endpoint"`
	Options  PlanOptions `json:"options"`
	// Specs are the spec files, each with its SHA-256.
	Specs []SpecFile `json:"specs"`
	// Cluster is the fingerprint of what the plan observed, by thing
	// ("guest 950", "node pve1").
	Cluster map[string]string `json:"cluster"`
	Plan    *Plan             `json:"plan"`
}

// SpecFile is one spec file a saved plan was made from.
type SpecFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// SpecFileOf digests a spec file's content.
func SpecFileOf(path string, content []byte) SpecFile {
	sum := sha256.Sum256(content)
	return SpecFile{Path: path, SHA256: hex.EncodeToString(sum[:])}
}

// NewSavedPlan records a plan with what it was made from.
func NewSavedPlan(plan *Plan, obs *Observed, opts PlanOptions, endpoint string, specs []SpecFile, now time.Time) *SavedPlan {
	return &SavedPlan{Format: SavedPlanFormat, Created: now.UTC(), Endpoint: endpoint, Options: opts,
		Specs: specs, Cluster: obs.Fingerprint(), Plan: plan}
}

// Write writes the saved plan as indented JSON.
func (s *SavedPlan) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// ErrNotSavedPlan is the error of ReadSavedPlan on a file that is not one.
var ErrNotSavedPlan = errors.New("not a saved plan")

// ReadSavedPlan reads a file written by Write.
func ReadSavedPlan(data []byte) (*SavedPlan, error) {
	var probe struct {
		Format *int `json:"phoenix_saved_plan"`
	}
	if err := json.Unmarshal(data, &probe); err != nil || probe.Format == nil {
		return nil, ErrNotSavedPlan
	}
	if *probe.Format != SavedPlanFormat {
		return nil, fmt.Errorf("saved plan format %d; this phoenix reads format %d: make the plan again with this phoenix", *probe.Format, SavedPlanFormat)
	}
	var s SavedPlan
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("saved plan is damaged: %w", err)
	}
	if s.Plan == nil {
		return nil, errors.New("saved plan is damaged: it holds no plan")
	}
	return &s, nil
}

// CheckSpecs refuses the plan when the spec files are not the ones it was
// made from.
func (s *SavedPlan) CheckSpecs(now []SpecFile) error {
	want := map[string]string{}
	for _, f := range s.Specs {
		want[f.Path] = f.SHA256
	}
	have := map[string]string{}
	for _, f := range now {
		have[f.Path] = f.SHA256
	}
	var diffs []string
	for _, p := range slices.Sorted(maps.Keys(want)) {
		switch h, ok := have[p]; {
		case !ok:
			diffs = append(diffs, p+" is gone")
		case h != want[p]:
			diffs = append(diffs, p+" changed")
		}
	}
	for _, p := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, p+" is new")
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the specs changed since the plan was made (%s): run plan again", strings.Join(diffs, ", "))
	}
	return nil
}

// CheckCluster refuses the plan when the cluster is not as it was observed
// when the plan was made.
func (s *SavedPlan) CheckCluster(obs *Observed) error {
	now := obs.Fingerprint()
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(s.Cluster)) {
		switch h, ok := now[k]; {
		case !ok:
			diffs = append(diffs, k+" is gone")
		case h != s.Cluster[k]:
			diffs = append(diffs, k+" changed")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if _, ok := s.Cluster[k]; !ok {
			diffs = append(diffs, k+" is new")
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the cluster changed since the plan was made (%s): run plan again", strings.Join(diffs, ", "))
	}
	return nil
}

// Fingerprint identifies what a plan depends on: each guest that matters (its
// run state, whether it is a template, its config digest, which covers the
// pending section) and each probed node (its driver and device nodes).
func (o *Observed) Fingerprint() map[string]string {
	out := map[string]string{}
	for vmid, g := range o.Guests {
		var pending []string
		for _, p := range g.waiting() {
			pending = append(pending, p.Key)
		}
		errText := ""
		if g.ConfigErr != nil {
			errText = "unreadable"
		}
		out[fmt.Sprintf("guest %d", vmid)] = digestOf(g.Type, g.Node, g.Name, g.Status, fmt.Sprint(g.Template), fmt.Sprint(g.Managed),
			g.Config.Digest, strings.Join(pending, ","), errText)
		if fw := g.Firewall; fw != nil || g.FirewallErr != nil {
			// The firewall lives in a file of its own, with digests of its own.
			parts := []string{"unreadable"}
			if fw != nil {
				parts = []string{fw.OptionsDigest, fw.RulesDigest, fw.AliasesDigest, fw.IPSetsDigest}
				for _, set := range fw.IPSets {
					parts = append(parts, set.Name+"="+set.Digest)
				}
			}
			out[fmt.Sprintf("firewall %d", vmid)] = digestOf(parts...)
		}
	}
	if o.ClusterSets != nil || o.ClusterSetsErr != nil {
		var parts []string
		if c := o.ClusterSets; c != nil {
			parts = append(slices.Clone(c.Aliases), "+")
			parts = append(parts, c.IPSets...)
		}
		if o.ClusterSetsErr != nil {
			parts = append(parts, "unreadable")
		}
		out["cluster firewall"] = digestOf(parts...)
	}
	if o.Nodes != nil || o.NodesErr != nil {
		var parts []string
		for _, n := range o.Nodes {
			parts = append(parts, fmt.Sprintf("%s=%t", n.Name, n.Online))
		}
		out["nodes"] = digestOf(parts...)
	}
	for node, inv := range o.Inventory {
		parts := slices.Clone(inv.Bridges)
		for _, st := range inv.Storages {
			parts = append(parts, fmt.Sprintf("%s:%s:%v:%t:%t", st.Name, st.Type, st.Content, st.Enabled, st.Active))
		}
		for _, st := range slices.Sorted(maps.Keys(inv.Templates)) {
			parts = append(parts, st+"="+strings.Join(inv.Templates[st], ","))
		}
		if inv.Err != nil {
			parts = append(parts, "unreadable")
		}
		out["inventory "+node] = digestOf(parts...)
	}
	for node, h := range o.Hosts {
		parts := []string{h.Info.DriverVersion, fmt.Sprint(h.Info.PCIGPUs)}
		for _, d := range h.Info.Devices {
			parts = append(parts, fmt.Sprintf("%s=%d:%d", d.Path, d.Major, d.Minor))
		}
		if h.Err != nil {
			parts = append(parts, "probe failed")
		}
		switch {
		case h.RunfileErr != nil:
			parts = append(parts, "runfile unknown")
		case h.Runfile != nil:
			parts = append(parts, fmt.Sprintf("runfile cached=%t url=%s", h.Runfile.Cached, h.Runfile.URL))
		}
		out["node "+node] = digestOf(parts...)
	}
	return out
}

func digestOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
