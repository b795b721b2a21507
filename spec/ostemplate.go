package spec

import (
	"regexp"
	"strings"
)

// Download is where a root's OS template comes from when its volume is not on
// its storage: Proxmox's download-url endpoint (pve-storage
// src/PVE/API2/Storage/Status.pm) fetches URL into the storage and checks
// the checksum before it keeps the file.
type Download struct {
	URL string `json:"url"`
	// Checksum is ALGORITHM:HEX.
	Checksum string `json:"checksum"`
}

// ChecksumAlgorithms are download-url's checksum-algorithm values, with the
// length of their hex digests.
var ChecksumAlgorithms = map[string]int{"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}

var (
	// downloadURL is download-url's url pattern (https?://.*), without
	// spaces.
	downloadURL = regexp.MustCompile(`^https?://[^\s/]+\S*$`)
	// downloadChecksum is one of download-url's algorithms with a digest
	// of its length.
	downloadChecksum = regexp.MustCompile(`^(md5:[0-9a-fA-F]{32}|sha1:[0-9a-fA-F]{40}|sha224:[0-9a-fA-F]{56}|sha256:[0-9a-fA-F]{64}|sha384:[0-9a-fA-F]{96}|sha512:[0-9a-fA-F]{128})$`)
	// vztmplFile is a file name download-url takes for vztmpl content
	// (VZTMPL_EXT_RE_1 in pve-storage src/PVE/Storage.pm).
	vztmplFile = regexp.MustCompile(`(?i)\.(tar|tar\.(gz|xz|zst|bz2))$`)
)

// Algorithm and Digest split the checksum: sha256 and its hex digits, lower-case.
func (d Download) Algorithm() string {
	alg, _, _ := strings.Cut(d.Checksum, ":")
	return alg
}

// Digest is the checksum's hex digits, lower-case.
func (d Download) Digest() string {
	_, hex, _ := strings.Cut(d.Checksum, ":")
	return strings.ToLower(hex)
}

// OSTemplateFile is the FILE of a STORAGE:vztmpl/FILE volume.
func OSTemplateFile(volid string) string {
	_, rest, _ := strings.Cut(volid, ":")
	return strings.TrimPrefix(rest, "vztmpl/")
}

// checkDownload checks from.download beside from.ostemplate.
func checkDownload(from From, bad func(field, format string, args ...any)) {
	d := from.Download
	if d == nil {
		return
	}
	if from.OSTemplate == "" {
		bad("spec.from.download", "download is where an OS template comes from: it goes with from.ostemplate, not from.template")
		return
	}
	if !downloadURL.MatchString(d.URL) {
		bad("spec.from.download.url", "%q is not an http(s) URL", d.URL)
	}
	switch alg, hex, ok := strings.Cut(d.Checksum, ":"); {
	case d.Checksum == "":
		bad("spec.from.download.checksum", "a download needs the archive's checksum, ALGORITHM:HEX, e.g. sha256:<64 hex digits>: Proxmox checks it before it keeps the file")
	case !ok || ChecksumAlgorithms[alg] == 0:
		bad("spec.from.download.checksum", "%q: want ALGORITHM:HEX with ALGORITHM one of md5, sha1, sha224, sha256, sha384, sha512", d.Checksum)
	case !downloadChecksum.MatchString(d.Checksum):
		bad("spec.from.download.checksum", "%q: a %s digest is %d hex digits, got %d characters", d.Checksum, alg, ChecksumAlgorithms[alg], len(hex))
	}
	if file := OSTemplateFile(from.OSTemplate); osTemplate.MatchString(from.OSTemplate) && !vztmplFile.MatchString(file) {
		bad("spec.from.ostemplate", "%q: Proxmox downloads a container template only to a file ending .tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2", file)
	}
}
