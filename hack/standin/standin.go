// Package standin serves, over HTTPS with a CA of its own, what phoenix's
// built-in feature scripts download from servers a test machine cannot
// reach: signed apt repositories (NVIDIA's CUDA repository with its keyring
// package and a cuda-toolkit package, NVIDIA's container toolkit repository
// whose nvidia-ctk is the real one built from its Go module), NVIDIA's driver
// runfile, a PyPI-shaped index with vllm, and ollama's installer. Everything
// it serves that is not the real thing is a stand-in and says so in its
// output, so that no test result can pass for a real install.
//
// Containers reach it at Options.PublicHost (an address on their bridge
// forwarded to the 127.0.0.1 port the server listens on); Params points each
// feature's source parameters there.
package standin

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/phoenixhv/phoenix/spec"
)

// Options configure Start.
type Options struct {
	// DriverVersion is the (simulated) host's NVIDIA driver version: the
	// runfile stand-in's nvidia-smi reports it, and a runfile of another
	// version fails as a mismatched userspace does.
	DriverVersion string
	// PublicHost is the address containers reach the server at: host, or
	// host:port where that port is not the one the server listens on. The
	// server's certificate is valid for that host (an IP address or a name).
	PublicHost string
	// Dir keeps what is slow to make between runs (the nvidia-ctk build);
	// empty: a directory under the user's cache directory.
	Dir string
}

// Sources is a running stand-in server.
type Sources struct {
	opts   Options
	base   string // https://PublicHost
	caPEM  []byte
	ln     net.Listener
	srv    *http.Server
	work   string // removed by Close
	files  map[string][]byte
	mu     sync.Mutex
	closed bool

	ollamaBinary []byte
}

var driverVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?$`)

// Start starts the server on a free 127.0.0.1 port and builds everything it
// serves. PublicHost may leave the port out: containers then reach the server
// at the port it listens on (Port), forwarded to them. Close stops it and
// removes its working files.
func Start(ctx context.Context, o Options) (*Sources, error) {
	if !driverVersion.MatchString(o.DriverVersion) {
		return nil, fmt.Errorf("standin: driver version %q: want a version such as 580.76.05", o.DriverVersion)
	}
	host, port, err := net.SplitHostPort(o.PublicHost)
	if err != nil {
		host, port = o.PublicHost, ""
	}
	if host == "" || strings.ContainsAny(host, "/ ") {
		return nil, fmt.Errorf("standin: public host %q: want the address containers reach the server at, host or host:port", o.PublicHost)
	}
	if o.Dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("standin: no cache directory: %w", err)
		}
		o.Dir = filepath.Join(cache, "phoenix-standin")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	cert, caPEM, err := newCertificate(host)
	if err != nil {
		return nil, fmt.Errorf("standin: certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("standin: %w", err)
	}
	if port == "" {
		port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	work, err := os.MkdirTemp(o.Dir, "work-")
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("standin: %w", err)
	}
	s := &Sources{opts: o, base: "https://" + net.JoinHostPort(host, port), work: work, files: map[string][]byte{}, caPEM: caPEM, ln: ln}
	if err := s.build(ctx); err != nil {
		_ = ln.Close()
		_ = os.RemoveAll(work)
		return nil, fmt.Errorf("standin: %w", err)
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: time.Minute,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// Port is the 127.0.0.1 port the server listens on.
func (s *Sources) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// CA is the PEM certificate of the CA that signed the server's certificate:
// containers must trust it.
func (s *Sources) CA() []byte { return append([]byte(nil), s.caPEM...) }

// URL is the server's base URL as containers reach it.
func (s *Sources) URL() string { return s.base }

// Params are the featureConfig that points each built-in feature's sources
// at the server. docker takes the engine from the distribution (Docker's
// packages conflict with Debian's docker.io, which is the engine here).
func (s *Sources) Params() map[string]map[string]string {
	return map[string]map[string]string{
		spec.FeatureDocker:                 {"source": "distribution"},
		spec.FeatureCUDAToolkit:            {"repository": s.base + "/cuda/repos"},
		spec.FeatureNVIDIAContainerToolkit: {"repository": s.base + "/libnvidia-container"},
		spec.FeatureOllama:                 {"installer": s.base + "/ollama/install.sh"},
		spec.FeatureVLLM:                   {"index": s.base + "/pypi/simple"},
	}
}

// RunfileURL is the pattern of the driver runfile stand-in's URL for the
// cluster's nvidia.runfileURL ({version} is the driver version).
func (s *Sources) RunfileURL() string {
	return s.base + "/nvidia/XFree86/Linux-x86_64/{version}/NVIDIA-Linux-x86_64-{version}.run"
}

// Close stops the server and removes its working files.
func (s *Sources) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.srv.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, os.RemoveAll(s.work))
}

// ServeHTTP serves the built files, and runfiles of any driver version.
func (s *Sources) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "stand-in sources serve GET only", http.StatusMethodNotAllowed)
		return
	}
	// apt asks for a flat repository's files as URL/./name.
	p := path.Clean(r.URL.Path)
	if strings.HasSuffix(r.URL.Path, "/") && p != "/" {
		p += "/"
	}
	body, ok := s.files[p]
	if !ok && strings.HasSuffix(p, "/") {
		body, ok = s.files[p+"index.html"]
	}
	if !ok {
		body, ok = s.generated(p, r.URL.Query().Get("version"))
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(body))
}
