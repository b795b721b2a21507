package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Modified is when the spec tree under paths last changed on disk, as far as
// modification times tell: the newest of the spec files' (*.yaml, *.yml),
// the directories' that hold them (a file created, deleted or renamed in a
// directory changes the directory's), and for a file given by name its
// directory's. Hidden directories are skipped, as Load skips them. A deploy
// in progress (a file half written, moved between folders, a checkout) is
// recent by this measure; a path that does not exist is an error.
func Modified(paths ...string) (time.Time, error) {
	if len(paths) == 0 {
		return time.Time{}, errors.New("no spec paths given")
	}
	var newest time.Time
	note := func(info fs.FileInfo) {
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return time.Time{}, fmt.Errorf("spec path: %w", err)
		}
		if !info.IsDir() {
			note(info)
			dir, err := os.Stat(filepath.Dir(p))
			if err != nil {
				return time.Time{}, fmt.Errorf("spec path: %w", err)
			}
			note(dir)
			continue
		}
		err = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() && path != p && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			if ext := filepath.Ext(path); !e.IsDir() && ext != ".yaml" && ext != ".yml" {
				return nil
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone since the directory was read: its directory says so
			}
			if err != nil {
				return err
			}
			note(info)
			return nil
		})
		if err != nil {
			return time.Time{}, fmt.Errorf("spec path: %w", err)
		}
	}
	return newest, nil
}
