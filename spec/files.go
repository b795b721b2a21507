package spec

import (
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// File is a file phoenix keeps inside a guest: written from the spec
// repository or inline, rendered as a Go template with the facts of the guest
// and of the guests it names, and kept at its content: a change inside the
// guest is drift, written again. A guest's own files are not inherited by its
// clones; a feature's files come with the feature on every guest that has it,
// rendered for that guest.
type File struct {
	// Path is where the file lives inside the guest: an absolute path.
	Path string `json:"path"`
	// Source is a file of the spec repository, relative to the spec file
	// that names it. Exactly one of Source and Content.
	Source string `json:"source,omitempty"`
	// Content is the file's text, inline.
	Content string `json:"content,omitempty"`
	// Verbatim writes the content as it is, not as a Go template.
	Verbatim bool `json:"verbatim,omitempty"`
	// Mode is the file's permission bits in octal, e.g. "0644" (the
	// default) or "0600".
	Mode string `json:"mode,omitempty"`
	// Owner is user[:group] inside the guest, names or numeric ids;
	// default root:root, group root when left out.
	Owner string `json:"owner,omitempty"`
	// Secrets are values the template reads as .Secrets.NAME, taken from
	// phoenix's environment or from a file outside the repository when the
	// plan is made. What a secret is never shows in plan, logs or status:
	// the plan shows the content's digest.
	Secrets map[string]Secret `json:"secrets,omitempty"`
	// OnChange restarts or reloads a service of the guest once the file was
	// written with new content.
	OnChange *OnChange `json:"onChange,omitempty"`

	// body is the content read from Source (or Content) at load; origin
	// says where it came from, for errors.
	body   string
	origin string
}

// Body is the file's text as the spec gives it: Content, or what Source
// holds.
func (f File) Body() string { return f.body }

// Origin names where the file's text comes from: its source file, or the
// spec file that holds it inline.
func (f File) Origin() string { return f.origin }

// Secret is where a secret's value comes from: exactly one of an environment
// variable of phoenix's and an absolute path of a file phoenix can read,
// outside the repository (a trailing newline is dropped).
type Secret struct {
	Env  string `json:"env,omitempty"`
	File string `json:"file,omitempty"`
}

// OnChange names a systemd service to restart or reload after a change.
type OnChange struct {
	Restart string `json:"restart,omitempty"`
	Reload  string `json:"reload,omitempty"`
}

// Service is a systemd service a feature provides. Its state is part of
// convergence: a service that should run and is stopped or failed is started
// again, and reported.
type Service struct {
	// Name is the unit's name, without .service.
	Name string `json:"name"`
	// Enabled starts the service at boot; default true.
	Enabled *bool `json:"enabled,omitempty"`
	// State is running (the default) or stopped.
	State ServiceState `json:"state,omitempty"`
}

// ServiceState is whether a service runs.
type ServiceState string

const (
	ServiceRunning ServiceState = "running"
	ServiceStopped ServiceState = "stopped"
)

// WantEnabled is the service's wanted enablement.
func (s Service) WantEnabled() bool { return s.Enabled == nil || *s.Enabled }

// WantRunning is whether the service should run.
func (s Service) WantRunning() bool { return s.State != ServiceStopped }

// DefaultFileMode is the mode of a file whose spec gives none.
const DefaultFileMode = 0o644

// FileMode parses a file's mode; empty is DefaultFileMode.
func (f File) FileMode() (os.FileMode, error) {
	if f.Mode == "" {
		return DefaultFileMode, nil
	}
	if !fileMode.MatchString(f.Mode) {
		return 0, fmt.Errorf("mode %q: want octal permission bits, e.g. 0644 or 0600", f.Mode)
	}
	m, err := strconv.ParseUint(f.Mode, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("mode %q: %v", f.Mode, err)
	}
	return os.FileMode(m), nil
}

// UserGroup splits Owner into user and group, root where unset.
func (f File) UserGroup() (string, string) {
	u, g, ok := strings.Cut(f.Owner, ":")
	if u == "" {
		u = "root"
	}
	if !ok || g == "" {
		g = "root"
	}
	return u, g
}

var (
	fileMode = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	// ownerName is a user or group: a POSIX-ish name or a numeric id.
	ownerName = regexp.MustCompile(`^([a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10})$`)
	// unitName is a systemd service name without its suffix; no template
	// instances (@) or paths.
	unitName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:_.-]{0,200}$`)
	// secretName is a key of .Secrets in a template.
	secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// maxFileSize bounds a file phoenix writes: configuration, unit files and
// certificates, not payloads (those belong in a feature's steps).
const maxFileSize = 1 << 20

// UnitFile is where a service's unit file lives when a feature writes one.
func UnitFile(service string) string { return "/etc/systemd/system/" + service + ".service" }

// ValidUnitName reports whether name is a service name phoenix accepts.
func ValidUnitName(name string) bool {
	return unitName.MatchString(name) && !strings.HasSuffix(name, ".service")
}

// files checks a document's files and reads the content of those from the
// repository. dir is the directory of the spec file; field is the path of the
// list (spec.files).
func (v *validator) files(files []File, file, field string, services []string, bad func(field, format string, args ...any)) {
	seen := map[string]int{}
	dir := filepath.Dir(file)
	for i := range files {
		f := &files[i]
		at := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case f.Path == "":
			bad(at+".path", "a file needs a path inside the guest")
		case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || strings.HasSuffix(f.Path, "/"):
			bad(at+".path", "%q: want an absolute, clean path (no .., no trailing /)", f.Path)
		case strings.ContainsAny(f.Path, "\n\t\x00") || strings.Contains(f.Path, " "):
			bad(at+".path", "%q: a path with spaces or control characters is not supported", f.Path)
		case f.Path == "/" || strings.HasPrefix(f.Path, "/proc/") || strings.HasPrefix(f.Path, "/sys/") || strings.HasPrefix(f.Path, "/dev/"):
			bad(at+".path", "%q is not a file phoenix can keep", f.Path)
		default:
			if j, dup := seen[f.Path]; dup {
				bad(at+".path", "%s is also written by %s[%d]", f.Path, field, j)
			}
			seen[f.Path] = i
		}
		switch {
		case f.Source != "" && f.Content != "":
			bad(at, "give source or content, not both")
		case f.Source != "":
			v.readSource(f, dir, at, bad)
		default:
			f.body, f.origin = f.Content, file
		}
		if len(f.body) > maxFileSize {
			bad(at, "%s is %d bytes; phoenix writes files up to %d bytes (install larger ones in a feature step)", f.origin, len(f.body), maxFileSize)
		}
		if _, err := f.FileMode(); err != nil {
			bad(at+".mode", "%v", err)
		}
		if f.Owner != "" {
			u, g, _ := strings.Cut(f.Owner, ":")
			if !ownerName.MatchString(u) || strings.Contains(f.Owner, ":") && !ownerName.MatchString(g) {
				bad(at+".owner", "%q: want user or user:group, each a name or a numeric id", f.Owner)
			}
		}
		for _, k := range sortedKeys(f.Secrets) {
			s := f.Secrets[k]
			sf := at + ".secrets." + k
			switch {
			case !secretName.MatchString(k):
				bad(sf, "a secret's name is used as .Secrets.%s: want letters, digits and _", k)
			case (s.Env == "") == (s.File == ""):
				bad(sf, "give env (an environment variable) or file (an absolute path outside the repository), one of them")
			case s.Env != "" && !envName.MatchString(s.Env):
				bad(sf+".env", "%q is not an environment variable name", s.Env)
			case s.File != "" && !filepath.IsAbs(s.File):
				bad(sf+".file", "%q: a secret file is given by its absolute path, outside the spec repository", s.File)
			case s.File != "" && (within(s.File, dir) || within(s.File, v.root)):
				bad(sf+".file", "%s is inside the spec repository: a secret lives outside it, where it is not committed", s.File)
			}
		}
		if len(f.Secrets) > 0 && f.Verbatim {
			bad(at+".secrets", "a verbatim file is not a template: it cannot use secrets")
		}
		if !f.Verbatim && f.body != "" {
			if _, err := template.New(f.Path).Funcs(TemplateFuncStubs).Option("missingkey=error").Parse(f.body); err != nil {
				bad(at, "%s is not a valid template: %v (set verbatim: true for a file that is not one)", f.origin, err)
			}
		}
		if oc := f.OnChange; oc != nil {
			name := cmpOr(oc.Restart, oc.Reload)
			switch {
			case (oc.Restart == "") == (oc.Reload == ""):
				bad(at+".onChange", "give restart or reload, one service")
			case !ValidUnitName(name):
				bad(at+".onChange", "%q is not a service name (the unit's name without .service)", name)
			case services != nil && !slices.Contains(services, name):
				bad(at+".onChange", "%s is not a service this feature declares (services: %s)", name, strings.Join(services, ", "))
			}
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// readSource reads a file of the repository, which must stay inside it.
func (v *validator) readSource(f *File, dir, at string, bad func(field, format string, args ...any)) {
	if filepath.IsAbs(f.Source) {
		bad(at+".source", "%q: a source is relative to the spec file; files outside the repository are secrets (secrets.NAME.file)", f.Source)
		return
	}
	p := filepath.Join(dir, filepath.FromSlash(f.Source))
	if !within(p, dir) && !within(p, v.root) {
		bad(at+".source", "%q leaves the spec repository", f.Source)
		return
	}
	b, err := os.ReadFile(p)
	if err != nil {
		bad(at+".source", "%v", err)
		return
	}
	f.body, f.origin = string(b), p
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	if dir == "" {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// services checks a feature's services.
func (v *validator) services(services []Service, field string, bad func(field, format string, args ...any)) []string {
	var names []string
	for i, s := range services {
		at := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !ValidUnitName(s.Name):
			bad(at+".name", "%q is not a service name: the unit's name without .service, e.g. ollama", s.Name)
		case slices.Contains(names, s.Name):
			bad(at+".name", "service %s is listed twice", s.Name)
		}
		names = append(names, s.Name)
		if s.State != "" && s.State != ServiceRunning && s.State != ServiceStopped {
			bad(at+".state", "%q: want running or stopped", s.State)
		}
	}
	if names == nil {
		names = []string{}
	}
	return names
}

// TemplateFuncStubs are the functions a file's template may call, with the
// signatures the reconciler gives them; validation parses templates with
// these, the reconciler renders with its own.
var TemplateFuncStubs = template.FuncMap{
	"guest": func(string) (any, error) { return nil, nil },
	"join":  strings.Join,
	"quote": strconv.Quote,
}

// FeatureFiles are a feature's files and services: a Feature document's, or
// those a built-in has with its parameters.
func (f *FeatureDef) FeatureFiles(params Params) ([]File, []Service) {
	if f.Doc != nil {
		return f.Doc.Spec.Files, f.Doc.Spec.Services
	}
	if f.runtime != nil {
		return f.runtime(params)
	}
	return nil, nil
}

// filesDescriptions document the fields of files and services.
var filesDescriptions = map[string]string{
	"GuestSpec.Files":      "Files are files phoenix keeps inside the container, written with pct push through a temporary file and an atomic rename (files.go). They are kept at their content: a change made inside the guest is drift and is written again. Not inherited by clones.",
	"FeatureSpec.Files":    "Files the feature writes into every guest that has it, rendered for that guest, after its steps ran.",
	"FeatureSpec.Services": "Services are the systemd services the feature provides: each is kept enabled and running, or as stated. One that stopped or failed is started again.",
	"FeatureSpec.Settings": "Settings are parameters of the running software, not of its installation: files and services read them, and a changed value rewrites files and restarts services instead of installing the feature again. Templates read them as .Params; a guest's featureConfig sets them like config.",
	"File.Path":            "Path is where the file lives inside the guest: an absolute path.",
	"File.Source":          "Source is a file of the spec repository, relative to the spec file. Exactly one of source and content.",
	"File.Content":         "Content is the file's text, inline.",
	"File.Verbatim":        "Verbatim writes the content as it is instead of rendering it as a Go template.",
	"File.Mode":            "Mode is the file's permission bits in octal; default 0644.",
	"File.Owner":           "Owner is user[:group] inside the guest, names or numeric ids; default root:root.",
	"File.Secrets": "Secrets are values the template reads as .Secrets.NAME, from phoenix's environment (env) or a file outside the repository (file). " +
		"They never show in plan, logs or status: the plan shows the content's digest.",
	"File.OnChange":    "OnChange restarts or reloads a service once the file was written with new content.",
	"Secret.Env":       "Env is an environment variable of phoenix's that holds the secret.",
	"Secret.File":      "File is the absolute path of a file that holds the secret, outside the spec repository; a trailing newline is dropped.",
	"OnChange.Restart": "Restart names a service (without .service) to restart after the file changed.",
	"OnChange.Reload":  "Reload names a service (without .service) to reload after the file changed.",
	"Service.Name":     "Name is the systemd unit's name without .service.",
	"Service.Enabled":  "Enabled starts the service at boot; default true.",
	"Service.State":    "State is running (the default) or stopped.",
}

func init() {
	maps.Copy(fieldDescriptions, filesDescriptions)
}

// commonDir is the deepest directory holding every one of files.
func commonDir(files []string) string {
	var dir string
	for i, f := range files {
		d := filepath.Dir(filepath.Clean(f))
		if i == 0 {
			dir = d
			continue
		}
		for !within(d, dir) && dir != filepath.Dir(dir) {
			dir = filepath.Dir(dir)
		}
	}
	return dir
}
