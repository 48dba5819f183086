// Package redis is the message store that many pushlane nodes share. All of a user's state is
// one Redis list (see rediskeys.Keys.User): its last id, its queue cursor, and each stored
// message's status and data. Ids come from the list's meta element, taken in the same Lua
// script that appends the message (and, with the redis broker, PUBLISHes it), so ids, storage
// and live delivery order agree on every node. Ids are consecutive per user while the user has
// stored messages (1, 2, 3, ...), which lets a connection notice a message lost on the way and
// read it from the store (module.GapFiller); a user whose last message is gone loses its list,
// and its next id starts above a global floor (see Head).
//
// Concurrency: Store is safe for concurrent use. Appends, status marks and health probes go
// through one writer goroutine that sends everything queued meanwhile as one pipeline of EVALSHA
// calls (one script call per Append, so a multi-user publish is all-or-nothing; one per user
// for the marks), and calls OnCommit in commit order before it sends the next pipeline. Reads
// run on the caller's goroutine, one script call each. A sweeper goroutine removes expired
// messages. The go-redis client is the caller's: Close does not close it. The client must not
// retry commands (MaxRetries -1): a retried append would store one publish twice.
//
// Statuses: each message's status element holds whether it left the unread queue and when it
// was sent, acknowledged and pushed; MarkWritten, Ack and MarkPushed queue marks that go out
// with the writer's next pipeline (one script call per user, never one round trip per mark). A
// cursor in the meta element moves over the ids that left the queue, so a pending read starts
// there.
//
// Retention: a message is kept until it expires and among the newest maxPerUser of its user;
// reads hide expired messages, the append script trims beyond maxPerUser, and the sweeper pops
// the expired head of each list (every node sweeps; each step is atomic per user). There is no
// Redis-side expiry of a user's list: only the scripts delete it, after raising the floor, so
// ids never go back. Run Redis with AOF and maxmemory-policy noeviction (docs/redis.md).
//
// Needs a standalone Redis 7 or later; not Redis Cluster (a multi-user append touches many users'
// keys in one script, which Redis Cluster refuses).
package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
	// ClaimLease bounds how long an Idempotency-Key claim outlives a holder that died (its
	// retries answer 409 meanwhile); 0 = 30s. A live holder releases it with Finish or Abandon.
	ClaimLease time.Duration
	Log        *slog.Logger
}

// Store is the Redis implementation of module.Store. See the package comment.
type Store struct {
	rdb     *goredis.Client
	keys    rediskeys.Keys
	opts    module.StoreOptions
	publish bool
	timeout time.Duration
	lease   time.Duration
	log     *slog.Logger
	scripts scripts
	push    pushScripts // Web Push (webpush.go)
	now     func() time.Time

	ops        chan *op
	wake       chan struct{} // marks are waiting
	quit       chan struct{}
	quitOnce   sync.Once
	writerDone chan struct{}
	sweepDone  chan struct{}
	closed     atomic.Bool
	submitMu   sync.RWMutex // held shared while sending to ops; Close takes it to stop senders

	marks marks

	// commitErr is the error of the writer's last commit (append or probe), nil after a success.
	// failBytes is the size of the largest call of that failed commit: the probe writes as much.
	commitMu  sync.Mutex
	commitErr error
	failBytes int

	probeMu sync.Mutex
	probe   *healthProbe // the write probe in flight, shared by concurrent Health calls

	claimsMu sync.Mutex
	claims   map[string]string // idempotency claim key -> our token
}

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
	if o.ClaimLease <= 0 {
		o.ClaimLease = 30 * time.Second
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
		lease:      o.ClaimLease,
		log:        o.Log,
		scripts:    newScripts(),
		push:       newPushScripts(),
		now:        time.Now,
		ops:        make(chan *op, 4096),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		sweepDone:  make(chan struct{}),
		marks:      newMarks(),
		claims:     make(map[string]string),
	}
	go s.runWriter()
	go s.runSweeper()
	return s, nil
}

// ConsecutiveIDs implements module.GapFiller: while a user has stored messages its ids are
// consecutive. After its list was deleted (everything expired or purged) the next id starts
// above the global floor; a connection then sees a jump that its gap read finds empty.
func (s *Store) ConsecutiveIDs() bool { return true }

func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// newEpoch returns a fresh epoch candidate: 22 characters of base64url. Each script that may
// create the epoch gets a new one, so a Redis flushed under a running node gets a new epoch.
func newEpoch() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
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

// flushMarks waits until every mark made so far has been sent.
func (s *Store) flushMarks(ctx context.Context) error {
	if s.marks.pending.Load() == 0 {
		return nil
	}
	return s.submit(ctx, &op{kind: opBarrier, done: make(chan struct{})})
}

// entry is one message as the read scripts return it: id, status, data.
type entry struct {
	id     uint64
	status status
	data   string
}

// parseEntries reads the id, status, data triples of a read script's reply.
func parseEntries(res []string) ([]entry, error) {
	if len(res)%3 != 0 {
		return nil, fmt.Errorf("reply of %d fields", len(res))
	}
	out := make([]entry, 0, len(res)/3)
	for i := 0; i < len(res); i += 3 {
		id, err := strconv.ParseUint(res[i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("id %q: %w", res[i], err)
		}
		st, err := parseStatus(res[i+1])
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", id, err)
		}
		out = append(out, entry{id: id, status: st, data: res[i+2]})
	}
	return out, nil
}

func (e entry) message(userID string) module.Message {
	return module.Message{ID: e.id, UserID: userID, Data: []byte(e.data), CreatedAt: e.status.created, ExpiresAt: e.status.expires}
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
	res, err := s.scripts.backlog.Run(ctx, s.rdb, []string{s.keys.User(userID)},
		q.After, q.Since, pending, max(q.Limit, 0), max(q.MaxBytes, 0), s.now().UnixMilli()).StringSlice()
	s.opts.Metrics.StoreLatency.WithLabelValues("backlog").Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("redis store backlog of %s: %w", userID, err)
	}
	entries, err := parseEntries(res)
	if err != nil {
		return nil, fmt.Errorf("redis store backlog of %s: %w", userID, err)
	}
	out := make([]module.Message, len(entries))
	for i, e := range entries {
		out[i] = e.message(userID)
	}
	return out, nil
}

// Head implements module.Store: the epoch and the user's last id in one script call. The epoch
// is read (or, on a Redis that holds no data under the prefix, created) in the same step, so a
// node never reports an epoch older than the ids beside it. A user without a list reports the
// floor: every id it ever had is at or below it, and its next id is above it.
func (s *Store) Head(ctx context.Context, userID string) (module.Head, error) {
	if s.closed.Load() {
		return module.Head{}, fmt.Errorf("redis store head: %w", module.ErrClosed)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.scripts.head.Run(ctx, s.rdb, []string{s.keys.User(userID), s.keys.Epoch(), s.keys.Floor()}, newEpoch()).Slice()
	if err != nil {
		return module.Head{}, fmt.Errorf("redis store head of %s: %w", userID, err)
	}
	if len(res) != 2 {
		return module.Head{}, fmt.Errorf("redis store head of %s: reply of %d fields", userID, len(res))
	}
	epoch, _ := res[0].(string)
	last, ok := res[1].(int64)
	if epoch == "" || !ok || last < 0 {
		return module.Head{}, fmt.Errorf("redis store head of %s: malformed reply %v", userID, res)
	}
	return module.Head{Epoch: epoch, LastID: uint64(last)}, nil
}

// Epoch implements module.Store.
func (s *Store) Epoch(ctx context.Context) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("redis store epoch: %w", module.ErrClosed)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	e, err := s.scripts.epoch.Run(ctx, s.rdb, []string{s.keys.Epoch()}, newEpoch()).Text()
	if err != nil {
		return "", fmt.Errorf("redis store epoch: %w", err)
	}
	return e, nil
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
	res, err := s.scripts.stats.Run(ctx, s.rdb, []string{s.keys.User(userID)}, s.now().UnixMilli()).Int64Slice()
	if err != nil {
		return module.UserStats{}, fmt.Errorf("redis store stats of %s: %w", userID, err)
	}
	if len(res) != 2 {
		return module.UserStats{}, fmt.Errorf("redis store stats of %s: reply of %d fields", userID, len(res))
	}
	return module.UserStats{Stored: int(res[0]), Pending: int(res[1])}, nil
}

// Status implements module.Store.
func (s *Store) Status(ctx context.Context, userID string, id uint64) (module.MessageStatus, error) {
	if s.closed.Load() {
		return module.MessageStatus{}, fmt.Errorf("redis store status: %w", module.ErrClosed)
	}
	if err := s.flushMarks(ctx); err != nil {
		return module.MessageStatus{}, fmt.Errorf("redis store status: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.scripts.status.Run(ctx, s.rdb, []string{s.keys.User(userID)}, id, s.now().UnixMilli()).StringSlice()
	if err != nil {
		return module.MessageStatus{}, fmt.Errorf("redis store status of %s/%d: %w", userID, id, err)
	}
	if len(res) == 0 {
		return module.MessageStatus{}, fmt.Errorf("redis store status of %s/%d: %w", userID, id, module.ErrNotFound)
	}
	if len(res) != 2 {
		return module.MessageStatus{}, fmt.Errorf("redis store status of %s/%d: reply of %d fields", userID, id, len(res))
	}
	st, err := parseStatus(res[0])
	if err != nil {
		return module.MessageStatus{}, fmt.Errorf("redis store status of %s/%d: %w", userID, id, err)
	}
	return entry{id: id, status: st, data: res[1]}.messageStatus(userID), nil
}

// Statuses implements module.Store.
func (s *Store) Statuses(ctx context.Context, userID string, since uint64, limit int) ([]module.MessageStatus, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("redis store statuses: %w", module.ErrClosed)
	}
	if limit <= 0 {
		return []module.MessageStatus{}, nil
	}
	if err := s.flushMarks(ctx); err != nil {
		return nil, fmt.Errorf("redis store statuses: %w", err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	res, err := s.scripts.statuses.Run(ctx, s.rdb, []string{s.keys.User(userID)}, since, limit, s.now().UnixMilli()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis store statuses of %s: %w", userID, err)
	}
	entries, err := parseEntries(res)
	if err != nil {
		return nil, fmt.Errorf("redis store statuses of %s: %w", userID, err)
	}
	out := make([]module.MessageStatus, len(entries))
	for i, e := range entries {
		out[i] = e.messageStatus(userID)
	}
	return out, nil
}

// Purge implements module.Store. The user's list goes; the floor keeps its ids, so later ids
// still increase.
func (s *Store) Purge(ctx context.Context, userID string) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("redis store purge: %w", module.ErrClosed)
	}
	// Marks still queued for the purged messages find nothing later: the user's next ids start
	// above the floor, which is at least the purged ones.
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	keys := []string{s.keys.User(userID), s.keys.Expiry(), s.keys.Floor()}
	n, err := s.scripts.purge.Run(ctx, s.rdb, keys, s.now().UnixMilli(), userID).Int()
	if err != nil {
		return 0, fmt.Errorf("redis store purge of %s: %w", userID, err)
	}
	return n, nil
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

// status is a parsed status element (rediskeys.Keys.User).
type status struct {
	created, expires    time.Time
	dequeued            bool
	sent, acked, pushed time.Time
}

// parseStatus reads "C,T[,D[,S[,A[,P]]]]".
func parseStatus(s string) (status, error) {
	f := strings.Split(s, ",")
	if len(f) < 2 || len(f) > 6 {
		return status{}, fmt.Errorf("status %q", s)
	}
	for len(f) < 6 {
		f = append(f, "")
	}
	c, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return status{}, fmt.Errorf("status %q: created: %w", s, err)
	}
	ttl, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return status{}, fmt.Errorf("status %q: ttl: %w", s, err)
	}
	st := status{created: time.UnixMilli(c), expires: time.UnixMilli(c + ttl), dequeued: f[2] == "1"}
	for i, dst := range []*time.Time{&st.sent, &st.acked, &st.pushed} {
		if f[3+i] == "" {
			continue
		}
		d, err := strconv.ParseInt(f[3+i], 10, 64)
		if err != nil {
			return status{}, fmt.Errorf("status %q: field %d: %w", s, 4+i, err)
		}
		*dst = time.UnixMilli(c + d)
	}
	return st, nil
}

func (e entry) messageStatus(userID string) module.MessageStatus {
	return module.MessageStatus{Message: e.message(userID), SentAt: e.status.sent, AckedAt: e.status.acked, PushedAt: e.status.pushed}
}
