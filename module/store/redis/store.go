// Package redis is the message store that many pushlane nodes share: each user's messages are a
// Redis stream, numbered by a per-user counter in the same Lua script that appends them (and,
// with the redis broker, PUBLISHes them), so ids, storage and live delivery order agree on every
// node. Ids are consecutive per user (1, 2, 3, ...), which lets a connection notice a message
// lost on the way and read it from the store (module.GapFiller).
//
// Concurrency: Store is safe for concurrent use. Appends and delivery marks go through one
// writer goroutine that sends everything queued meanwhile as one pipeline of EVALSHA calls (one
// script call per Append, so a multi-user publish is all-or-nothing), and calls OnCommit in
// commit order before it sends the next pipeline. Reads run on the caller's goroutine, one
// script call each. A sweeper goroutine removes expired messages. The go-redis client is the
// caller's: Close does not close it. The client must not retry commands (MaxRetries -1): a
// retried append would store one publish twice.
//
// Delivery marks: MarkDelivered raises a per-user cursor (atomically, in Lua; it never goes
// down) over every id marked right above it. A mark further up (another connection wrote a
// newer message first) waits in a small zset until the ids below it are marked or gone, so the
// pending queue is exactly "stored and never written", as with the other stores; in the usual
// in-order case the zset stays empty and the cursor alone is the queue's start.
//
// Retention: MAXLEN ~ maxPerUser trims each stream approximately, and reads only count the
// newest maxPerUser ids (ids are consecutive, so that window is exact); expired entries are
// hidden from reads and removed by the sweeper; a stream key expires on its own (PEXPIRE of its
// longest ttl plus a grace) when no node sweeps. The counter never expires, so ids never go back,
// even after a purge; run Redis with AOF and maxmemory-policy noeviction.
//
// Needs a standalone Redis 7 or later; not Redis Cluster (a multi-user append touches many users'
// keys in one script, which Redis Cluster refuses).
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
	"pushlane/module/internal/rediskeys"
)

// Options are the redis store's own settings, beside module.StoreOptions.
type Options struct {
	// KeyPrefix starts every key and channel (redis.keyPrefix); nodes of one cluster share it.
	KeyPrefix string
	// PublishLive makes the append script PUBLISH each message to its user's channel in the
	// same atomic step that numbers it: that is how the redis broker delivers. The store then
	// never calls StoreOptions.OnCommit, so nothing is delivered twice. Leave it false with the
	// local broker: OnCommit then delivers, in commit order.
	PublishLive bool
	// OpTimeout bounds one pipeline or script call; 0 = 5s.
	OpTimeout time.Duration
	Log       *slog.Logger
}

// Store is the Redis implementation of module.Store. See the package comment.
type Store struct {
	rdb     *goredis.Client
	keys    rediskeys.Keys
	opts    module.StoreOptions
	publish bool
	timeout time.Duration
	log     *slog.Logger
	scripts scripts
	now     func() time.Time

	ops        chan *op
	wake       chan struct{} // marks are waiting
	quit       chan struct{}
	quitOnce   sync.Once
	writerDone chan struct{}
	sweepDone  chan struct{}
	closed     atomic.Bool
	submitMu   sync.RWMutex // held shared while sending to ops; Close takes it to stop senders

	marksMu      sync.Mutex
	marks        map[string][]uint64
	marksQueued  int
	marksPending atomic.Int64 // marks not yet sent: pending reads wait for them
}

// maxQueuedMarks bounds memory while Redis is unreachable; a dropped mark only means a message
// may be sent again as pending (at least once), never that one is lost.
const maxQueuedMarks = 1 << 20

// New returns a store on rdb and starts its writer and sweeper; Close stops them. It does not
// need Redis to be up: every call reports its own failure.
func New(rdb *goredis.Client, opts module.StoreOptions, o Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redis store: no client")
	}
	opts.Fill()
	if o.OpTimeout <= 0 {
		o.OpTimeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if rdb.Options().MaxRetries > 0 {
		o.Log.Warn("redis store: the client retries failed commands; an append whose reply was lost could be stored twice (set MaxRetries to -1)")
	}
	s := &Store{
		rdb:        rdb,
		keys:       rediskeys.New(o.KeyPrefix),
		opts:       opts,
		publish:    o.PublishLive,
		timeout:    o.OpTimeout,
		log:        o.Log,
		scripts:    newScripts(),
		now:        time.Now,
		ops:        make(chan *op, 4096),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		sweepDone:  make(chan struct{}),
		marks:      make(map[string][]uint64),
	}
	go s.runWriter()
	go s.runSweeper()
	return s, nil
}

// ConsecutiveIDs implements module.GapFiller: each user's ids come from its own INCR counter.
func (s *Store) ConsecutiveIDs() bool { return true }

// userKeys are the four keys of one user, in the order the scripts take them.
func (s *Store) userKeys(userID string) []string {
	return []string{s.keys.Stream(userID), s.keys.Counter(userID), s.keys.Cursor(userID), s.keys.Delivered(userID)}
}

func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// submit hands an op to the writer and waits for it. The wait does not end with ctx: once queued,
// an op is committed or failed by the writer, and the caller must know which.
func (s *Store) submit(ctx context.Context, o *op) error {
	s.submitMu.RLock()
	if s.closed.Load() {
		s.submitMu.RUnlock()
		return module.ErrClosed
	}
	select {
	case s.ops <- o:
		s.submitMu.RUnlock()
	case <-ctx.Done():
		s.submitMu.RUnlock()
		return ctx.Err()
	}
	<-o.done
	return o.err
}

// Append implements module.Store.
func (s *Store) Append(ctx context.Context, drafts []module.Draft) ([]module.Message, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("redis store append: %w", module.ErrClosed)
	}
	if len(drafts) == 0 {
		return []module.Message{}, nil
	}
	o := &op{kind: opAppend, drafts: drafts, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return nil, fmt.Errorf("redis store append: %w", err)
	}
	return o.msgs, nil
}

// MarkDelivered implements module.Store: the marks go out with the writer's next pipeline.
func (s *Store) MarkDelivered(userID string, ids []uint64) {
	if len(ids) == 0 || s.closed.Load() {
		return
	}
	s.marksMu.Lock()
	if s.marksQueued+len(ids) <= maxQueuedMarks {
		s.marks[userID] = append(s.marks[userID], ids...)
		s.marksQueued += len(ids)
		s.marksPending.Add(int64(len(ids)))
	}
	s.marksMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Store) takeMarks() (map[string][]uint64, int) {
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	m, n := s.marks, s.marksQueued
	if n == 0 {
		return nil, 0
	}
	s.marks = make(map[string][]uint64)
	s.marksQueued = 0
	return m, n
}

// flushMarks waits until every mark made so far has been sent.
func (s *Store) flushMarks(ctx context.Context) error {
	if s.marksPending.Load() == 0 {
		return nil
	}
	return s.submit(ctx, &op{kind: opBarrier, done: make(chan struct{})})
}

// Backlog implements module.Store.
func (s *Store) Backlog(ctx context.Context, userID string, q module.BacklogQuery) ([]module.Message, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("redis store backlog: %w", module.ErrClosed)
	}
	if q.Pending {
		if err := s.flushMarks(ctx); err != nil {
			return nil, fmt.Errorf("redis store backlog: %w", err)
		}
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	pending := "0"
	if q.Pending {
		pending = "1"
	}
	start := time.Now()
	res, err := s.scripts.backlog.Run(ctx, s.rdb, s.userKeys(userID),
		q.After, q.Since, pending, max(q.Limit, 0), s.now().UnixMilli(), s.opts.MaxPerUser).StringSlice()
	s.opts.Metrics.StoreLatency.WithLabelValues("backlog").Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("redis store backlog of %s: %w", userID, err)
	}
	if len(res)%4 != 0 {
		return nil, fmt.Errorf("redis store backlog of %s: reply of %d fields", userID, len(res))
	}
	out := make([]module.Message, 0, len(res)/4)
	for i := 0; i < len(res); i += 4 {
		m, err := parseEntry(userID, res[i], res[i+1], res[i+2], res[i+3])
		if err != nil {
			return nil, fmt.Errorf("redis store backlog of %s: %w", userID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// parseEntry builds a message from a stream entry id and its fields.
func parseEntry(userID, sid, created, expires, data string) (module.Message, error) {
	idText, _, _ := strings.Cut(sid, "-")
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return module.Message{}, fmt.Errorf("entry id %q: %w", sid, err)
	}
	c, err := strconv.ParseInt(created, 10, 64)
	if err != nil {
		return module.Message{}, fmt.Errorf("entry %s createdAt %q: %w", sid, created, err)
	}
	e, err := strconv.ParseInt(expires, 10, 64)
	if err != nil {
		return module.Message{}, fmt.Errorf("entry %s expiresAt %q: %w", sid, expires, err)
	}
	return module.Message{ID: id, UserID: userID, Data: []byte(data), CreatedAt: time.UnixMilli(c), ExpiresAt: time.UnixMilli(e)}, nil
}

// LastID implements module.Store: the user's counter.
func (s *Store) LastID(ctx context.Context, userID string) (uint64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("redis store last id: %w", module.ErrClosed)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	n, err := s.rdb.Get(ctx, s.keys.Counter(userID)).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis store last id of %s: %w", userID, err)
	}
	return n, nil
}

// Stats implements module.Store.
func (s *Store) Stats(ctx context.Context, userID string) (module.UserStats, error) {
	if s.closed.Load() {
		return module.UserStats{}, fmt.Errorf("redis store stats: %w", module.ErrClosed)
	}
	if err := s.flushMarks(ctx); err != nil {
		return module.UserStats{}, fmt.Errorf("redis store stats: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.scripts.stats.Run(ctx, s.rdb, s.userKeys(userID), s.now().UnixMilli(), s.opts.MaxPerUser).Int64Slice()
	if err != nil {
		return module.UserStats{}, fmt.Errorf("redis store stats of %s: %w", userID, err)
	}
	if len(res) != 2 {
		return module.UserStats{}, fmt.Errorf("redis store stats of %s: reply of %d fields", userID, len(res))
	}
	return module.UserStats{Stored: int(res[0]), Pending: int(res[1])}, nil
}

// Purge implements module.Store. The counter stays, so later ids still increase.
func (s *Store) Purge(ctx context.Context, userID string) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("redis store purge: %w", module.ErrClosed)
	}
	// Marks queued for the purged messages would only recreate the delivery keys.
	if err := s.flushMarks(ctx); err != nil {
		return 0, fmt.Errorf("redis store purge: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	keys := append(s.userKeys(userID), s.keys.Expiry())
	n, err := s.scripts.purge.Run(ctx, s.rdb, keys, s.now().UnixMilli(), s.opts.MaxPerUser, userID).Int()
	if err != nil {
		return 0, fmt.Errorf("redis store purge of %s: %w", userID, err)
	}
	return n, nil
}

// Ping implements module.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return module.ErrClosed
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis store ping: %w", err)
	}
	return nil
}

// Close sends what is queued, stops the writer and the sweeper. It does not close the client.
func (s *Store) Close() error {
	s.submitMu.Lock()
	already := s.closed.Swap(true)
	s.submitMu.Unlock()
	if already {
		<-s.writerDone
		<-s.sweepDone
		return nil
	}
	s.quitOnce.Do(func() { close(s.quit) })
	<-s.writerDone
	<-s.sweepDone
	return nil
}
