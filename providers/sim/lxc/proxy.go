package lxc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// aptProxy is how containers reach the Debian archive: their /etc/hosts
// names the gateway for the mirror's host, whose port 80 leads here, and an
// https mirror is reached through it as apt's proxy (CONNECT). It serves the
// mirror's host and refuses every other, so that containers reach the archive
// and nothing else. It listens on 127.0.0.1 and is forwarded to the bridge
// like any test server.
type aptProxy struct {
	allowed string
	ln      net.Listener
	srv     *http.Server
	client  *http.Transport
}

func startAptProxy(allowedHost string) (*aptProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("apt proxy: %w", err)
	}
	p := &aptProxy{
		allowed: strings.ToLower(allowedHost),
		ln:      ln,
		client: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: 2 * time.Minute,
			MaxIdleConnsPerHost:   8,
		},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *aptProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *aptProxy) close() error {
	err := p.srv.Close()
	p.client.CloseIdleConnections()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (p *aptProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.URL.Hostname())
	if r.Method == http.MethodConnect || host == "" {
		host = strings.ToLower(strings.Split(r.Host, ":")[0])
	}
	if host != p.allowed {
		http.Error(w, fmt.Sprintf("the simulator's containers reach only the Debian archive (%s), not %s", p.allowed, host), http.StatusForbidden)
		return
	}
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	out := r.Clone(r.Context())
	if r.URL.Host == "" {
		// Not a proxy request: the container resolved the mirror's name to
		// the gateway (its /etc/hosts) and asks it directly.
		out.URL.Scheme, out.URL.Host = "http", r.Host
	} else if r.URL.Scheme != "http" {
		http.Error(w, "want an http URL", http.StatusBadRequest)
		return
	}
	out.RequestURI = ""
	for _, h := range []string{"Proxy-Connection", "Proxy-Authorization", "Connection", "Keep-Alive", "Te", "Trailer", "Upgrade"} {
		out.Header.Del(h)
	}
	resp, err := p.client.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		if k == "Connection" || k == "Keep-Alive" {
			continue
		}
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// tunnel serves CONNECT to the mirror's host on port 443, for an https
// mirror.
func (p *aptProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	if _, port, _ := net.SplitHostPort(r.Host); port != "443" {
		http.Error(w, "only port 443 is tunnelled", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	up, err := (&net.Dialer{}).DialContext(ctx, "tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "cannot tunnel", http.StatusInternalServerError)
		return
	}
	down, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	_, _ = down.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() {
		_, _ = io.Copy(up, buf)
		up.Close()
	}()
	_, _ = io.Copy(down, up)
	down.Close()
}
