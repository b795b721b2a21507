package importer

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write puts the result's files under dir, refusing to overwrite a spec file
// that is already there.
func (res *Result) Write(dir string) error {
	for _, f := range res.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if _, err := os.Stat(p); err == nil && f.Name != "IMPORT-REPORT.md" {
			return fmt.Errorf("%s already exists: import into an empty directory", p)
		}
	}
	for _, f := range res.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
