package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bareClient makes the requests of a no-op pass and nothing else: the list of
// guests, then each container's config and each running container's pending
// list, so many at a time, each answer read to its end and only the list
// decoded (its VMIDs, nodes and states name the requests to make). It is what
// BenchmarkObservePlan holds phoenix's pass to: the cost of the requests
// themselves, over the same kind of connections (HTTP/1.1 over TLS, the
// phoenix client's idle connection pool).
type bareClient struct {
	base, token string
	hc          *http.Client
}

func newBareClient(env map[string]string) (*bareClient, error) {
	pem, err := os.ReadFile(env["PROXMOX_VE_CA_FILE"])
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", env["PROXMOX_VE_CA_FILE"])
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 16}
	return &bareClient{
		base:  strings.TrimSuffix(env["PROXMOX_VE_ENDPOINT"], "/") + "/api2/json",
		token: "PVEAPIToken=" + env["PROXMOX_VE_API_TOKEN"],
		hc:    &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}, nil
}

// get reads one answer to its end; into, when not nil, gets its data.
func (c *bareClient) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", c.token)
	res, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		return fmt.Errorf("GET %s: %s: %s", path, res.Status, bytes.TrimSpace(body))
	}
	if into == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(&struct {
		Data any `json:"data"`
	}{into})
}

// pass makes one no-op pass's requests, parallelism at a time.
func (c *bareClient) pass(ctx context.Context, parallelism int) error {
	var guests []struct {
		VMID     int         `json:"vmid"`
		Node     string      `json:"node"`
		Type     string      `json:"type"`
		Status   string      `json:"status"`
		Template json.Number `json:"template"`
	}
	if err := c.get(ctx, "/cluster/resources?type=vm", &guests); err != nil {
		return err
	}
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, g := range guests {
		if g.Type != "lxc" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			path := "/nodes/" + g.Node + "/lxc/" + strconv.Itoa(g.VMID)
			err := c.get(ctx, path+"/config", nil)
			if err == nil && g.Status == "running" && g.Template != "1" {
				err = c.get(ctx, path+"/pending", nil)
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// resetPeakRSS returns the free heap to the system and resets the process's
// peak resident set size (VmHWM), which Linux allows by writing 5 to
// /proc/self/clear_refs: what is measured after starts from the live heap.
func resetPeakRSS(b *testing.B) {
	b.Helper()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("reset the peak RSS: %v", err)
	}
}

// peakRSS is the process's peak resident set size in bytes since the last
// reset (VmHWM in /proc/self/status).
func peakRSS(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmHWM: %v", err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
