package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/providers/sim/lxc"
)

const realDebian = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"

// realLab starts testdata/real.yaml, whose containers are real; without root
// and the lxc tools the test is skipped, or fails where CI requires them.
func realLab(t *testing.T) *lab {
	t.Helper()
	if err := lxc.Available(); err != nil {
		testtool.Unable(t, "%v: this machine must run real containers", err)
	}
	return startLab(t, "real.yaml", nil)
}

// In a world with realGuests, each CT is a real container: pct create copies
// the Debian 12 root file system (and refuses other templates), devN become
// device nodes with the host's numbers and the devN's mode and owner, pct
// exec runs phoenix's argv with lxc-attach and the journal names the script,
// the node's runfile is the bytes its source serves and pct push copies it in
// with --perms, a clone has its source's disk, destroy removes the container.
func TestRealGuests(t *testing.T) {
	l := realLab(t)
	host := l.s.LXCHost()

	data, err := l.post("/nodes/pve1/lxc", map[string]any{"vmid": 150, "ostemplate": labUbuntu, "rootfs": "local-lvm:8",
		"net0": "name=eth0,bridge=vmbr0,ip=dhcp"})
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	l.poll("the Ubuntu create's task", func() bool {
		l.get("/nodes/pve1/tasks/"+data.(string)+"/status", &st)
		return st["status"] == "stopped"
	})
	if exit, _ := st["exitstatus"].(string); !strings.Contains(exit, "real guests are made from Debian 12 only") {
		t.Errorf("create from Ubuntu ended %q, want the real backend's refusal", exit)
	}

	l.create("pve1", 200, map[string]any{"ostemplate": realDebian, "hostname": "web", "unprivileged": 0,
		"features": "nesting=1", "dev0": "/dev/nvidia0,mode=0666", "dev1": "/dev/nvidia-uvm,gid=44"})
	l.start("pve1", 200)
	ct := l.s.Container(200)
	if ct == nil || !ct.Running() {
		t.Fatal("CT 200 has no running container")
	}
	if r := l.exec("pve1", 200, "hostname"); r.code != 0 || r.stdout != "web\n" {
		t.Errorf("hostname: %v, want web", r)
	}
	r := l.script("pve1", 200, "demo/write", "apply", `set -eu; echo "$GREETING" > /root/greeting; . /etc/os-release; echo "$ID $VERSION_ID $1"`, "GREETING=hi from phoenix")
	if r.code != 0 || r.stdout != "debian 12 apply\n" {
		t.Errorf("script: %v, want it run in Debian 12 with its phase as $1", r)
	}
	if r := l.script("pve1", 200, "demo/fail", "check", `echo "no such thing" >&2; exit 3`); r.code != 3 || r.stderr != "no such thing\n" {
		t.Errorf("failing script: %v, want exit 3 and its stderr", r)
	}
	if r := l.exec("pve1", 200, "stat", "-c", "%n %t:%T %a %u %g", "/dev/nvidia0", "/dev/nvidia-uvm"); r.stdout != "/dev/nvidia0 c3:0 666 0 0\n/dev/nvidia-uvm 1ff:0 660 0 44\n" {
		t.Errorf("device nodes: %v", r)
	}
	wantExecs := []string{"hostname ok", "demo/write apply ok", "demo/fail check failed: no such thing"}
	if got := l.execs("pve1", 200); !equalPrefix(got, wantExecs) {
		t.Errorf("journal: %q, want %q first", got, wantExecs)
	}

	// The runfile on the node is what its source serves; pct push copies
	// it into the container with the given mode.
	port, ca := realTLSServer(t, host.Gateway(), "#!/bin/sh\necho runfile stand-in ran\n")
	if _, err := host.Forward(port); err != nil {
		t.Fatal(err)
	}
	if err := host.TrustCA(ca); err != nil {
		t.Fatal(err)
	}
	url := "https://" + net.JoinHostPort(host.Gateway(), strconv.Itoa(port)) + "/NVIDIA-Linux-x86_64-580.76.05.run"
	env := []string{"NVIDIA_VERSION=580.76.05", "NVIDIA_URLS=" + url, "NVIDIA_RUNFILE=/var/lib/phoenix/r.run"}
	if r := l.script("pve1", 0, "nvidia-driver/download", "check", "exit 1", env...); r.code == 0 {
		t.Errorf("download check before the download passed: %v", r)
	}
	if r := l.script("pve1", 0, "nvidia-driver/download", "apply", "exit 1", env...); r.code != 0 {
		t.Fatalf("download: %v", r)
	}
	if r := l.script("pve1", 0, "nvidia-driver/download", "check", "exit 1", env...); r.code != 0 {
		t.Errorf("download check after the download: %v", r)
	}
	if r := l.sh("pve1", "pct push 200 /var/lib/phoenix/r.run /root/r.run --perms 0750"); r.code != 0 {
		t.Fatalf("push: %v", r)
	}
	if r := l.exec("pve1", 200, "/bin/sh", "-c", "stat -c %a /root/r.run && /root/r.run"); r.stdout != "750\nrunfile stand-in ran\n" {
		t.Errorf("pushed runfile: %v", r)
	}
	if r := l.sh("pve1", "pct push 200 /var/lib/phoenix/r.run /no/such/dir/r.run"); r.code != pctError {
		t.Errorf("push into a missing directory: %v, want pct's error", r)
	}

	// A clone has its source's disk.
	l.stop("pve1", 200)
	if ct.Running() {
		t.Fatal("CT 200 still running after stop")
	}
	l.task("pve1", ctPath("pve1", 200, "/clone"), map[string]any{"newid": 201, "hostname": "web2", "full": 1})
	l.start("pve1", 201)
	if r := l.exec("pve1", 201, "/bin/sh", "-c", "hostname; cat /root/greeting"); r.stdout != "web2\nhi from phoenix\n" {
		t.Errorf("clone: %v, want its own name and the source's file", r)
	}
	l.reboot("pve1", 201)
	if r := l.exec("pve1", 201, "cat", "/root/greeting"); r.code != 0 {
		t.Errorf("after a reboot: %v", r)
	}
	var upid string
	if err := l.root.Delete(context.Background(), ctPath("pve1", 201, "?force=1"), &upid); err != nil {
		t.Fatal(err)
	}
	l.poll("the destroy's task", func() bool {
		l.get("/nodes/pve1/tasks/"+upid+"/status", &st)
		return st["status"] == "stopped"
	})
	if st["exitstatus"] != "OK" {
		t.Fatalf("destroy ended %v", st["exitstatus"])
	}
	if l.s.Container(201) != nil {
		t.Error("CT 201's container is left after destroy")
	}
	if _, err := os.Stat(filepath.Dir(ct.Rootfs())); err != nil {
		t.Errorf("CT 200's disk is gone with its clone: %v", err)
	}
}

func equalPrefix(got, want []string) bool {
	if len(got) < len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// realTLSServer serves body over HTTPS on 127.0.0.1 with a certificate for
// ip from a CA of its own, returned as PEM.
func realTLSServer(t *testing.T, ip, body string) (int, []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "real-guest test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}},
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}
