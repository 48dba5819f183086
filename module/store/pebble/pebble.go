// Package pebble is an embedded durable message store on Pebble, a log-structured merge tree
// (LSM) made for batched durable writes. One writer goroutine groups concurrent appends, marks
// and acknowledgements into one batch: appending the batch to the write-ahead log and syncing it
// is the whole cost of a commit (the SQLite store rewrites a B-tree page per user touched).
// Sorted tables are written later, in the background, by flushes and compactions.
package pebble

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"

	"pushlane/module"
)

// Store is the Pebble implementation of module.Store. Safe for concurrent use: every write goes
// through the writer goroutine; reads go to the database directly (Pebble's reads see every
// committed batch).
type Store struct {
	opts  module.StoreOptions
	db    *cpebble.DB
	now   func() time.Time
	epoch string

	ops        chan *op
	quit       chan struct{}
	writerDone chan struct{}

	marks  markQueue
	claims claims
	health health

	// closed is set by Close under dbMu; readers hold dbMu shared while they use db, so Close
	// never closes the database under a reader (Pebble panics on a closed database).
	dbMu     sync.RWMutex
	closed   atomic.Bool
	submitMu sync.RWMutex // held shared while sending to ops; Close takes it to stop senders
}

// Options tune Open beyond module.StoreOptions.
type Options struct {
	// Logger receives Pebble's own messages (flushes and compactions at debug level, errors);
	// nil: slog.Default().
	Logger *slog.Logger
}

// memTableSize is each memtable's size. Larger memtables flush less often; 64 MB holds about
// 400,000 messages of 100 bytes before a flush writes them to a sorted table.
const memTableSize = 64 << 20

// Open opens (creating it when absent) the Pebble database in the folder dir and starts the
// writer. Every commit is synced to disk before the writes it carries are answered.
func Open(dir string, opts module.StoreOptions, o Options) (*Store, error) {
	opts.Fill()
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	popts := &cpebble.Options{
		FormatMajorVersion: cpebble.FormatNewest,
		MemTableSize:       memTableSize,
		Logger:             pebbleLogger{o.Logger},
	}
	db, err := cpebble.Open(dir, popts)
	if err != nil {
		return nil, fmt.Errorf("pebble store: open %s: %w", dir, err)
	}
	s := &Store{
		opts:       opts,
		db:         db,
		now:        time.Now,
		ops:        make(chan *op, 4096),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		marks:      markQueue{limit: maxQueuedMarks},
		claims:     claims{held: make(map[idemID]struct{})},
	}
	last, err := s.loadMeta()
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("pebble store %s: %w", dir, err)
	}
	w := &writer{s: s, nextID: last, ceiling: last, users: map[string]userState{}}
	go w.run()
	return s, nil
}

var epochSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// loadMeta reads the epoch (creating it with the database) and the id counter: the greater of
// the newest id committed and the id ceiling.
func (s *Store) loadMeta() (uint64, error) {
	epoch, err := s.get(metaEpoch)
	if err != nil {
		return 0, fmt.Errorf("read epoch: %w", err)
	}
	if epoch == nil {
		var b [16]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
		epoch = []byte(base64.RawURLEncoding.EncodeToString(b[:]))
		if err := s.db.Set(metaEpoch, epoch, cpebble.Sync); err != nil {
			return 0, fmt.Errorf("create epoch: %w", err)
		}
	}
	if !epochSyntax.Match(epoch) {
		return 0, fmt.Errorf("epoch %q in the database is not 1-64 bytes of [A-Za-z0-9_-]", epoch)
	}
	s.epoch = string(epoch)
	var last uint64
	for _, key := range [][]byte{metaLastID, metaCeil} {
		v, err := s.get(key)
		if err != nil {
			return 0, fmt.Errorf("read the id counter: %w", err)
		}
		if v == nil {
			continue
		}
		id, n := binary.Uvarint(v)
		if n <= 0 {
			return 0, fmt.Errorf("read the id counter: %w", errCorrupt)
		}
		last = max(last, id)
	}
	return last, nil
}

// get returns a copy of key's value, nil when absent.
func (s *Store) get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, cpebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// reading runs fn with the database open, or returns ErrClosed.
func (s *Store) reading(fn func() error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.closed.Load() {
		return module.ErrClosed
	}
	return fn()
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
		return nil, fmt.Errorf("pebble store append: %w", err)
	}
	return o.msgs, nil
}

// Purge implements module.Store. The user's newest id is kept for Head.
func (s *Store) Purge(ctx context.Context, userID string) (int, error) {
	o := &op{kind: opPurge, userID: userID, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return 0, fmt.Errorf("pebble store purge: %w", err)
	}
	return o.n, nil
}

// Epoch implements module.Store: created with the database, kept in it.
func (s *Store) Epoch(context.Context) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("pebble store epoch: %w", module.ErrClosed)
	}
	return s.epoch, nil
}

// Close commits what is queued, stops the writer and closes the database.
func (s *Store) Close() error {
	s.submitMu.Lock()
	already := s.closed.Swap(true)
	s.submitMu.Unlock()
	if already {
		return nil
	}
	close(s.quit)
	<-s.writerDone
	s.dbMu.Lock() // waits for readers that started before closed was set
	defer s.dbMu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("pebble store close: %w", err)
	}
	return nil
}

// pebbleLogger sends Pebble's messages to slog: its routine ones (flushes, compactions) at debug
// level. Fatalf, which Pebble calls only for corruption it cannot go on with, panics: the
// process stops, the files stay as they are for an operator to inspect.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic(msg)
}
