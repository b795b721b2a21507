package reconciler

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/phoenixhv/phoenix/spec"
)

// Files and services: what phoenix keeps inside a container beyond its
// features' installs. A file is rendered from its spec, written through
// Node.WriteFile and kept at its content: the plan compares the digest of
// what it would write with what the guest holds (read with phoenix/inspect
// while it runs) or, for a guest that is not running, with the digest phoenix
// recorded when it wrote it. A service is kept enabled and running as its
// feature says; a file that changed restarts or reloads the service its spec
// names, through a record that survives a kill between the two.

// renderedFile is a file as phoenix will write it into a guest.
type renderedFile struct {
	spec.File
	// Feature is the feature the file comes with; empty for the guest's own.
	Feature string
	Content []byte
	// Digest is the content's SHA-256, in hex.
	Digest      string
	Mode        os.FileMode
	User, Group string
	// Secret marks content made with secrets: nothing of it is shown.
	Secret bool
}

// wantService is a service a guest's features provide.
type wantService struct {
	spec.Service
	Feature string
}

// recordDigest is the part of a digest kept in a guest's record: enough to
// tell contents apart, short enough for many files beside the user's notes.
func recordDigest(d string) string {
	if len(d) > 16 {
		return d[:16]
	}
	return d
}

// GuestFacts are what a file's template knows of a guest: .Guest for the
// guest the file is written into, .Deps for those it depends on, and
// guest "NAME" for any guest of the spec set.
type GuestFacts struct {
	Name     string
	Hostname string
	VMID     int
	Node     string
	// IP is the first static IPv4 address, without its prefix length;
	// empty where the guest takes its address by DHCP.
	IP string
	// Addresses are every static address, IPv4 and IPv6, without prefixes.
	Addresses []string
	Features  []string
	// Params are the parameters and settings of each feature, by feature.
	Params map[string]map[string]string
}

// fileData is what a file's template is executed with.
type fileData struct {
	Guest GuestFacts
	// Params are the parameters and settings of the feature the file
	// comes with (empty for the guest's own files).
	Params  map[string]string
	Deps    []GuestFacts
	Secrets map[string]string
}

// factsOf are a guest's facts.
func factsOf(res *spec.Resolution, r *spec.Resolved) GuestFacts {
	f := GuestFacts{Name: r.Name, Hostname: r.Hostname, VMID: r.VMID, Node: r.Settings.Node,
		Features: slices.Clone(r.Effective), Params: map[string]map[string]string{}}
	for _, n := range r.Settings.Network {
		for _, ip := range []string{n.IP, n.IP6} {
			if p, err := netip.ParsePrefix(ip); err == nil {
				f.Addresses = append(f.Addresses, p.Addr().String())
				if f.IP == "" && p.Addr().Is4() {
					f.IP = p.Addr().String()
				}
			}
		}
	}
	for _, name := range r.Effective {
		f.Params[name] = featureValues(res, r, name)
	}
	return f
}

// featureValues are a feature's parameters and settings on a guest: those set,
// else their defaults, vendor sources included.
func featureValues(res *spec.Resolution, r *spec.Resolved, feature string) map[string]string {
	def, ok := res.Catalog.Lookup(feature)
	if !ok {
		return map[string]string{}
	}
	out := map[string]string{}
	for k, p := range def.Params {
		if p.Runtime {
			out[k] = r.Runtime[feature][k]
			continue
		}
		out[k] = p.Value(r.Params[feature], k)
	}
	return out
}

// SecretReader reads a secret's value; ReadSecret is the default.
type SecretReader func(spec.Secret) (string, error)

// ReadSecret reads a secret from phoenix's environment or its file.
func ReadSecret(s spec.Secret) (string, error) {
	if s.Env != "" {
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	}
	b, err := os.ReadFile(s.File)
	if err != nil {
		return "", err
	}
	v := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(v, "\r"), nil
}

// guestFiles renders every file a guest keeps: its features' (in install
// order), then its own. A path written twice is a problem.
func guestFiles(res *spec.Resolution, r *spec.Resolved, secret SecretReader) ([]renderedFile, []Problem) {
	if secret == nil {
		secret = ReadSecret
	}
	var out []renderedFile
	var problems []Problem
	owner := map[string]string{}
	add := func(f spec.File, feature string, params map[string]string) {
		who := cmpOrString(feature, "the guest's own files")
		if prev, dup := owner[f.Path]; dup {
			problems = append(problems, problem(ProblemSpec, "%s is written by both %s and %s: give it to one of them", f.Path, prev, who))
			return
		}
		owner[f.Path] = who
		rf, err := renderFile(res, r, f, feature, params, secret)
		if err != nil {
			problems = append(problems, problem(ProblemSpec, "file %s (%s): %v", f.Path, cmpOrString(f.Origin(), who), err))
			return
		}
		out = append(out, rf)
	}
	for _, name := range res.Catalog.Order(r.Effective) {
		def, ok := res.Catalog.Lookup(name)
		if !ok {
			continue
		}
		params := featureValues(res, r, name)
		files, _ := def.FeatureFiles(params)
		for _, f := range files {
			add(f, name, params)
		}
	}
	for _, f := range r.Files {
		add(f, "", nil)
	}
	return out, problems
}

// guestServices are the services a guest's features provide, the first
// feature's word on a service counting.
func guestServices(res *spec.Resolution, r *spec.Resolved) []wantService {
	var out []wantService
	seen := map[string]bool{}
	for _, name := range res.Catalog.Order(r.Effective) {
		def, ok := res.Catalog.Lookup(name)
		if !ok {
			continue
		}
		_, services := def.FeatureFiles(featureValues(res, r, name))
		for _, s := range services {
			if !seen[s.Name] {
				seen[s.Name] = true
				out = append(out, wantService{Service: s, Feature: name})
			}
		}
	}
	return out
}

// filePaths are the paths of the files a guest keeps, without rendering them.
func filePaths(res *spec.Resolution, r *spec.Resolved) []string {
	var out []string
	for _, name := range res.Catalog.Order(r.Effective) {
		if def, ok := res.Catalog.Lookup(name); ok {
			files, _ := def.FeatureFiles(featureValues(res, r, name))
			for _, f := range files {
				out = append(out, f.Path)
			}
		}
	}
	for _, f := range r.Files {
		out = append(out, f.Path)
	}
	return out
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// renderFile renders one file for a guest.
func renderFile(res *spec.Resolution, r *spec.Resolved, f spec.File, feature string, params map[string]string, secret SecretReader) (renderedFile, error) {
	rf := renderedFile{File: f, Feature: feature}
	mode, err := f.FileMode()
	if err != nil {
		return rf, err
	}
	rf.Mode = mode
	rf.User, rf.Group = f.UserGroup()
	if f.Verbatim {
		rf.Content = []byte(f.Body())
	} else {
		secrets := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(f.Secrets)) {
			v, err := secret(f.Secrets[k])
			if err != nil {
				return rf, fmt.Errorf("secret %s: %v", k, err)
			}
			secrets[k] = v
		}
		rf.Secret = len(secrets) > 0
		content, err := executeTemplate(res, r, f, fileData{Guest: factsOf(res, r), Params: params, Deps: depFacts(res, r), Secrets: secrets})
		if err != nil {
			return rf, err
		}
		rf.Content = content
	}
	sum := sha256.Sum256(rf.Content)
	rf.Digest = hex.EncodeToString(sum[:])
	return rf, nil
}

func depFacts(res *spec.Resolution, r *spec.Resolved) []GuestFacts {
	var out []GuestFacts
	for _, name := range r.Settings.DependsOn {
		if d, ok := res.Guest(name); ok {
			out = append(out, factsOf(res, d))
		}
	}
	return out
}

func executeTemplate(res *spec.Resolution, r *spec.Resolved, f spec.File, data fileData) ([]byte, error) {
	funcs := maps.Clone(spec.TemplateFuncStubs)
	funcs["guest"] = func(name string) (GuestFacts, error) {
		g, ok := res.Guest(name)
		if !ok {
			return GuestFacts{}, fmt.Errorf("no guest %s in the specs", name)
		}
		return factsOf(res, g), nil
	}
	t, err := template.New(f.Path).Funcs(funcs).Option("missingkey=error").Parse(f.Body())
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		// The error names the template's place, not its values; a secret
		// never reaches it.
		return nil, fmt.Errorf("rendering for %s: %v", r.Name, err)
	}
	return b.Bytes(), nil
}

// Inside is what phoenix/inspect found inside a running container.
type Inside struct {
	Files    map[string]ObservedFile
	Services map[string]ObservedService
}

// ObservedFile is a file as the guest holds it.
type ObservedFile struct {
	Missing bool
	Digest  string
	Mode    os.FileMode
	// IDs is uid:gid; Names is user:group.
	IDs, Names string
}

// ObservedService is a service as systemd reports it.
type ObservedService struct {
	// Enabled is systemctl is-enabled's word: enabled, disabled, static,
	// masked, ..., or not-found.
	Enabled string
	// Active is systemctl is-active's: active, inactive, failed,
	// activating, ..., or no-systemd.
	Active string
}

// ParseInspect reads phoenix/inspect's output. Every file and service it was
// asked about must be there once.
func ParseInspect(out string, files, services []string) (*Inside, error) {
	in := &Inside{Files: map[string]ObservedFile{}, Services: map[string]ObservedService{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		w := strings.Fields(line)
		bad := func(why string) error { return fmt.Errorf("phoenix/inspect line %d %q: %s", n, line, why) }
		switch w[0] {
		case "file":
			if len(w) == 3 && w[2] == "-" {
				if err := in.addFile(w[1], ObservedFile{Missing: true}); err != nil {
					return nil, bad(err.Error())
				}
				continue
			}
			if len(w) != 6 {
				return nil, bad("want file PATH SHA256 MODE UID:GID USER:GROUP")
			}
			if len(w[2]) != 64 || strings.Trim(w[2], "0123456789abcdef") != "" {
				return nil, bad("not a SHA-256 digest")
			}
			m, err := strconv.ParseUint(w[3], 8, 32)
			if err != nil || m > 0o7777 {
				return nil, bad("not a file mode")
			}
			if !strings.Contains(w[4], ":") || !strings.Contains(w[5], ":") {
				return nil, bad("want UID:GID USER:GROUP")
			}
			if err := in.addFile(w[1], ObservedFile{Digest: w[2], Mode: os.FileMode(m), IDs: w[4], Names: w[5]}); err != nil {
				return nil, bad(err.Error())
			}
		case "service":
			if len(w) != 4 {
				return nil, bad("want service NAME ENABLED ACTIVE")
			}
			if _, dup := in.Services[w[1]]; dup {
				return nil, bad("service listed twice")
			}
			in.Services[w[1]] = ObservedService{Enabled: w[2], Active: w[3]}
		default:
			return nil, bad("not a file or service line")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("phoenix/inspect: %w", err)
	}
	for _, p := range files {
		if _, ok := in.Files[p]; !ok {
			return nil, fmt.Errorf("phoenix/inspect said nothing of file %s", p)
		}
	}
	for _, s := range services {
		if _, ok := in.Services[s]; !ok {
			return nil, fmt.Errorf("phoenix/inspect said nothing of service %s", s)
		}
	}
	return in, nil
}

func (in *Inside) addFile(path string, f ObservedFile) error {
	if _, dup := in.Files[path]; dup {
		return fmt.Errorf("file listed twice")
	}
	in.Files[path] = f
	return nil
}

// ownerMatches reports whether a file's observed owner is user:group, given
// as names or ids.
func (o ObservedFile) ownerMatches(user, group string) bool {
	iu, ig, _ := strings.Cut(o.IDs, ":")
	nu, ng, _ := strings.Cut(o.Names, ":")
	return (user == iu || user == nu) && (group == ig || group == ng)
}

// GuestFileContents renders the files phoenix keeps in a guest, by path,
// with the secrets of phoenix's environment: what apply would write.
func GuestFileContents(res *spec.Resolution, r *spec.Resolved) (map[string]string, []Problem) {
	files, problems := guestFiles(res, r, nil)
	out := map[string]string{}
	for _, f := range files {
		out[f.Path] = string(f.Content)
	}
	return out, problems
}
