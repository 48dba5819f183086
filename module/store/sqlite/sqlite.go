// Package sqlite is the embedded durable message store: one SQLite file in WAL mode, written by a
// single goroutine that groups concurrent appends, marks and acknowledgements into one
// transaction (group commit), so a burst of publishes costs one fsync, not one per message.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"pushlane/module"
)

// Store is the SQLite implementation of module.Store. Safe for concurrent use: every write goes
// through the writer goroutine (one connection), reads use a separate pool (WAL lets them run
// beside the writer).
type Store struct {
	path  string // the database file
	opts  module.StoreOptions
	write *sql.DB
	read  *sql.DB
	// headStmt and backlogStmt are prepared on read: the reads every connect makes.
	headStmt, backlogStmt *sql.Stmt
	now                   func() time.Time
	epoch                 string

	ops        chan *op
	quit       chan struct{}
	quitOnce   sync.Once
	writerDone chan struct{}

	marks  markQueue
	claims claims
	health health

	closed   atomic.Bool
	submitMu sync.RWMutex // held shared while sending to ops; Close takes it to stop senders
}

// Sync says when a commit reaches the disk.
type Sync string

const (
	// SyncFull fsyncs every commit: a message answered 200 survives a power loss. The default.
	SyncFull Sync = "full"
	// SyncNormal fsyncs at checkpoints only: a message answered 200 survives a crash or kill -9
	// of pushlane, but the last commits can be lost if the machine itself goes down.
	SyncNormal Sync = "normal"
)

// Option tunes Open.
type Option func(*settings)

type settings struct{ sync Sync }

// WithSync sets when commits reach the disk (SyncFull when not given).
func WithSync(s Sync) Option { return func(o *settings) { o.sync = s } }

// Open opens (creating it and its folder when absent) the database at path, brings a file of an
// earlier version to the current schema, and starts the writer.
func Open(path string, opts module.StoreOptions, options ...Option) (*Store, error) {
	opts.Fill()
	set := settings{sync: SyncFull}
	for _, o := range options {
		o(&set)
	}
	pragmaSync := "FULL"
	switch set.sync {
	case SyncFull:
	case SyncNormal:
		pragmaSync = "NORMAL"
	default:
		return nil, fmt.Errorf("sqlite store: sync %q: want %q or %q", set.sync, SyncFull, SyncNormal)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite store: create folder %s: %w", dir, err)
		}
	}
	// synchronous(FULL): a commit is on disk before Append returns, so a 200 survives power loss,
	// not only kill -9; group commit keeps that to one fsync per batch. NORMAL (opt-in) leaves the
	// WAL's fsync to checkpoints: measured 10.3-10.4k -> 13.2-13.7k msgs/s.
	dsn := func(extra string) string {
		return "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + pragmaSync + ")" + extra
	}
	// Checkpoints stay SQLite's automatic ones, run by the writer right after a commit: only
	// then has a checkpoint copied every frame, so the next commit can restart the WAL. A
	// checkpointer beside a busy writer never catches up, and the WAL grows without end
	// (measured: 9 GB in 5 minutes at 5,000 messages/s).
	write, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite store: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	s := &Store{
		path:       path,
		opts:       opts,
		write:      write,
		now:        time.Now,
		ops:        make(chan *op, 4096),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		marks:      markQueue{limit: maxQueuedMarks},
		claims:     claims{held: make(map[idemID]struct{})},
	}
	fail := func(err error) (*Store, error) {
		write.Close()
		if s.read != nil {
			s.read.Close()
		}
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	if err := migrate(write); err != nil {
		return fail(fmt.Errorf("create or migrate the schema: %w", err))
	}
	if s.epoch, err = loadEpoch(write); err != nil {
		return fail(err)
	}
	// A small page cache per read connection (256 KiB, against SQLite's default 2 MiB): reads
	// are a user's newest index entry at each connect and backlog pages read once, and the file is
	// in the kernel's page cache anyway. Measured: about 0.3 KB less RSS per idle connection at
	// 19.5k connections, each of which read its head.
	if s.read, err = sql.Open("sqlite", dsn("&_pragma=query_only(1)&_pragma=cache_size(-256)")); err != nil {
		return fail(fmt.Errorf("open for reading: %w", err))
	}
	s.read.SetMaxOpenConns(4)
	s.read.SetMaxIdleConns(4)
	// The reads of every connect are prepared once (database/sql keeps them per connection of
	// the pool): parsing their SQL again on each call cost more than running them.
	if s.headStmt, err = s.read.Prepare(headSQL); err != nil {
		return fail(fmt.Errorf("prepare the head read: %w", err))
	}
	if s.backlogStmt, err = s.read.Prepare(backlogSQL); err != nil {
		return fail(fmt.Errorf("prepare the backlog read: %w", err))
	}
	last, err := loadLastID(write)
	if err != nil {
		return fail(err)
	}
	w, err := newWriter(s, last)
	if err != nil {
		return fail(err)
	}
	go w.run()
	return s, nil
}

// loadLastID is the id counter: the greatest id stored or saved.
func loadLastID(db *sql.DB) (uint64, error) {
	var last int64
	err := db.QueryRow(`SELECT MAX(
		COALESCE((SELECT value FROM meta WHERE key = 'last_id'), 0),
		COALESCE((SELECT MAX(id) FROM messages), 0),
		COALESCE((SELECT MAX(last_id) FROM user_heads), 0))`).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("read last id: %w", err)
	}
	return uint64(last), nil
}

// enqueue hands an op to the writer without waiting for it.
func (s *Store) enqueue(ctx context.Context, o *op) error {
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	if s.closed.Load() {
		return module.ErrClosed
	}
	select {
	case s.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// submit hands an op to the writer and waits for its commit. The wait does not end with ctx:
// once queued an op is committed or failed by the writer, and the caller must know which.
func (s *Store) submit(ctx context.Context, o *op) error {
	if err := s.enqueue(ctx, o); err != nil {
		return err
	}
	<-o.done
	return o.err
}

// Append implements module.Store.
func (s *Store) Append(ctx context.Context, drafts []module.Draft) ([]module.Message, error) {
	o := &op{kind: opAppend, drafts: drafts, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return nil, fmt.Errorf("sqlite store append: %w", err)
	}
	return o.msgs, nil
}

// Purge implements module.Store. The user's newest id is kept for Head.
func (s *Store) Purge(ctx context.Context, userID string) (int, error) {
	o := &op{kind: opPurge, userID: userID, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return 0, fmt.Errorf("sqlite store purge: %w", err)
	}
	return o.n, nil
}

// Epoch implements module.Store: created with the file, kept in it.
func (s *Store) Epoch(context.Context) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("sqlite store epoch: %w", module.ErrClosed)
	}
	return s.epoch, nil
}

// Close commits what is queued, stops the writer and closes the file.
func (s *Store) Close() error {
	s.submitMu.Lock()
	already := s.closed.Swap(true)
	s.submitMu.Unlock()
	if already {
		return nil
	}
	s.quitOnce.Do(func() { close(s.quit) })
	<-s.writerDone
	// Fold the WAL into the database file, so a stopped server leaves one tidy file.
	_, ckptErr := s.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	if ckptErr != nil {
		ckptErr = fmt.Errorf("sqlite store: final checkpoint: %w", ckptErr)
	}
	return errors.Join(ckptErr, s.headStmt.Close(), s.backlogStmt.Close(), s.read.Close(), s.write.Close())
}
