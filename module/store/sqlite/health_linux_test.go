//go:build linux

package sqlite

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pushlane/module"
)

// smallTmpfs mounts a tmpfs of size bytes on a new folder and unmounts it when the test ends
// (after the test's later cleanups, such as closing the store on it). It needs root: as another
// user the test is skipped, saying why. As root the mount must work (CI runs as root: the case
// must run there), unless PUSHLANE_SKIP_MOUNT_TESTS=1 says the machine forbids mounts.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (a full or read-only disk); run as root to cover it")
	}
	if os.Getenv("PUSHLANE_SKIP_MOUNT_TESTS") == "1" {
		t.Skip("PUSHLANE_SKIP_MOUNT_TESTS=1: this machine forbids mounts")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Fatalf("mount a %s tmpfs on %s as root: %v (set PUSHLANE_SKIP_MOUNT_TESTS=1 where mounts are forbidden)", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the disk is full and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for len(chunk) > 0 {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill the disk: %v", err)
			}
			chunk = chunk[:len(chunk)/2] // fill the last bytes too
		}
	}
	return path
}

// TestHealthOnAFullDisk: with the disk full, publishes fail and Health says so; the failed
// idempotent publish left neither messages nor its record (one transaction). Once space is free
// the store is healthy again and publishes work.
func TestHealthOnAFullDisk(t *testing.T) {
	dir := smallTmpfs(t, "4m")
	s := openT(t, filepath.Join(dir, "push.db"), module.StoreOptions{})
	mustAppend(t, s, d("u", `1`))
	if err := healthWithin(t, s, 5*time.Second); err != nil {
		t.Fatalf("Health before the disk is full: %v", err)
	}
	filler := fillDisk(t, dir)
	ctx := testCtx(t)
	big := module.Draft{UserID: "u", Data: []byte(`"` + strings.Repeat("x", 60_000) + `"`), TTL: time.Hour}
	if _, err := s.Append(ctx, []module.Draft{big}); err == nil {
		t.Fatal("a 60 KB publish succeeded on a full disk")
	}
	key := module.IdempotencyKey{Scope: "s", Key: "k", Fingerprint: "fp", Window: time.Hour}
	if st, _, err := s.Begin(ctx, key); err != nil || st != module.IdempotencyNew {
		t.Fatalf("Begin = %d, %v", st, err)
	}
	if _, _, err := s.AppendOnce(ctx, key, []module.Draft{big, d("v", `1`)}); err == nil {
		t.Fatal("an idempotent publish succeeded on a full disk")
	}
	s.Abandon(key)
	err := healthWithin(t, s, 5*time.Second)
	if err == nil {
		t.Fatal("Health is ok on a full disk after failed publishes")
	}
	t.Logf("on a full disk: %v", err)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "Health to recover once space is free", func() bool {
		return healthWithin(t, s, 5*time.Second) == nil
	})
	if st, _, err := s.Begin(ctx, key); err != nil || st != module.IdempotencyNew {
		t.Fatalf("Begin after the failed AppendOnce = %d, %v; want New (no record was kept)", st, err)
	}
	s.Abandon(key)
	if got := mustBacklog(t, s, "v", module.BacklogQuery{}); len(got) != 0 {
		t.Fatalf("the failed idempotent publish stored %v", msgIDs(got))
	}
	mustAppend(t, s, big)
}

// TestReadOnlyFolderRefused: a store on a read-only file system never serves as healthy: Open
// fails, naming the file. (A file system that turns read-only under a running store fails its
// commits like a full disk, which TestHealthOnAFullDisk covers: the kernel refuses to remount a
// file system read-only while files are open for writing on it, so a test cannot do that.)
func TestReadOnlyFolderRefused(t *testing.T) {
	dir := smallTmpfs(t, "4m")
	path := filepath.Join(dir, "push.db")
	s, err := Open(path, module.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, d("u", `1`))
	closeT(t, s)
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	s, err = Open(path, module.StoreOptions{})
	if err == nil {
		herr := healthWithin(t, s, 5*time.Second)
		s.Close()
		if herr == nil {
			t.Fatal("a store on a read-only file system opened and reports healthy")
		}
		return
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("Open on a read-only file system: %v; want the path named", err)
	}
	t.Logf("refused: %v", err)
}
