package pebble

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"pushlane/module"
)

// gatedFS holds every sync of a write-ahead log (*.log) while gated, so a test can look at the
// store while a batch is applied but not yet on disk.
type gatedFS struct {
	vfs.FS
	gated   atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGatedFS() *gatedFS {
	return &gatedFS{FS: vfs.Default, entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gatedFS) open() { g.once.Do(func() { close(g.release) }) }

func (g *gatedFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &gatedFile{File: f, fs: g}, nil
}

func (g *gatedFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.Create(name, c)
	return g.wrap(name, f, err)
}

func (g *gatedFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.ReuseForWrite(oldname, newname, c)
	return g.wrap(newname, f, err)
}

type gatedFile struct {
	vfs.File
	fs *gatedFS
}

func (f *gatedFile) wait() {
	if f.fs.gated.Load() {
		select {
		case f.fs.entered <- struct{}{}:
		default:
		}
		<-f.fs.release
	}
}

func (f *gatedFile) Sync() error     { f.wait(); return f.File.Sync() }
func (f *gatedFile) SyncData() error { f.wait(); return f.File.SyncData() }
func (f *gatedFile) SyncTo(n int64) (bool, error) {
	f.wait()
	return f.File.SyncTo(n)
}

// TestAnsweredAfterTheLogSync: an append is neither answered nor handed to the commit hook until
// the write-ahead log's sync has returned. The test holds that sync. Meanwhile the message is
// already visible to readers (Pebble applies a batch before its sync), which is why ids are
// leased (TestIDCeilingAfterALostCommit).
func TestAnsweredAfterTheLogSync(t *testing.T) {
	fs := newGatedFS()
	t.Cleanup(fs.open) // a failing test must not leave the sync held
	var hooked atomic.Int32
	s, err := Open(filepath.Join(t.TempDir(), "push"), module.StoreOptions{
		OnCommit: func(msgs []module.Message) { hooked.Add(int32(len(msgs))) }}, Options{fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	mustAppend(t, s, d("u", `1`)) // also raises the id ceiling, with a sync of its own

	fs.gated.Store(true)
	appended := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), []module.Draft{d("u", `2`)})
		appended <- err
	}()
	select {
	case <-fs.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no log sync began after the append")
	}
	msgs, err := s.Backlog(testCtx(t), "u", module.BacklogQuery{})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Backlog while the sync is held = %d messages, %v; want 2 (applied before the sync)", len(msgs), err)
	}
	select {
	case err := <-appended:
		t.Fatalf("the append returned (%v) while its log sync was held", err)
	default:
	}
	if h := hooked.Load(); h != 1 {
		t.Fatalf("the hook got %d messages while the sync was held, want 1 (the first append only)", h)
	}
	fs.gated.Store(false)
	fs.open()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if h := hooked.Load(); h != 2 {
		t.Fatalf("the hook got %d messages after the sync, want 2", h)
	}
}
