package lxc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// IDMapBase is where an unprivileged container's ids start on the host, as in
// Proxmox VE's default id map (lxc.idmap = u 0 100000 65536).
const (
	IDMapBase  = 100000
	IDMapCount = 65536
)

// rootfsVersion changes whenever what ensureRootfs makes changes, so that a
// cache made by an older phoenix is not reused.
const rootfsVersion = "debian-12-v1"

// shiftedMarker says the id-shifted copy is complete; its name changes when
// the shifting does.
const shiftedMarker = "rootfs-shifted.v2.ok"

// ensureRootfs returns the pristine Debian 12 root file system and its
// id-shifted copy for unprivileged containers, making them on first use.
// A lock file serialises concurrent processes: one builds, the others wait
// and reuse it.
func ensureRootfs(ctx context.Context, cacheDir, mirror string, log io.Writer) (pristine, shifted string, err error) {
	dir := filepath.Join(cacheDir, rootfsVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	unlock, err := lockFile(ctx, dir+".lock")
	if err != nil {
		return "", "", err
	}
	defer unlock()
	removeStaleGuests(cacheDir)
	pristine = filepath.Join(dir, "rootfs")
	shifted = filepath.Join(dir, "rootfs-shifted")
	if !exists(filepath.Join(dir, "rootfs.ok")) {
		start := time.Now()
		fmt.Fprintf(log, "lxc: building the Debian 12 root file system from %s with debootstrap (about two minutes, once)\n", mirror)
		build := filepath.Join(dir, "rootfs.build")
		if err := os.RemoveAll(build); err != nil {
			return "", "", err
		}
		if err := run(ctx, "debootstrap", "--include=systemd-sysv,iproute2,ifupdown", "bookworm", build, mirror); err != nil {
			return "", "", fmt.Errorf("debootstrap: %w", err)
		}
		if err := tidyRootfs(build); err != nil {
			return "", "", err
		}
		if err := replaceDir(build, pristine); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "rootfs.ok"), []byte(mirror+"\n"), 0o644); err != nil {
			return "", "", err
		}
		_ = os.Remove(filepath.Join(dir, shiftedMarker))
		fmt.Fprintf(log, "lxc: root file system ready in %s\n", time.Since(start).Round(time.Second))
	}
	if !exists(filepath.Join(dir, shiftedMarker)) {
		fmt.Fprintf(log, "lxc: making the id-shifted copy for unprivileged containers\n")
		build := filepath.Join(dir, "rootfs-shifted.build")
		if err := os.RemoveAll(build); err != nil {
			return "", "", err
		}
		if err := copyTree(ctx, pristine, build); err != nil {
			return "", "", err
		}
		if err := shiftIDs(build, IDMapBase); err != nil {
			return "", "", err
		}
		if err := replaceDir(build, shifted); err != nil {
			return "", "", err
		}
		if err := os.WriteFile(filepath.Join(dir, shiftedMarker), nil, 0o644); err != nil {
			return "", "", err
		}
	}
	return pristine, shifted, nil
}

// tidyRootfs makes the debootstrapped tree look like a Proxmox VE template:
// no downloaded packages, no machine id (each container gets its own at
// boot), no host name of the machine that built it.
func tidyRootfs(root string) error {
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/machine-id"), nil, 0o444); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(root, "var/lib/dbus/machine-id"))
	return os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("localhost\n"), 0o644)
}

// shiftIDs adds base to the owner and group of every file. chown clears the
// set-user-id and set-group-id bits, so they are put back. (File
// capabilities are dropped by the chown; nothing the tests run needs them.)
func shiftIDs(root string, base int) error {
	// A file with several hard links is shifted once.
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			key := inode{st.Dev, st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		if err := unix.Lchown(path, int(st.Uid)+base, int(st.Gid)+base); err != nil {
			return fmt.Errorf("shift ids of %s: %w", path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK && st.Mode&(unix.S_ISUID|unix.S_ISGID|unix.S_ISVTX) != 0 {
			if err := unix.Chmod(path, st.Mode&0o7777); err != nil {
				return fmt.Errorf("restore mode of %s: %w", path, err)
			}
		}
		return nil
	})
}

// copyTree copies a root file system with owners, modes, device nodes and
// extended attributes (cp -a; a reflink where the file system has them).
func copyTree(ctx context.Context, src, dst string) error {
	if exists(dst) {
		return fmt.Errorf("copy %s: %s exists", src, dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return run(ctx, "cp", "-a", "--reflink=auto", src, dst)
}

func replaceDir(build, final string) error {
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(build, final)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// lockFile takes an exclusive flock on path, waiting for its holder. The
// kernel releases it when a holder dies, so a killed build never blocks the
// next one.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
	case <-ctx.Done():
		// The flock may still be granted later: closing the file releases it.
		go func() { <-done; f.Close() }()
		return nil, errors.Join(fmt.Errorf("lock %s", path), ctx.Err())
	}
}
