// Command ollama is a stand-in for ollama, served by phoenix's stand-in
// sources: its server answers on 127.0.0.1:11434 (or OLLAMA_HOST) as ollama's
// does where phoenix looks (/, /api/version), and says everywhere that it is
// a stand-in. It runs no models.
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	version := standinVersion()
	args := os.Args[1:]
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: ollama serve | --version (phoenix stand-in)")
		os.Exit(2)
	}
	switch args[0] {
	case "serve":
		os.Exit(serve(version))
	case "--version", "-v", "version":
		fmt.Fprintln(os.Stderr, "phoenix stand-in for ollama (not ollama)")
		c := http.Client{Timeout: 3 * time.Second}
		resp, err := c.Get("http://" + addr() + "/api/version")
		if err != nil {
			fmt.Println("Warning: could not connect to a running Ollama instance")
			fmt.Println("Warning: client version is " + version)
			return
		}
		var v struct{ Version string }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		_ = resp.Body.Close()
		fmt.Println("ollama version is " + v.Version)
	default:
		fmt.Fprintf(os.Stderr, "Error: ollama %s is not modelled by phoenix's stand-in\n", args[0])
		os.Exit(1)
	}
}

// standinVersion is the version the installer unpacked next to the binary.
func standinVersion() string {
	exe, err := os.Executable()
	if err == nil {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(exe), "..", "lib", "ollama", "phoenix-standin-version"))
		if err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return "0.0.0"
}

func addr() string {
	if h := os.Getenv("OLLAMA_HOST"); h != "" {
		return strings.TrimPrefix(strings.TrimPrefix(h, "http://"), "https://")
	}
	return "127.0.0.1:11434"
}

func serve(version string) int {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "Ollama is running (phoenix stand-in)")
	})
	mux.HandleFunc("GET /api/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"version": version, "standin": "phoenix stand-in, not ollama"})
	})
	mux.HandleFunc("GET /api/tags", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"models":[]}`)
	})
	srv := &http.Server{Addr: addr(), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "phoenix stand-in for ollama %s listening on %s\n", version, addr())
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}
