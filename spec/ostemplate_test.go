package spec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDownloadValidation: from.download goes with from.ostemplate, needs an
// http(s) URL and a checksum of one of download-url's algorithms, with a
// digest of that algorithm's length, and a file name Proxmox downloads to.
func TestDownloadValidation(t *testing.T) {
	doc := func(from string) string {
		return "apiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: base}\nspec:\n  vmid: 9000\n  node: pve1\n  storage: local-lvm\n" + from
	}
	sha := strings.Repeat("ab", 32)
	cases := map[string]struct {
		src  string
		want []problem
	}{
		"a URL with a sha256": {
			src: doc("  from:\n    ostemplate: local:vztmpl/custom.tar.zst\n    download: {url: https://example.com/custom.tar.zst, checksum: sha256:" + sha + "}\n"),
		},
		"every algorithm of download-url": {
			src: doc("  from:\n    ostemplate: local:vztmpl/custom.tar.gz\n    download: {url: http://mirror.lan/c.tgz, checksum: sha512:" + strings.Repeat("0", 128) + "}\n"),
		},
		"no checksum": {
			src:  doc("  from:\n    ostemplate: local:vztmpl/custom.tar.zst\n    download: {url: https://example.com/custom.tar.zst}\n"),
			want: []problem{{10, "spec.from.download.checksum", "a download needs the archive's checksum"}},
		},
		"an algorithm Proxmox does not have": {
			src:  doc("  from:\n    ostemplate: local:vztmpl/custom.tar.zst\n    download: {url: https://example.com/custom.tar.zst, checksum: blake2:" + sha + "}\n"),
			want: []problem{{10, "spec.from.download.checksum", "ALGORITHM one of md5, sha1, sha224, sha256, sha384, sha512"}},
		},
		"a digest of the wrong length": {
			src:  doc("  from:\n    ostemplate: local:vztmpl/custom.tar.zst\n    download: {url: https://example.com/custom.tar.zst, checksum: md5:" + sha + "}\n"),
			want: []problem{{10, "spec.from.download.checksum", "a md5 digest is 32 hex digits, got 64 characters"}},
		},
		"not an http URL": {
			src:  doc("  from:\n    ostemplate: local:vztmpl/custom.tar.zst\n    download: {url: ftp://example.com/custom.tar.zst, checksum: sha256:" + sha + "}\n"),
			want: []problem{{10, "spec.from.download.url", `"ftp://example.com/custom.tar.zst" is not an http(s) URL`}},
		},
		"a file download-url refuses": {
			src:  doc("  from:\n    ostemplate: local:vztmpl/custom.img\n    download: {url: https://example.com/custom.img, checksum: sha256:" + sha + "}\n"),
			want: []problem{{9, "spec.from.ostemplate", "ending .tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2"}},
		},
		"a download without ostemplate": {
			src: header + "---\napiVersion: phoenix/v1alpha1\nkind: Template\nmetadata: {name: app}\nspec:\n  vmid: 101\n  from:\n    template: base\n" +
				"    download: {url: https://example.com/custom.tar.zst, checksum: sha256:" + sha + "}\n",
			want: []problem{{18, "spec.from.download", "it goes with from.ostemplate, not from.template"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := problems(t, tc.src, tc.want)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDownloadChecksumParts: the algorithm and the digest, lower-case, as
// download-url takes them.
func TestDownloadChecksumParts(t *testing.T) {
	d := Download{Checksum: "sha256:ABCdef"}
	if d.Algorithm() != "sha256" || d.Digest() != "abcdef" {
		t.Errorf("Algorithm %q, Digest %q", d.Algorithm(), d.Digest())
	}
	if f := OSTemplateFile("local:vztmpl/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"); f != "ubuntu-24.04-standard_24.04-2_amd64.tar.zst" {
		t.Errorf("OSTemplateFile: %q", f)
	}
}
