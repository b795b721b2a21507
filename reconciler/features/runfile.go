package features

import (
	"slices"
	"strings"

	"github.com/phoenixhv/phoenix/spec"
)

// RunfileSources are a driver version's runfile URLs, in order: the spec's
// runfileURL, then its runfileURLs or DefaultRunfileURLs. The runfile runs as
// root in every GPU container, so a source is used only over https, or over
// plain http for a version whose sha256 the spec gives (nvidia.sha256), which
// the download checks; the others are skipped, and named so that the plan
// can say why no source is left.
func RunfileSources(s spec.NVIDIASettings, version string) (use, skipped []string) {
	patterns := s.RunfileURLs
	if len(patterns) == 0 {
		patterns = DefaultRunfileURLs
	}
	if s.RunfileURL != "" {
		patterns = append([]string{s.RunfileURL}, patterns...)
	}
	for _, p := range patterns {
		u := strings.ReplaceAll(p, "{version}", version)
		if slices.Contains(use, u) || slices.Contains(skipped, u) {
			continue
		}
		if runfileURLUsable(u, s.SHA256[version] != "") {
			use = append(use, u)
		} else {
			skipped = append(skipped, u)
		}
	}
	return use, skipped
}

// runfileURLUsable reports whether a runfile may come from u: over https,
// or over plain http when the runfile's digest is known.
func runfileURLUsable(u string, digest bool) bool {
	scheme, _, _ := strings.Cut(strings.ToLower(u), "://")
	return scheme == "https" || scheme == "http" && digest
}
