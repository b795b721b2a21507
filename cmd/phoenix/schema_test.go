package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSchemaFileIsCurrent keeps the checked-in schema, which editors read, the
// same as what phoenix generates.
func TestSchemaFileIsCurrent(t *testing.T) {
	want, err := os.ReadFile("../../schema/phoenix.schema.json")
	if err != nil {
		t.Fatalf("%v (run go run ./cmd/phoenix schema --out schema/phoenix.schema.json)", err)
	}
	code, out, errOut := phoenix(t, "schema")
	if code != 0 {
		t.Fatalf("phoenix schema: exit %d\n%s", code, errOut)
	}
	if diff := cmp.Diff(string(want), out); diff != "" {
		t.Errorf("schema/phoenix.schema.json is out of date: run go run ./cmd/phoenix schema --out schema/phoenix.schema.json\n(-file +generated):\n%s", diff)
	}
}

func TestSchemaOutputFile(t *testing.T) {
	_, stdout, _ := phoenix(t, "schema")
	if !strings.HasPrefix(stdout, "{\n  \"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n") ||
		!strings.HasSuffix(stdout, "}\n") {
		t.Errorf("phoenix schema does not print indented JSON ending in a newline:\n%.200s", stdout)
	}
	file := filepath.Join(t.TempDir(), "phoenix.schema.json")
	code, out, errOut := phoenix(t, "schema", "--out", file)
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("phoenix schema --out: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(written) != stdout {
		t.Errorf("--out wrote something other than what stdout gets")
	}
	if code, _, errOut := phoenix(t, "schema", "extra"); code != 1 || !strings.HasPrefix(errOut, "phoenix: ") {
		t.Errorf("phoenix schema extra: exit %d, stderr %q: want 1 and a phoenix: message", code, errOut)
	}
}
