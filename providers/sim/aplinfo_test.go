package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func downloadLab(t *testing.T) *lab {
	return startLab(t, "small.yaml", func(w *World) {
		w.Spec.Appliances = []WorldAppliance{
			{Template: "alpine-3.22-default_20250617_amd64.tar.xz"},
			{Template: "ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst"},
			{Template: "debian-12-turnkey-nextcloud_18.1-1_amd64.tar.gz", Section: "turnkeylinux"},
		}
		w.Spec.URLs = []WorldURL{{URL: "https://images.example.com/custom_amd64.tar.zst", Content: "custom"}}
	})
}

// endTask posts an action that answers a UPID and returns its task's exit
// status and log.
func (l *lab) endTask(node, path string, params map[string]any) (string, []string) {
	l.t.Helper()
	data, err := l.post(path, params)
	if err != nil {
		l.t.Fatalf("POST %s: %v", path, err)
	}
	upid, _ := data.(string)
	if !strings.HasPrefix(upid, "UPID:"+node+":") || !strings.Contains(upid, ":download:") {
		l.t.Fatalf("POST %s: %#v is not a download UPID of %s", path, data, node)
	}
	var st map[string]any
	l.poll("task "+upid, func() bool {
		l.get("/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/status", &st)
		return st["status"] == "stopped"
	})
	var log []map[string]any
	l.get("/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/log", &log)
	var lines []string
	for _, e := range log {
		lines = append(lines, e["t"].(string))
	}
	return st["exitstatus"].(string), lines
}

func (l *lab) vztmpl(node, storage string) []string {
	var content []map[string]any
	l.get("/nodes/"+node+"/storage/"+storage+"/content?content=vztmpl", &content)
	var out []string
	for _, c := range content {
		out = append(out, c["volid"].(string))
	}
	return out
}

// TestAplinfoIndexAndDownload: GET aplinfo answers the index's records
// (pve-manager PVE/APLInfo.pm's fields); POST aplinfo refuses a template the
// index lacks and a storage without vztmpl, and otherwise downloads in a
// "download" task that leaves the volume on the storage.
func TestAplinfoIndexAndDownload(t *testing.T) {
	l := downloadLab(t)
	var index []map[string]any
	l.get("/nodes/pve1/aplinfo", &index)
	if len(index) != 3 {
		t.Fatalf("index: %v", index)
	}
	i := slices.IndexFunc(index, func(a map[string]any) bool { return a["template"] == "ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst" })
	if i < 0 {
		t.Fatalf("index: %v", index)
	}
	a := index[i]
	for k, want := range map[string]string{"section": "system", "type": "lxc", "package": "ubuntu-25.04-standard", "os": "ubuntu-25.04", "version": "25.04-1.1",
		"location": "http://download.proxmox.com/images/system/ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst"} {
		if a[k] != want {
			t.Errorf("%s: %v, want %q", k, a[k], want)
		}
	}
	if s, _ := a["sha512sum"].(string); len(s) != 128 {
		t.Errorf("sha512sum: %v", a["sha512sum"])
	}

	if _, err := l.post("/nodes/pve1/aplinfo", map[string]any{"storage": "local", "template": "ubuntu-26.04-standard_26.04-1_amd64.tar.zst"}); err == nil ||
		!strings.Contains(err.Error(), "no such template") {
		t.Errorf("an unknown template: %v", err)
	}
	if _, err := l.post("/nodes/pve1/aplinfo", map[string]any{"storage": "local-lvm", "template": "ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst"}); err == nil ||
		!strings.Contains(err.Error(), "storage 'local-lvm' does not support templates") {
		t.Errorf("a storage without vztmpl: %v", err)
	}
	const volid = "local:vztmpl/ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst"
	if slices.Contains(l.vztmpl("pve1", "local"), volid) {
		t.Fatal("the volume is there before the download")
	}
	status, log := l.endTask("pve1", "/nodes/pve1/aplinfo", map[string]any{"storage": "local", "template": "ubuntu-25.04-standard_25.04-1.1_amd64.tar.zst"})
	if status != "OK" || !slices.Contains(log, "calculating checksum...OK, checksum verified") {
		t.Fatalf("download: %s\n%s", status, strings.Join(log, "\n"))
	}
	if !slices.Contains(l.vztmpl("pve1", "local"), volid) {
		t.Errorf("after the download, local has %v", l.vztmpl("pve1", "local"))
	}
	if slices.Contains(l.vztmpl("pve2", "local"), volid) {
		t.Errorf("pve2's own local has the volume pve1 downloaded")
	}
}

// TestDownloadURL: download-url checks the file's checksum and refuses what
// pve-storage's download_url refuses; a URL the world does not have fails as
// wget does without a network.
func TestDownloadURL(t *testing.T) {
	l := downloadLab(t)
	sum := sha256.Sum256([]byte("custom"))
	good := hex.EncodeToString(sum[:])
	wrong := strings.Repeat("0", 64)
	params := func(url, checksum string) map[string]any {
		return map[string]any{"content": "vztmpl", "filename": "custom_amd64.tar.zst", "url": url, "checksum": checksum, "checksum-algorithm": "sha256"}
	}
	const path, volid = "/nodes/pve2/storage/local/download-url", "local:vztmpl/custom_amd64.tar.zst"

	if _, err := l.post("/nodes/pve2/storage/local-lvm/download-url", params("https://images.example.com/custom_amd64.tar.zst", good)); err == nil ||
		!strings.Contains(err.Error(), "can't upload to storage type 'lvmthin', not a file based storage!") {
		t.Errorf("lvmthin: %v", err)
	}
	p := params("https://images.example.com/custom_amd64.tar.zst", good)
	p["filename"] = "custom.img"
	if _, err := l.post(path, p); err == nil || !strings.Contains(err.Error(), "wrong file extension") {
		t.Errorf("custom.img: %v", err)
	}
	if status, _ := l.endTask("pve2", path, params("https://images.example.com/custom_amd64.tar.zst", wrong)); status != "checksum mismatch: got '"+good+"' != expect '"+wrong+"'" {
		t.Errorf("a wrong checksum: %s", status)
	}
	if status, _ := l.endTask("pve2", path, params("https://nowhere.example.com/custom_amd64.tar.zst", good)); status != "download failed: exit code 4" {
		t.Errorf("an unreachable URL: %s", status)
	}
	if slices.Contains(l.vztmpl("pve2", "local"), volid) {
		t.Fatal("a failed download left the volume")
	}
	if status, _ := l.endTask("pve2", path, params("https://images.example.com/custom_amd64.tar.zst", strings.ToUpper(good))); status != "OK" {
		t.Fatalf("the right checksum: %s", status)
	}
	if !slices.Contains(l.vztmpl("pve2", "local"), volid) {
		t.Errorf("after the download, local has %v", l.vztmpl("pve2", "local"))
	}
}
