package importer

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// world is a simulator world built from the same config: one node with the
// GPUs the assignments need, the storages, bridges and OS templates the
// guests name, and the id ranges their id maps need.
func (im *importer) world(storage, bridge string) []byte {
	gpus := 0
	rootdir := map[string]bool{storage: true}
	vztmpl := map[string]bool{}
	var osTemplates []string
	bridges := map[string]bool{bridge: true}
	dirs := map[string]bool{}
	subuid := []string{"root:100000:65536"}
	subgid := []string{"root:100000:65536"}
	for _, g := range im.list {
		s := g.g.Spec
		if s.GPUs != nil {
			if s.GPUs.All && gpus == 0 {
				gpus = 1
			}
			for _, i := range s.GPUs.Indices {
				gpus = max(gpus, i+1)
			}
		}
		if s.Storage != "" {
			rootdir[s.Storage] = true
		}
		if t := s.From.OSTemplate; t != "" {
			id, _, _ := strings.Cut(t, ":")
			vztmpl[id] = true
			if !slices.Contains(osTemplates, t) {
				osTemplates = append(osTemplates, t)
			}
		}
		for _, n := range s.Network {
			bridges[n.Bridge] = true
		}
		for _, m := range s.Mounts {
			if m.Storage != "" {
				rootdir[m.Storage] = true
			}
			if m.HostPath != "" {
				dirs[path.Dir(m.HostPath)] = true
			}
		}
		if s.Security != nil {
			for _, e := range s.Security.IDMap {
				line := fmt.Sprintf("root:%d:%d", e.Host, max(e.Size, 1))
				if e.Type == "uid" || e.Type == "both" {
					if !slices.Contains(subuid, line) {
						subuid = append(subuid, line)
					}
				}
				if e.Type == "gid" || e.Type == "both" {
					if !slices.Contains(subgid, line) {
						subgid = append(subgid, line)
					}
				}
			}
		}
	}
	driver := im.driverVersion
	if driver == "" {
		driver = "580.76.05"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# A simulated host for the imported specs: phoenix sim --world world.yaml\n")
	fmt.Fprintf(&b, "apiVersion: %s\nkind: World\nmetadata:\n  name: %q\nspec:\n  seed: 7\n  timeScale: 0.01\n  version: \"9.1.2\"\n  latency: 1ms\n  nodes:\n", spec.SimAPIVersion, im.opt.ClusterName)
	fmt.Fprintf(&b, "    - name: %q\n      gpus: %d\n      driverVersion: %q\n      uvmMajor: 508\n      capsMajor: 509\n      storages:\n", im.opt.Node, gpus, driver)
	for _, id := range slices.Sorted(maps.Keys(vztmpl)) {
		if !rootdir[id] {
			fmt.Fprintf(&b, "        - {name: %q, type: dir, content: [vztmpl, iso]}\n", id)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rootdir)) {
		content := "[rootdir, images]"
		if vztmpl[id] {
			content = "[rootdir, images, vztmpl]"
		}
		fmt.Fprintf(&b, "        - {name: %q, type: zfspool, content: %s}\n", id, content)
	}
	b.WriteString("      osTemplates:\n")
	for _, t := range osTemplates {
		fmt.Fprintf(&b, "        - %q\n", t)
	}
	fmt.Fprintf(&b, "      bridges: [%s]\n", quoteAll(slices.Sorted(maps.Keys(bridges))))
	if len(dirs) > 0 {
		fmt.Fprintf(&b, "      directories: [%s]\n", quoteAll(slices.Sorted(maps.Keys(dirs))))
	}
	fmt.Fprintf(&b, "      subuid: [%s]\n      subgid: [%s]\n", quoteAll(subuid), quoteAll(subgid))
	return []byte(b.String())
}

func quoteAll(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// report is IMPORT-REPORT.md: every field not carried over, by JSON path,
// with why.
func (im *importer) report(res *Result) []byte {
	var b strings.Builder
	b.WriteString("# phoenix import report\n\n")
	fmt.Fprintf(&b, "%s\n\n", im.header())
	fmt.Fprintf(&b, "%d guests and %d user features were written. Every field of the original's config that was\nnot carried over into them, or was carried over in a way to review, is below.\n\n", res.Guests, res.Features)
	b.WriteString("| file | JSON path | why |\n| --- | --- | --- |\n")
	for _, f := range res.Findings {
		fmt.Fprintf(&b, "| %s | `%s` | %s |\n", mdCell(path.Base(f.File)), strings.ReplaceAll(f.Path, "`", "'"), mdCell(f.Why))
	}
	return []byte(b.String())
}

func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
