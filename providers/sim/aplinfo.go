package sim

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// OS template downloads: the node's appliance index and its download (GET
// and POST /nodes/{node}/aplinfo, pve-manager PVE/API2/Nodes.pm and
// PVE/APLInfo.pm), and a storage's download-url (pve-storage
// src/PVE/API2/Storage/Status.pm), whose worker is
// PVE::Tools::download_file_from_url (pve-common src/PVE/Tools.pm). The
// simulator reaches no network: the world lists the appliances and the URLs
// it can fetch. As elsewhere in the simulator, privileges are not modelled
// (aplinfo POST wants Datastore.AllocateTemplate on the storage,
// download-url that and Sys.Modify on / or Sys.AccessNetwork on the node).

// WorldAppliance is one entry of the appliance index.
type WorldAppliance struct {
	// Template is the file a download makes, e.g.
	// ubuntu-24.04-standard_24.04-2_amd64.tar.zst.
	Template string `yaml:"template"`
	// Section is system (the default), turnkeylinux, mail, ...
	Section string `yaml:"section"`
	// Type is lxc (the default) or openvz; anything else the download refuses.
	Type     string `yaml:"type"`
	Headline string `yaml:"headline"`
}

// WorldURL is a URL download-url can fetch, with the file's content: its
// checksums are the content's.
type WorldURL struct {
	URL     string `yaml:"url"`
	Content string `yaml:"content"`
}

// aplinfoSource is where Proxmox's own index points (APLInfo.pm's sources).
const aplinfoSource = "http://download.proxmox.com/images"

// record is the appliance as load_data answers it: the index's fields, with
// package, os, version and architecture read from the file name as the
// index's own records give them.
func (a WorldAppliance) record() map[string]any {
	section, typ := a.Section, a.Type
	if section == "" {
		section = "system"
	}
	if typ == "" {
		typ = "lxc"
	}
	parts := strings.SplitN(a.Template, "_", 3)
	pkg, version, arch := parts[0], "", "amd64"
	if len(parts) == 3 {
		version = parts[1]
		arch, _, _ = strings.Cut(parts[2], ".")
	}
	os := pkg
	if i := strings.LastIndex(pkg, "-"); i > 0 {
		os = pkg[:i]
	}
	headline := a.Headline
	if headline == "" {
		headline = os + " (" + version + ")"
	}
	sum := sha512.Sum512([]byte(a.Template))
	return map[string]any{
		"template": a.Template, "section": section, "type": typ, "package": pkg, "os": os, "version": version,
		"architecture": arch, "headline": headline, "description": headline, "source": aplinfoSource + "/",
		"location": aplinfoSource + "/" + section + "/" + a.Template, "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
		"maintainer": "Proxmox Support Team <support@proxmox.com>", "sha512sum": hex.EncodeToString(sum[:]),
	}
}

func (s *apiServer) downloadRoutes() map[string]handler {
	return map[string]handler{
		"GET /nodes/{node}/aplinfo":  s.aplinfo,
		"POST /nodes/{node}/aplinfo": s.locked(func(r request) (any, *apiError) { return s.c.aplDownload(r.who, r.node(), r.params) }),
		"POST /nodes/{node}/storage/{storage}/download-url": s.locked(func(r request) (any, *apiError) {
			return s.c.downloadURL(r.who, r.node(), r.params)
		}),
	}
}

// aplinfo lists the appliance index (Nodes.pm's aplinfo: every entry of
// load_data's "all" but pve-web-news).
func (s *apiServer) aplinfo(r request) (any, *apiError) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.node(r.node()) == nil {
		return nil, die("no such cluster node '%s'", r.node())
	}
	out := []any{}
	for _, a := range s.c.world.Spec.Appliances {
		out = append(out, a.record())
	}
	return out, nil
}

func (c *cluster) appliance(template string) (WorldAppliance, bool) {
	for _, a := range c.world.Spec.Appliances {
		if a.Template == template {
			return a, true
		}
	}
	return WorldAppliance{}, false
}

// aplDownload is apl_download (pve-manager PVE/API2/Nodes.pm): the template
// must be in the index, the storage enabled on the node and holding vztmpl;
// the worker, a "download" task, fetches the appliance's location into the
// storage's template directory.
func (c *cluster) aplDownload(who caller, nodeName string, p map[string]string) (any, *apiError) {
	n := c.node(nodeName)
	if n == nil {
		return nil, die("no such cluster node '%s'", nodeName)
	}
	a, ok := c.appliance(p["template"])
	if !ok {
		return nil, paramError(map[string]string{"template": "no such template"})
	}
	st, aerr := c.storageCheckEnabled(p["storage"], nodeName)
	if aerr != nil {
		return nil, aerr
	}
	rec := a.record()
	if typ := rec["type"]; typ != "lxc" && typ != "openvz" {
		return nil, die("unknown template type '%s'", typ)
	}
	if !slices.Contains(st.Content, "vztmpl") {
		return nil, die("storage '%s' does not support templates", st.Name)
	}
	volid := st.Name + ":vztmpl/" + a.Template
	location := rec["location"].(string)
	t := c.startTask(nodeName, "download", a.Template, who, c.world.Scaled(c.world.Spec.Durations.Download), func(t *task) error {
		if err := activateStorage(st); err != nil {
			return err
		}
		return c.fetchTemplate(t, n, volid, location, rec["sha512sum"].(string), rec["sha512sum"].(string))
	})
	return t.upid, nil
}

// fetchTemplate is download_file_from_url (pve-common src/PVE/Tools.pm): a
// file already there with the right checksum is kept, one with another is
// not overwritten; a fetched file whose checksum is not the expected one is
// thrown away. got is the fetched file's checksum. Call with c.mu held.
func (c *cluster) fetchTemplate(t *task, n *node, volid, url, want, got string) error {
	dest := templatePath(volid)
	if slices.Contains(c.osTemplates(n), volid) {
		if want != "" {
			t.logf("calculating checksum of existing file...OK, got correct file already, no need to download")
			return nil
		}
		return fmt.Errorf("refusing to override existing file '%s'", dest)
	}
	t.logf("downloading %s to %s", url, dest)
	if want != "" {
		if !strings.EqualFold(got, want) {
			t.logf("calculating checksum...")
			return fmt.Errorf("checksum mismatch: got '%s' != expect '%s'", got, want)
		}
		t.logf("calculating checksum...OK, checksum verified")
	}
	n.OSTemplates = append(n.OSTemplates, volid)
	t.logf("download of '%s' to '%s' finished", url, dest)
	return nil
}

// templatePath is where a storage keeps a template: a dir storage's
// template/cache (get_vztmpl_dir); local's is /var/lib/vz.
func templatePath(volid string) string {
	st, rest, _ := strings.Cut(volid, ":")
	base := "/mnt/pve/" + st
	if st == "local" {
		base = "/var/lib/vz"
	}
	return base + "/template/cache/" + strings.TrimPrefix(rest, "vztmpl/")
}

// fileStorages are the storage types with a path in storage.cfg, which
// download-url can write to.
var fileStorages = []string{"dir", "nfs", "cifs", "btrfs", "cephfs"}

// vztmplExt is VZTMPL_EXT_RE_1 (pve-storage src/PVE/Storage.pm).
var vztmplExt = regexp.MustCompile(`(?i)[^/]+\.(tar|tar\.(gz|xz|zst|bz2))$`)

// downloadURL is download_url (pve-storage src/PVE/API2/Storage/Status.pm).
func (c *cluster) downloadURL(who caller, nodeName string, p map[string]string) (any, *apiError) {
	n := c.node(nodeName)
	if n == nil {
		return nil, die("no such cluster node '%s'", nodeName)
	}
	st, aerr := c.storageCheckEnabled(p["storage"], nodeName)
	if aerr != nil {
		return nil, aerr
	}
	if !slices.Contains(fileStorages, st.Type) {
		return nil, die("can't upload to storage type '%s', not a file based storage!", st.Type)
	}
	content := p["content"]
	if !slices.Contains(st.Content, content) {
		return nil, die("storage '%s' is not configured for content-type '%s'", st.Name, content)
	}
	filename := p["filename"]
	if content != "vztmpl" {
		return nil, &apiError{Status: http.StatusNotImplemented, Reason: "the simulator downloads container templates (content vztmpl) only"}
	}
	if !vztmplExt.MatchString(filename) {
		return nil, paramError(map[string]string{"filename": "wrong file extension"})
	}
	if err := activateStorage(st); err != nil {
		return nil, die("%v", err)
	}
	volid := st.Name + ":vztmpl/" + filename
	url, alg, want := p["url"], p["checksum-algorithm"], p["checksum"]
	t := c.startTask(nodeName, "download", filename, who, c.world.Scaled(c.world.Spec.Durations.Download), func(t *task) error {
		i := slices.IndexFunc(c.world.Spec.URLs, func(u WorldURL) bool { return u.URL == url })
		if i < 0 {
			// wget cannot reach it: run_command's errmsg with wget's exit
			// code for a network failure.
			t.logf("downloading %s to %s", url, templatePath(volid))
			t.logf("wget: unable to resolve host address")
			return errors.New("download failed: exit code 4")
		}
		return c.fetchTemplate(t, n, volid, url, want, checksum(alg, c.world.Spec.URLs[i].Content))
	})
	return t.upid, nil
}

// checksum is a content's digest in hex, for one of download-url's algorithms.
func checksum(alg, content string) string {
	var h hash.Hash
	switch alg {
	case "md5":
		h = md5.New()
	case "sha1":
		h = sha1.New()
	case "sha224":
		h = sha256.New224()
	case "sha256":
		h = sha256.New()
	case "sha384":
		h = sha512.New384()
	case "sha512":
		h = sha512.New()
	default:
		return ""
	}
	h.Write([]byte(content))
	return hex.EncodeToString(h.Sum(nil))
}
