package ssh

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phoenixhv/phoenix/spec"

	"github.com/phoenixhv/phoenix/hack/testtool"
	"github.com/phoenixhv/phoenix/providers/sim"
)

// TestMain fails the package if goroutines outlive the tests: every test
// closes what it started, so one left over is a leak.
func TestMain(m *testing.M) { testtool.MainNoLeaks(m) }

// testWorld has what the tests need: a node with two GPUs, one with a GPU
// but no driver, one whose nvidia-uvm was never loaded; running and stopped
// containers; a script that takes a minute, to be cancelled; and one that
// prints progress lines for most of a second.
const testWorld = `apiVersion: sim.phoenix/v1alpha1
kind: World
metadata: {name: ssh}
spec:
  seed: 3
  timeScale: 1
  nodes:
    - {name: pve1, gpus: 2, driverVersion: "580.76.05", uvmMajor: 511}
    - {name: pve2, gpus: 1}
    - {name: pve3, gpus: 1, driverVersion: "570.172.08", uvmLoaded: false}
  guests:
    - {vmid: 100, name: gpu, node: pve1, running: true}
    - {vmid: 101, name: stopped, node: pve1}
    - {vmid: 102, name: elsewhere, node: pve2, running: true}
  durations:
    exec: 20ms
    scripts: {test/slow: 60s, test/stream: 800ms}
`

// cluster is a running simulator with what it takes to reach it.
type cluster struct {
	t     *testing.T
	sim   *sim.Sim
	env   map[string]string
	cfg   Config
	dials atomic.Int32
	mu    sync.Mutex
	conns []net.Conn
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	w, err := sim.ParseWorld([]byte(testWorld))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sim.Start(w, sim.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	c := &cluster{t: t, sim: s, env: s.Env()}
	c.cfg, err = ConfigFromEnv(func(k string) string { return c.env[k] }, spec.SSHSettings{})
	if err != nil {
		t.Fatal(err)
	}
	// Nodes are found the way phoenix finds them: their ip in /cluster/status.
	var members []struct{ Type, Name, IP string }
	c.api("/cluster/status", &members)
	c.cfg.Addresses = map[string]string{}
	for _, m := range members {
		if m.Type == "node" {
			c.cfg.Addresses[m.Name] = m.IP
		}
	}
	d := &net.Dialer{}
	c.cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c.dials.Add(1)
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil {
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
		}
		return conn, err
	}
	return c
}

// pool returns a Pool on the cluster, closed when the test ends.
func (c *cluster) pool(cfg Config) *Pool {
	c.t.Helper()
	p, err := NewPool(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = p.Close() })
	return p
}

func (c *cluster) node(name string) *Node {
	c.t.Helper()
	n, err := c.pool(c.cfg).Node(name)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// api reads from the simulator's Proxmox API with its token.
func (c *cluster) api(path string, out any) {
	c.t.Helper()
	pem, err := os.ReadFile(c.env["PROXMOX_VE_CA_FILE"])
	if err != nil {
		c.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest("GET", strings.TrimSuffix(c.env["PROXMOX_VE_ENDPOINT"], "/")+"/api2/json"+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "PVEAPIToken="+c.env["PROXMOX_VE_API_TOKEN"])
	res, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		c.t.Fatalf("GET %s: %s", path, res.Status)
	}
	var body struct{ Data json.RawMessage }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		c.t.Fatal(err)
	}
	if err := json.Unmarshal(body.Data, out); err != nil {
		c.t.Fatal(err)
	}
}

// events returns the journal's exec events for a name.
func (c *cluster) events(name string) []sim.Event {
	var out []sim.Event
	for _, e := range c.sim.Journal() {
		if e.Kind == "exec" && e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
