package pveapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustLoad(t testing.TB, v Version) *Schema {
	t.Helper()
	s, err := Load(v)
	if err != nil {
		t.Fatalf("Load(%s): %v", v, err)
	}
	return s
}

func TestLoadParsesBothEmbeddedReleases(t *testing.T) {
	for _, tc := range []struct {
		version Version
		methods int
	}{
		{V91, 650},
		{V83, 606},
	} {
		t.Run(string(tc.version), func(t *testing.T) {
			s := mustLoad(t, tc.version)
			if s.Version() != tc.version {
				t.Errorf("Version() = %q, want %q", s.Version(), tc.version)
			}
			if got := len(s.Methods()); got != tc.methods {
				t.Errorf("len(Methods()) = %d, want %d (every info entry of the dump, plus GET /)", got, tc.methods)
			}
		})
	}
}

func TestLoadRejectsUnknownRelease(t *testing.T) {
	if _, err := Load("7.4"); err == nil {
		t.Fatal("Load(7.4) succeeded, want an error: no such schema is embedded")
	}
}

func TestLoadIsSafeForConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	got := make([]*Schema, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Load(V91)
			if err != nil {
				t.Error(err)
				return
			}
			m, _, err := s.Lookup("GET", "/nodes/pve1/lxc/101/config")
			if err != nil {
				t.Error(err)
				return
			}
			if errs := m.Verify(map[string]any{"node": "pve1", "vmid": "101"}); errs != nil {
				t.Error(errs)
			}
			got[i] = s
		}()
	}
	wg.Wait()
	for _, s := range got[1:] {
		if s != got[0] {
			t.Fatal("Load returned different *Schema values; want one parse per release")
		}
	}
}

// The embedded copies must be the shared dumps byte for byte; hack/update-pve-schema.sh
// regenerates them.
func TestEmbeddedSchemaIsByteIdenticalToSharedDump(t *testing.T) {
	for v, gz := range embedded {
		t.Run(string(v), func(t *testing.T) {
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			embeddedJSON, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(embeddedJSON) {
				t.Fatal("embedded schema is not valid JSON")
			}
			shared := filepath.Join("..", "..", "..", "shared", "pve-api", "apidata-"+string(v)+".json")
			want, err := os.ReadFile(shared)
			if errors.Is(err, os.ErrNotExist) {
				t.Skipf("skipping only the byte comparison: %s is absent in this checkout", shared)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(embeddedJSON, want) {
				t.Fatalf("embedded apidata-%s.json.gz differs from %s; run hack/update-pve-schema.sh", v, shared)
			}
		})
	}
}

func TestParseRejectsNonArrayInput(t *testing.T) {
	if _, err := Parse(V91, strings.NewReader(`{"path":"/x"}`)); err == nil {
		t.Fatal("Parse accepted an object, want an error: the dump is an array of root nodes")
	}
}

func TestParseBuildsMethodsFromAMinimalTree(t *testing.T) {
	const dump = `[{"path":"/version","text":"version","leaf":1,"info":{"GET":{
		"method":"GET","name":"version","allowtoken":0,"protected":"1",
		"parameters":{"additionalProperties":0,"properties":{"x":{"type":"integer","minimum":"0"}}},
		"returns":{"type":"object"},"permissions":{"user":"all"}}}}]`
	s, err := Parse(V91, strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	m, params, err := s.Lookup("GET", "/version")
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Path, HTTPMethod, Name string
		AllowToken, Protected  bool
		Returns, Permissions   string
		Params                 map[string]string
	}
	got := summary{m.Path, m.HTTPMethod, m.Name, m.AllowToken, m.Protected, string(m.Returns), string(m.Permissions), params}
	want := summary{"/version", "GET", "version", false, true, `{"type":"object"}`, `{"user":"all"}`, map[string]string{}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("method (-want +got):\n%s", d)
	}
	if errs := m.Verify(map[string]any{"x": "-1"}); errs["x"] != "value must have a minimum value of 0" {
		t.Errorf("Verify(x=-1) = %q, want the minimum printed as the schema spells it", errs)
	}
}
