// Package storetest is the conformance suite every module.Store driver must pass. A driver's test
// calls Run with a function that opens a fresh, empty store for the given options:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, opts module.StoreOptions) module.Store {
//			return memory.New(opts)
//		})
//	}
//
// The suite closes every store it opens (Close must be idempotent, so the opener may close it too).
// Every subtest opens its own store, so they run in parallel.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"pushlane/module"
)

// Opener opens a fresh, empty store with opts.
type Opener = func(t *testing.T, opts module.StoreOptions) module.Store

// longTTL is the ttl of messages that must not expire during a test.
const longTTL = time.Hour

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open func(t *testing.T, opts module.StoreOptions) module.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"AppendAssignsIncreasingIDs", testAppendIncreasing},
		{"AppendInterleavedUsers", testAppendInterleaved},
		{"AppendBatchOfManyUsers", testAppendBatchManyUsers},
		{"AppendEmpty", testAppendEmpty},
		{"IDsIncreaseAfterPurge", testIDsIncreaseAfterPurge},
		{"OnCommitSequential", testOnCommitSequential},
		{"OnCommitConcurrent", testOnCommitConcurrent},
		{"BacklogSince", testBacklogSince},
		{"BacklogPending", testBacklogPending},
		{"BacklogPendingAndSince", testBacklogPendingAndSince},
		{"BacklogAfterPaging", testBacklogAfterPaging},
		{"BacklogMaxBytes", testBacklogMaxBytes},
		{"StatusTransitions", testStatusTransitions},
		{"StatusNotFound", testStatusNotFound},
		{"MarksConcurrent", testMarksConcurrent},
		{"MarkPushed", testMarkPushed},
		{"IdempotencyFlow", testIdempotencyFlow},
		{"IdempotencyAppendOnceTwice", testIdempotencyAppendOnceTwice},
		{"IdempotencyAbandon", testIdempotencyAbandon},
		{"IdempotencyExpiry", testIdempotencyExpiry},
		{"IdempotencyScopes", testIdempotencyScopes},
		{"IdempotencyConcurrentBegin", testIdempotencyConcurrentBegin},
		{"IdempotencyManyUsers", testIdempotencyManyUsers},
		{"MarkWritten", testMarkWritten},
		{"TTLExpiry", testTTLExpiry},
		{"SweepRemovesExpired", testSweepRemovesExpired},
		{"ExpiryCountsOnlyExpired", testExpiryCountsOnlyExpired},
		{"MaxPerUser", testMaxPerUser},
		{"MaxPerUserBatch", testMaxPerUserBatch},
		{"Stats", testStats},
		{"Purge", testPurge},
		{"HeadLastID", testLastID},
		{"HeadLastIDConcurrent", testLastIDConcurrent},
		{"HeadCoversOnCommit", testHeadCoversOnCommit},
		{"HeadPerUser", testHeadPerUser},
		{"HeadNeverGoesDown", testHeadNeverGoesDown},
		{"Epoch", testEpoch},
		{"Health", testHealth},
		{"Close", testClose},
		{"CloseWhileAppending", testCloseWhileAppending},
		{"ConcurrentReadersAndMarkers", testConcurrentMixed},
		{"DataRoundTrip", testDataRoundTrip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

// ---- helpers ----

// recorder collects every OnCommit call.
type recorder struct {
	mu       sync.Mutex
	calls    [][]module.Message
	seen     map[key]int
	inFlight atomic.Int32
	overlap  atomic.Bool // the hook was entered while another call was running
}

type key struct {
	user string
	id   uint64
}

func newRecorder() *recorder { return &recorder{seen: map[key]int{}} }

func (r *recorder) hook(msgs []module.Message) {
	if r.inFlight.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.inFlight.Add(-1)
	cp := make([]module.Message, len(msgs))
	for i, m := range msgs {
		m.Data = bytes.Clone(m.Data)
		cp[i] = m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(cp) > 0 {
		r.calls = append(r.calls, cp)
	}
	for _, m := range cp {
		r.seen[key{m.UserID, m.ID}]++
	}
}

// all returns every hooked message in the order the hook received them.
func (r *recorder) all() []module.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []module.Message
	for _, c := range r.calls {
		out = append(out, c...)
	}
	return out
}

func (r *recorder) count(k key) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[k]
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// env is one opened store with the instruments the suite gave it.
type env struct {
	t       *testing.T
	s       module.Store
	rec     *recorder
	metrics *module.Metrics
	ctx     context.Context
}

// openEnv opens a store with opts, a recorder as OnCommit and fresh metrics. An OnCommit in opts
// is called after the recorder, with the same messages.
func openEnv(t *testing.T, open Opener, opts module.StoreOptions) *env {
	t.Helper()
	rec := newRecorder()
	if extra := opts.OnCommit; extra != nil {
		opts.OnCommit = func(msgs []module.Message) {
			rec.hook(msgs)
			extra(msgs)
		}
	} else {
		opts.OnCommit = rec.hook
	}
	opts.Metrics = module.NewMetrics(nil)
	s := open(t, opts)
	if s == nil {
		t.Fatal("opener returned a nil store")
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, s: s, rec: rec, metrics: opts.Metrics, ctx: ctx}
}

func draft(user string, data string) module.Draft {
	return module.Draft{UserID: user, Data: []byte(data), TTL: longTTL}
}

func (e *env) append(drafts ...module.Draft) []module.Message {
	e.t.Helper()
	msgs, err := e.s.Append(e.ctx, drafts)
	if err != nil {
		e.t.Fatalf("Append(%d drafts): %v", len(drafts), err)
	}
	if len(msgs) != len(drafts) {
		e.t.Fatalf("Append(%d drafts) returned %d messages", len(drafts), len(msgs))
	}
	for i, m := range msgs {
		if m.UserID != drafts[i].UserID {
			e.t.Fatalf("Append: message %d has userId %q, draft had %q", i, m.UserID, drafts[i].UserID)
		}
		if !bytes.Equal(m.Data, drafts[i].Data) {
			e.t.Fatalf("Append: message %d has data %q, draft had %q", i, m.Data, drafts[i].Data)
		}
		if m.ID == 0 {
			e.t.Fatalf("Append: message %d got id 0", i)
		}
	}
	return msgs
}

// appendN appends n single-message batches for user, data "n0".."n<n-1>" (JSON numbers).
func (e *env) appendN(user string, n int) []module.Message {
	e.t.Helper()
	out := make([]module.Message, 0, n)
	for i := range n {
		out = append(out, e.append(draft(user, fmt.Sprint(i)))...)
	}
	return out
}

func (e *env) backlog(user string, q module.BacklogQuery) []module.Message {
	e.t.Helper()
	msgs, err := e.s.Backlog(e.ctx, user, q)
	if err != nil {
		e.t.Fatalf("Backlog(%q, %+v): %v", user, q, err)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].ID <= msgs[i-1].ID {
			e.t.Fatalf("Backlog(%q, %+v): ids not increasing: %v", user, q, ids(msgs))
		}
	}
	for _, m := range msgs {
		if m.UserID != user {
			e.t.Fatalf("Backlog(%q, %+v) returned a message of user %q", user, q, m.UserID)
		}
	}
	return msgs
}

// pq selects the user's pending queue only, as a connection without since asks for it: Since is the
// last id (nothing is above it), Pending adds the undelivered ones at or below it.
func (e *env) pq(user string) module.BacklogQuery {
	e.t.Helper()
	return module.BacklogQuery{Since: e.lastID(user), Pending: true}
}

func (e *env) pqLimit(user string, limit int) module.BacklogQuery {
	e.t.Helper()
	q := e.pq(user)
	q.Limit = limit
	return q
}

func (e *env) stats(user string) module.UserStats {
	e.t.Helper()
	st, err := e.s.Stats(e.ctx, user)
	if err != nil {
		e.t.Fatalf("Stats(%q): %v", user, err)
	}
	return st
}

func (e *env) lastID(user string) uint64 {
	e.t.Helper()
	h, err := e.s.Head(e.ctx, user)
	if err != nil {
		e.t.Fatalf("Head(%q): %v", user, err)
	}
	return h.LastID
}

func (e *env) purge(user string) int {
	e.t.Helper()
	n, err := e.s.Purge(e.ctx, user)
	if err != nil {
		e.t.Fatalf("Purge(%q): %v", user, err)
	}
	return n
}

// expectBacklog checks that the query returns exactly want (by id), with want's data.
func (e *env) expectBacklog(user string, q module.BacklogQuery, want []module.Message) {
	e.t.Helper()
	got := e.backlog(user, q)
	if !slices.Equal(ids(got), ids(want)) {
		e.t.Fatalf("Backlog(%q, %+v) = ids %v, want %v", user, q, ids(got), ids(want))
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, want[i].Data) {
			e.t.Fatalf("Backlog(%q, %+v): id %d has data %q, want %q", user, q, got[i].ID, got[i].Data, want[i].Data)
		}
	}
}

func (e *env) expectStats(user string, want module.UserStats) {
	e.t.Helper()
	if got := e.stats(user); got != want {
		e.t.Fatalf("Stats(%q) = %+v, want %+v", user, got, want)
	}
}

func ids(msgs []module.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func pick(msgs []module.Message, idx ...int) []module.Message {
	out := make([]module.Message, len(idx))
	for i, j := range idx {
		out[i] = msgs[j]
	}
	return out
}

func idsOf(msgs []module.Message, idx ...int) []uint64 { return ids(pick(msgs, idx...)) }

func checkIncreasing(t *testing.T, what string, msgs []module.Message) {
	t.Helper()
	for i := 1; i < len(msgs); i++ {
		if msgs[i].ID <= msgs[i-1].ID {
			t.Fatalf("%s: id %d at %d is not greater than id %d before it", what, msgs[i].ID, i, msgs[i-1].ID)
		}
	}
}

// perUser groups messages by user, keeping their order.
func perUser(msgs []module.Message) map[string][]module.Message {
	out := map[string][]module.Message{}
	for _, m := range msgs {
		out[m.UserID] = append(out[m.UserID], m)
	}
	return out
}

// consecutivePerUser reports whether the store numbers each user's messages on its own (1, 2, 3...);
// such stores give no order between users, so only the per-user order is checked.
func consecutivePerUser(s module.Store) bool {
	g, ok := s.(module.GapFiller)
	return ok && g.ConsecutiveIDs()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitGroup waits for wg with a deadline, so a hang fails the test instead of the whole run.
func waitGroup(t *testing.T, wg *sync.WaitGroup, timeout time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

func counterValue(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// ---- Append ----

func testAppendIncreasing(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var prev uint64
	for i := range 30 {
		before := time.Now()
		ttl := time.Duration(i+1) * time.Minute
		msgs := e.append(module.Draft{UserID: "u1", Data: []byte(fmt.Sprintf(`{"n":%d}`, i)), TTL: ttl})
		after := time.Now()
		m := msgs[0]
		if m.ID <= prev {
			t.Fatalf("append %d: id %d is not greater than the previous %d", i, m.ID, prev)
		}
		prev = m.ID
		// CreatedAt is "now", at millisecond precision at least.
		if m.CreatedAt.Before(before.Add(-time.Millisecond)) || m.CreatedAt.After(after.Add(time.Millisecond)) {
			t.Fatalf("append %d: CreatedAt %v outside [%v, %v]", i, m.CreatedAt, before, after)
		}
		if d := m.ExpiresAt.Sub(m.CreatedAt) - ttl; d < -time.Second || d > time.Second {
			t.Fatalf("append %d: ExpiresAt-CreatedAt = %v, want the ttl %v", i, m.ExpiresAt.Sub(m.CreatedAt), ttl)
		}
	}
	// The stored copy carries the same id, data, and timestamps (to the millisecond).
	stored := e.backlog("u1", module.BacklogQuery{})
	if len(stored) != 30 || stored[29].ID != prev {
		t.Fatalf("Backlog returned %d messages (last id %v), want 30 ending with %d", len(stored), ids(stored), prev)
	}
	again := e.backlog("u1", module.BacklogQuery{After: stored[28].ID})
	if len(again) != 1 {
		t.Fatalf("Backlog after the 29th: %v", ids(again))
	}
	m := again[0]
	if m.CreatedAt.UnixMilli() != stored[29].CreatedAt.UnixMilli() || m.ExpiresAt.UnixMilli() != stored[29].ExpiresAt.UnixMilli() {
		t.Fatalf("timestamps differ between reads: %v/%v vs %v/%v", m.CreatedAt, m.ExpiresAt, stored[29].CreatedAt, stored[29].ExpiresAt)
	}
}

func testAppendInterleaved(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	users := []string{"alice", "bob", "carol@example.com", "d:e-f_g.h"}
	var all []module.Message
	for i := range 60 {
		u := users[(i*7+i/5)%len(users)]
		all = append(all, e.append(draft(u, fmt.Sprintf(`{"i":%d}`, i)))...)
	}
	if !consecutivePerUser(e.s) {
		checkIncreasing(t, "ids across users", all)
	}
	for u, want := range perUser(all) {
		checkIncreasing(t, "ids of "+u, want)
		e.expectBacklog(u, module.BacklogQuery{}, want)
		e.expectStats(u, module.UserStats{Stored: len(want), Pending: len(want)})
	}
}

func testAppendBatchManyUsers(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	const users, rounds = 150, 3
	var drafts []module.Draft
	for r := range rounds {
		for u := range users {
			// Mix the user order between rounds, so one user's drafts are far apart.
			uu := (u*37 + r*11) % users
			drafts = append(drafts, draft(fmt.Sprintf("user-%03d", uu), fmt.Sprintf(`{"u":%d,"r":%d}`, uu, r)))
		}
	}
	first := e.append(drafts...)
	byUser := perUser(first)
	if len(byUser) != users {
		t.Fatalf("batch covered %d users, want %d", len(byUser), users)
	}
	for u, msgs := range byUser {
		if len(msgs) != rounds {
			t.Fatalf("user %s got %d messages, want %d", u, len(msgs), rounds)
		}
		// Within one batch, a user's drafts get increasing ids in draft order.
		checkIncreasing(t, "batch ids of "+u, msgs)
		e.expectBacklog(u, module.BacklogQuery{}, msgs)
	}
	seen := map[key]bool{}
	for _, m := range first {
		k := key{m.UserID, m.ID}
		if seen[k] {
			t.Fatalf("id %d given twice to %s", m.ID, m.UserID)
		}
		seen[k] = true
	}
	// A second batch continues above the first, for every user.
	second := e.append(drafts...)
	for u, msgs := range perUser(second) {
		prev := byUser[u]
		if msgs[0].ID <= prev[len(prev)-1].ID {
			t.Fatalf("user %s: second batch starts at id %d, not above %d", u, msgs[0].ID, prev[len(prev)-1].ID)
		}
		e.expectBacklog(u, module.BacklogQuery{}, append(slices.Clone(prev), msgs...))
	}
}

func testAppendEmpty(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	a := e.append(draft("u", `1`))
	msgs, err := e.s.Append(e.ctx, nil)
	if err != nil {
		t.Fatalf("Append(nil): %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Append(nil) returned %d messages", len(msgs))
	}
	b := e.append(draft("u", `2`))
	if b[0].ID <= a[0].ID {
		t.Fatalf("ids after an empty append: %d then %d", a[0].ID, b[0].ID)
	}
	e.expectBacklog("u", module.BacklogQuery{}, append(a, b...))
}

func testIDsIncreaseAfterPurge(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	before := e.appendN("u", 5)
	other := e.appendN("v", 2)
	if n := e.purge("u"); n != 5 {
		t.Fatalf("Purge = %d, want 5", n)
	}
	e.expectBacklog("u", module.BacklogQuery{}, nil)
	if last := e.lastID("u"); last < before[4].ID {
		t.Fatalf("LastID after purge = %d, below the purged id %d", last, before[4].ID)
	}
	after := e.appendN("u", 3)
	if after[0].ID <= before[4].ID {
		t.Fatalf("id after purge %d is not above the purged %d", after[0].ID, before[4].ID)
	}
	checkIncreasing(t, "ids after purge", after)
	e.expectBacklog("u", module.BacklogQuery{}, after)
	e.expectBacklog("v", module.BacklogQuery{}, other)
	// A client that saw the purged ids resumes with since: it gets exactly the new ones.
	e.expectBacklog("u", module.BacklogQuery{After: before[4].ID, Since: before[4].ID}, after)
}

// ---- OnCommit ----

func testOnCommitSequential(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var appended []module.Message
	for i := range 20 {
		var drafts []module.Draft
		for j := range 1 + i%4 {
			drafts = append(drafts, draft(fmt.Sprintf("u%d", (i+j)%3), fmt.Sprintf(`[%d,%d]`, i, j)))
		}
		msgs := e.append(drafts...)
		for _, m := range msgs {
			// The hook has seen the messages by the time Append returns: delivery is not
			// left to a later commit.
			if n := e.rec.count(key{m.UserID, m.ID}); n != 1 {
				t.Fatalf("append %d: hook saw message %s/%d %d times when Append returned, want 1", i, m.UserID, m.ID, n)
			}
		}
		appended = append(appended, msgs...)
	}
	hooked := e.rec.all()
	if len(hooked) != len(appended) {
		t.Fatalf("hook received %d messages, Append returned %d", len(hooked), len(appended))
	}
	for i := range hooked {
		h, a := hooked[i], appended[i]
		if h.ID != a.ID || h.UserID != a.UserID || !bytes.Equal(h.Data, a.Data) {
			t.Fatalf("hook message %d = %s/%d %s, Append returned %s/%d %s", i, h.UserID, h.ID, h.Data, a.UserID, a.ID, a.Data)
		}
	}
	if !consecutivePerUser(e.s) {
		checkIncreasing(t, "hook order", hooked)
	}
	if e.rec.overlap.Load() {
		t.Fatal("the hook ran on two goroutines at once")
	}
}

func testOnCommitConcurrent(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	const appenders, perAppender = 16, 40
	users := []string{"a", "b", "c", "d", "e"}
	var (
		mu       sync.Mutex
		appended []module.Message
		wg       sync.WaitGroup
		start    = make(chan struct{})
		errs     = make(chan error, appenders)
	)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			<-start
			for i := range perAppender {
				n := 1 + rng.IntN(3)
				drafts := make([]module.Draft, n)
				for j := range drafts {
					drafts[j] = draft(users[rng.IntN(len(users))], fmt.Sprintf(`{"g":%d,"i":%d,"j":%d}`, g, i, j))
				}
				msgs, err := e.s.Append(e.ctx, drafts)
				if err != nil {
					errs <- fmt.Errorf("appender %d: %w", g, err)
					return
				}
				for _, m := range msgs {
					if e.rec.count(key{m.UserID, m.ID}) != 1 {
						errs <- fmt.Errorf("appender %d: message %s/%d not delivered to the hook once by the time Append returned", g, m.UserID, m.ID)
						return
					}
				}
				mu.Lock()
				appended = append(appended, msgs...)
				mu.Unlock()
			}
		}()
	}
	close(start)
	waitGroup(t, &wg, 30*time.Second, "the appenders")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if e.rec.overlap.Load() {
		t.Fatal("the hook ran on two goroutines at once")
	}

	hooked := e.rec.all()
	if !consecutivePerUser(e.s) {
		checkIncreasing(t, "hook order across all users", hooked)
	}
	for u, msgs := range perUser(hooked) {
		checkIncreasing(t, "hook order of "+u, msgs)
	}
	// Every appended message was delivered exactly once, with its data, and nothing else was.
	if len(hooked) != len(appended) {
		t.Fatalf("hook received %d messages, Append returned %d", len(hooked), len(appended))
	}
	byKey := map[key]module.Message{}
	for _, m := range hooked {
		k := key{m.UserID, m.ID}
		if _, dup := byKey[k]; dup {
			t.Fatalf("hook received %s/%d twice", m.UserID, m.ID)
		}
		byKey[k] = m
	}
	for _, m := range appended {
		h, ok := byKey[key{m.UserID, m.ID}]
		if !ok {
			t.Fatalf("appended %s/%d never reached the hook", m.UserID, m.ID)
		}
		if !bytes.Equal(h.Data, m.Data) {
			t.Fatalf("%s/%d: hook data %s, appended %s", m.UserID, m.ID, h.Data, m.Data)
		}
	}
	// The store agrees with the hook about each user's messages.
	for u, msgs := range perUser(hooked) {
		e.expectBacklog(u, module.BacklogQuery{}, msgs)
	}
}

// ---- Backlog ----

func testBacklogSince(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 10)
	e.appendN("other", 3)
	e.expectBacklog("u", module.BacklogQuery{}, msgs)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID}, msgs[5:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[9].ID}, nil)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[9].ID + 1_000_000}, nil)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[0].ID - 1}, msgs)
	e.expectBacklog("u", module.BacklogQuery{Limit: 3}, msgs[:3])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[6].ID, Limit: 100}, msgs[7:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[2].ID, Limit: 2}, msgs[3:5])
	e.expectBacklog("nobody", module.BacklogQuery{}, nil)
	e.expectBacklog("nobody", e.pq("nobody"), nil)
}

func testBacklogPending(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 6)
	e.expectBacklog("u", e.pq("u"), msgs)
	e.s.MarkWritten("u", idsOf(msgs, 0, 1, 4), true, time.Now())
	// Backlog with Pending sees every mark made before it was called: no waiting.
	e.expectBacklog("u", e.pq("u"), pick(msgs, 2, 3, 5))
	e.expectBacklog("u", e.pqLimit("u", 2), pick(msgs, 2, 3))
	// Since replays do not care about delivery.
	e.expectBacklog("u", module.BacklogQuery{}, msgs)
	e.expectStats("u", module.UserStats{Stored: 6, Pending: 3})
	e.s.MarkWritten("u", idsOf(msgs, 2, 3, 5), true, time.Now())
	e.expectBacklog("u", e.pq("u"), nil)
	e.expectStats("u", module.UserStats{Stored: 6, Pending: 0})
}

func testBacklogPendingAndSince(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 8)
	e.s.MarkWritten("u", idsOf(msgs, 0, 1, 4, 6), true, time.Now())
	// Undelivered at or below Since (2, 3), plus everything above Since (4..7, delivered or not).
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[3].ID, Pending: true}, msgs[2:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID, Pending: true}, pick(msgs, 2, 3, 5, 6, 7))
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[7].ID, Pending: true}, pick(msgs, 2, 3, 5, 7))
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[1].ID, Pending: true}, msgs[2:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID, Pending: true, Limit: 3}, pick(msgs, 2, 3, 5))
	// Since 0 selects everything anyway: Pending only adds messages at or below Since.
	e.expectBacklog("u", module.BacklogQuery{Pending: true}, msgs)
	// Without Pending the same Since is a plain replay.
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID}, msgs[5:])
}

func testBacklogAfterPaging(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 25)
	e.appendN("v", 5)
	var delivered []uint64
	var undelivered []module.Message
	for i, m := range msgs {
		if i%3 == 0 {
			delivered = append(delivered, m.ID)
		} else {
			undelivered = append(undelivered, m)
		}
	}
	e.s.MarkWritten("u", delivered, true, time.Now())

	page := func(q module.BacklogQuery, limit int) []module.Message {
		t.Helper()
		var out []module.Message
		q.Limit = limit
		for range 100 {
			got := e.backlog("u", q)
			if len(got) > limit {
				t.Fatalf("page of %d messages with Limit %d", len(got), limit)
			}
			if len(got) == 0 {
				return out
			}
			if got[0].ID <= q.After {
				t.Fatalf("page after %d starts at %d", q.After, got[0].ID)
			}
			out = append(out, got...)
			q.After = got[len(got)-1].ID
		}
		t.Fatal("paging does not end")
		return nil
	}
	check := func(name string, got, want []module.Message) {
		t.Helper()
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("%s: paged ids %v, want %v", name, ids(got), ids(want))
		}
	}
	check("since 0, limit 4", page(module.BacklogQuery{}, 4), msgs)
	check("since 0, limit 1", page(module.BacklogQuery{}, 1), msgs)
	check("since 0, limit 25", page(module.BacklogQuery{}, 25), msgs)
	check("pending, limit 4", page(e.pq("u"), 4), undelivered)
	// Pending + Since: undelivered up to msgs[12], everything above.
	var union []module.Message
	for i, m := range msgs {
		if i > 12 || i%3 != 0 {
			union = append(union, m)
		}
	}
	check("pending since 12, limit 4", page(module.BacklogQuery{Pending: true, Since: msgs[12].ID}, 4), union)
	check("since 10, limit 3", page(module.BacklogQuery{Since: msgs[10].ID}, 3), msgs[11:])
	// After without a limit: everything above the cursor.
	e.expectBacklog("u", module.BacklogQuery{After: msgs[10].ID}, msgs[11:])
	// After wins over Since: nothing at or below After, even when Since is lower.
	e.expectBacklog("u", module.BacklogQuery{After: msgs[20].ID, Since: msgs[5].ID}, msgs[21:])
	e.expectBacklog("u", module.BacklogQuery{After: msgs[20].ID, Since: msgs[24].ID, Pending: true}, pick(msgs, 22, 23))
	e.expectBacklog("u", module.BacklogQuery{After: msgs[24].ID}, nil)
}

func testMarkWritten(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 5)
	other := e.appendN("v", 2)
	e.s.MarkWritten("u", nil, true, time.Now())
	e.s.MarkWritten("u", []uint64{}, true, time.Now())
	// Unknown ids are ignored. (Marks name the connection's own user's ids; whether a store
	// checks the user is not part of the contract: ids are only ever marked by their owner.)
	e.s.MarkWritten("nobody", []uint64{other[1].ID + 1_000_000}, true, time.Now())
	e.s.MarkWritten("u", []uint64{other[1].ID + 1_000_000, other[1].ID + 2_000_000}, true, time.Now())
	e.expectBacklog("u", e.pq("u"), msgs)

	e.s.MarkWritten("u", idsOf(msgs, 1), true, time.Now())
	e.s.MarkWritten("u", idsOf(msgs, 1, 3), true, time.Now()) // marking twice is harmless
	e.s.MarkWritten("u", idsOf(msgs, 3), true, time.Now())
	e.expectBacklog("u", e.pq("u"), pick(msgs, 0, 2, 4))
	e.expectStats("u", module.UserStats{Stored: 5, Pending: 3})
	// Still replayed by Since and After, still counted as stored.
	e.expectBacklog("u", module.BacklogQuery{}, msgs)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[0].ID}, msgs[1:])
	// Other users are untouched.
	e.expectBacklog("v", e.pq("v"), other)
	e.expectStats("v", module.UserStats{Stored: 2, Pending: 2})

	// Many concurrent marks: all of them are seen by the next pending read.
	big := e.appendN("w", 200)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(big); i += 8 {
				if i%10 != 9 {
					e.s.MarkWritten("w", []uint64{big[i].ID}, true, time.Now())
				}
			}
		}()
	}
	waitGroup(t, &wg, 10*time.Second, "the markers")
	var want []module.Message
	for i, m := range big {
		if i%10 == 9 {
			want = append(want, m)
		}
	}
	e.expectBacklog("w", e.pq("w"), want)
	e.expectStats("w", module.UserStats{Stored: 200, Pending: 20})
}

// ---- retention ----

func testTTLExpiry(t *testing.T, open Opener) {
	// A long sweep interval: reads alone must hide expired messages.
	e := openEnv(t, open, module.StoreOptions{SweepInterval: time.Hour})
	const short = 50 * time.Millisecond
	keep := e.append(draft("u", `"keep-1"`))
	shortMsgs := e.append(
		module.Draft{UserID: "u", Data: []byte(`"short-1"`), TTL: short},
		module.Draft{UserID: "u", Data: []byte(`"short-2"`), TTL: short},
		module.Draft{UserID: "v", Data: []byte(`"short-v"`), TTL: short},
	)
	keep = append(keep, e.append(draft("u", `"keep-2"`))...)
	e.s.MarkWritten("u", idsOf(shortMsgs, 1), true, time.Now())

	expiry := shortMsgs[0].ExpiresAt
	for _, m := range shortMsgs {
		expiry = later(expiry, m.ExpiresAt)
	}
	if time.Now().Add(5 * time.Millisecond).Before(expiry) {
		// Still well before expiry: the short messages are there.
		got := e.backlog("u", module.BacklogQuery{})
		if time.Now().Add(2 * time.Millisecond).Before(expiry) {
			if len(got) != 4 {
				t.Fatalf("before expiry Backlog returned ids %v, want 4 messages", ids(got))
			}
		}
	}
	// Wait out the ttl (bounded by the short ttl itself, not a guess).
	time.Sleep(time.Until(expiry) + 5*time.Millisecond)
	all := module.BacklogQuery{}
	e.expectBacklog("u", all, keep)
	e.expectBacklog("u", e.pq("u"), keep)
	e.expectBacklog("u", module.BacklogQuery{Since: keep[0].ID, Pending: true}, keep)
	e.expectBacklog("u", module.BacklogQuery{After: keep[0].ID}, keep[1:])
	e.expectBacklog("v", all, nil)
	e.expectBacklog("v", e.pq("v"), nil)
	e.expectStats("u", module.UserStats{Stored: 2, Pending: 2})
	e.expectStats("v", module.UserStats{Stored: 0, Pending: 0})
	// Ids keep increasing over expired messages.
	next := e.append(module.Draft{UserID: "v", Data: []byte(`"again"`), TTL: longTTL})
	if next[0].ID <= shortMsgs[2].ID {
		t.Fatalf("id after expiry %d not above the expired %d", next[0].ID, shortMsgs[2].ID)
	}
	e.expectBacklog("v", all, next)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func testSweepRemovesExpired(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{SweepInterval: 10 * time.Millisecond})
	keep := e.append(draft("u", `"keep"`))
	var drafts []module.Draft
	for i := range 5 {
		drafts = append(drafts, module.Draft{UserID: fmt.Sprintf("s%d", i%2), Data: []byte(fmt.Sprint(i)), TTL: 30 * time.Millisecond})
	}
	e.append(drafts...)
	// The sweeper removes them: the expired counter reaches 5 and nothing is left to purge.
	waitFor(t, 5*time.Second, "the sweeper to remove 5 expired messages", func() bool {
		return counterValue(e.metrics.Expired) >= 5
	})
	if v := counterValue(e.metrics.Expired); v != 5 {
		t.Fatalf("expired counter = %v, want 5", v)
	}
	for _, u := range []string{"s0", "s1"} {
		if n := e.purge(u); n != 0 {
			t.Fatalf("Purge(%s) after the sweep = %d, want 0", u, n)
		}
	}
	e.expectBacklog("u", module.BacklogQuery{}, keep)
	e.expectStats("u", module.UserStats{Stored: 1, Pending: 1})
}

// testExpiryCountsOnlyExpired: the expired counter counts messages removed because their ttl
// passed, not the ones trimmed or purged before it did. All of them expire at the same instant
// (one Append), so one sweep step sees them together.
func testExpiryCountsOnlyExpired(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{SweepInterval: 10 * time.Millisecond, MaxPerUser: 2})
	const short = 30 * time.Millisecond
	var drafts []module.Draft
	for _, user := range []string{"t", "t", "t", "t", "t", "p", "p", "k"} {
		drafts = append(drafts, module.Draft{UserID: user, Data: []byte(`1`), TTL: short})
	}
	e.append(drafts...) // t: 3 trimmed, 2 kept
	if n := e.purge("p"); n != 2 {
		t.Fatalf("Purge(p) = %d, want 2", n)
	}
	keep := e.append(draft("k", `"keep"`))
	waitFor(t, 10*time.Second, "the sweeper to remove the expired messages", func() bool {
		return counterValue(e.metrics.Expired) >= 3
	})
	if v := counterValue(e.metrics.Expired); v != 3 {
		t.Fatalf("expired counter = %v, want 3 (2 of t, 1 of k; trimmed and purged ones are not expired)", v)
	}
	if v := counterValue(e.metrics.Trimmed); v != 3 {
		t.Fatalf("trimmed counter = %v, want 3", v)
	}
	e.expectBacklog("k", module.BacklogQuery{}, keep)
	e.expectBacklog("t", module.BacklogQuery{}, nil)
}

func testMaxPerUser(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{MaxPerUser: 3})
	a := e.appendN("a", 2)
	e.s.MarkWritten("a", idsOf(a, 0), true, time.Now()) // delivered or not, the oldest go first
	b := e.appendN("b", 2)
	a = append(a, e.appendN("a", 3)...)
	e.expectBacklog("a", module.BacklogQuery{}, a[2:])
	e.expectBacklog("a", e.pq("a"), a[2:])
	e.expectStats("a", module.UserStats{Stored: 3, Pending: 3})
	// Per user: a's trimming leaves b alone, and b's messages did not count against a.
	e.expectBacklog("b", module.BacklogQuery{}, b)
	e.expectStats("b", module.UserStats{Stored: 2, Pending: 2})
	e.s.MarkWritten("a", idsOf(a, 2), true, time.Now())
	a = append(a, e.appendN("a", 1)...)
	e.expectBacklog("a", module.BacklogQuery{}, a[3:])
	e.expectStats("a", module.UserStats{Stored: 3, Pending: 3})
	b = append(b, e.appendN("b", 1)...)
	e.expectBacklog("b", module.BacklogQuery{}, b)
	if n := e.purge("a"); n != 3 {
		t.Fatalf("Purge(a) = %d, want 3 (the trimmed ones are gone)", n)
	}
}

func testMaxPerUserBatch(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{MaxPerUser: 3})
	one := e.append(
		draft("c", "1"), draft("c", "2"), draft("c", "3"), draft("c", "4"), draft("c", "5"),
	)
	e.expectBacklog("c", module.BacklogQuery{}, one[2:])
	mixed := e.append(
		draft("d", "1"), draft("e", "1"), draft("d", "2"), draft("e", "2"),
		draft("d", "3"), draft("e", "3"), draft("d", "4"), draft("e", "4"),
	)
	byUser := perUser(mixed)
	e.expectBacklog("d", module.BacklogQuery{}, byUser["d"][1:])
	e.expectBacklog("e", module.BacklogQuery{}, byUser["e"][1:])
	e.expectStats("d", module.UserStats{Stored: 3, Pending: 3})
	e.expectStats("e", module.UserStats{Stored: 3, Pending: 3})
}

// ---- Stats, Purge, Head, Health, Close ----

func testStats(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	e.expectStats("nobody", module.UserStats{})
	u := e.appendN("u", 7)
	e.appendN("v", 2)
	e.expectStats("u", module.UserStats{Stored: 7, Pending: 7})
	e.s.MarkWritten("u", idsOf(u, 0, 3, 6), true, time.Now())
	e.expectStats("u", module.UserStats{Stored: 7, Pending: 4})
	e.expectStats("v", module.UserStats{Stored: 2, Pending: 2})
	e.purge("u")
	e.expectStats("u", module.UserStats{})
	e.expectStats("v", module.UserStats{Stored: 2, Pending: 2})
}

func testPurge(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	if n := e.purge("nobody"); n != 0 {
		t.Fatalf("Purge(nobody) = %d, want 0", n)
	}
	u := e.appendN("u", 4)
	v := e.appendN("v", 3)
	e.s.MarkWritten("u", idsOf(u, 0, 1), true, time.Now())
	if n := e.purge("u"); n != 4 {
		t.Fatalf("Purge(u) = %d, want 4 (delivered ones count too)", n)
	}
	e.expectBacklog("u", module.BacklogQuery{}, nil)
	e.expectBacklog("u", e.pq("u"), nil)
	e.expectStats("u", module.UserStats{})
	if n := e.purge("u"); n != 0 {
		t.Fatalf("second Purge(u) = %d, want 0", n)
	}
	e.expectBacklog("v", module.BacklogQuery{}, v)
	if n := e.purge("v"); n != 3 {
		t.Fatalf("Purge(v) = %d, want 3", n)
	}
}

func testLastID(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	first := e.lastID("u") // 0 for a fresh store, but any value is fine if later ids exceed it
	u := e.appendN("u", 3)
	if u[0].ID <= first {
		t.Fatalf("first id %d is not above LastID %d read before", u[0].ID, first)
	}
	v := e.append(draft("v", "1"), draft("u", "9"), draft("v", "2"))
	for _, user := range []string{"u", "v"} {
		last := e.lastID(user)
		for _, m := range append(slices.Clone(u), v...) {
			if m.UserID == user && m.ID > last {
				t.Fatalf("LastID(%s) = %d, below committed id %d", user, last, m.ID)
			}
		}
		next := e.append(draft(user, "10"))
		if next[0].ID <= last {
			t.Fatalf("append after LastID(%s)=%d got id %d", user, last, next[0].ID)
		}
		if l := e.lastID(user); l < next[0].ID {
			t.Fatalf("LastID(%s) = %d after committing %d", user, l, next[0].ID)
		}
	}
}

func testLastIDConcurrent(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := []string{"x", "y"}[g%2]
			var prevLast uint64
			for i := range 30 {
				last, err := lastOf(e.ctx, e.s, user)
				if err != nil {
					errs <- err
					return
				}
				if last < prevLast {
					errs <- fmt.Errorf("LastID(%s) went down: %d after %d", user, last, prevLast)
					return
				}
				msgs, err := e.s.Append(e.ctx, []module.Draft{draft(user, fmt.Sprint(i))})
				if err != nil {
					errs <- err
					return
				}
				if msgs[0].ID <= last {
					errs <- fmt.Errorf("append for %s after LastID %d got id %d", user, last, msgs[0].ID)
					return
				}
				prevLast = last
				if l, err := lastOf(e.ctx, e.s, user); err != nil || l < msgs[0].ID {
					errs <- fmt.Errorf("LastID(%s) = %d, %v right after committing %d", user, l, err, msgs[0].ID)
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, 20*time.Second, "the appenders")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testHealth(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	if err := e.s.Health(e.ctx); err != nil {
		t.Fatalf("Health of a new store: %v", err)
	}
	e.appendN("u", 1)
	if err := e.s.Health(e.ctx); err != nil {
		t.Fatalf("Health after append: %v", err)
	}
}

func testClose(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 2)
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := e.ctx
	if _, err := e.s.Append(ctx, []module.Draft{draft("u", "1")}); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Append after Close: %v, want an error wrapping ErrClosed", err)
	}
	if err := e.s.Health(ctx); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Health after Close: %v, want ErrClosed", err)
	}
	k := idemKey("s", "after-close", "fp")
	if _, _, err := e.s.AppendOnce(ctx, k, []module.Draft{draft("u", "1")}); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("AppendOnce after Close: %v, want an error wrapping ErrClosed", err)
	}
	if _, _, err := e.s.Begin(ctx, k); err == nil {
		t.Fatal("Begin after Close: no error")
	}
	if _, err := e.s.Status(ctx, "u", msgs[0].ID); err == nil {
		t.Fatal("Status after Close: no error")
	}
	if _, err := e.s.Statuses(ctx, "u", 0, 10); err == nil {
		t.Fatal("Statuses after Close: no error")
	}
	if _, err := e.s.Purge(ctx, "u"); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Purge after Close: %v, want ErrClosed", err)
	}
	if _, err := lastOf(ctx, e.s, "u"); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Head after Close: %v, want ErrClosed", err)
	}
	for _, q := range []module.BacklogQuery{{}, {Pending: true}} {
		if _, err := e.s.Backlog(ctx, "u", q); err == nil {
			t.Fatalf("Backlog(%+v) after Close: no error", q)
		}
	}
	if _, err := e.s.Stats(ctx, "u"); err == nil {
		t.Fatal("Stats after Close: no error")
	}
	e.s.MarkWritten("u", ids(msgs), true, time.Now()) // must not panic or block
	e.s.MarkWritten("u", ids(msgs), false, time.Now())
	e.s.Ack("u", ids(msgs), time.Now())
	e.s.Abandon(k)
	if _, err := e.s.Stats(ctx, "u"); err == nil {
		t.Fatal("Stats after Close and marks: no error")
	}
	if err := e.s.Close(); err != nil {
		t.Fatalf("third Close: %v", err)
	}
	if e.rec.len() != 2 {
		t.Fatalf("hook saw %d messages, want the 2 appended before Close", e.rec.len())
	}
}

func testCloseWhileAppending(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	const appenders = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []module.Message
		errs     = make(chan error, appenders)
	)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				msgs, err := e.s.Append(e.ctx, []module.Draft{draft(fmt.Sprintf("u%d", g%3), fmt.Sprint(i))})
				if err != nil {
					if !errors.Is(err, module.ErrClosed) {
						errs <- fmt.Errorf("appender %d: %w (want ErrClosed)", g, err)
					}
					return
				}
				mu.Lock()
				accepted = append(accepted, msgs...)
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 10*time.Second, "some appends", func() bool { return e.rec.len() >= 50 })
	closed := make(chan error, 2)
	go func() { closed <- e.s.Close() }()
	go func() { closed <- e.s.Close() }()
	for range 2 {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return while appends were running")
		}
	}
	waitGroup(t, &wg, 10*time.Second, "appenders to stop after Close")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every accepted message was handed to the hook exactly once: none lost in the shutdown.
	for _, m := range accepted {
		if n := e.rec.count(key{m.UserID, m.ID}); n != 1 {
			t.Fatalf("accepted %s/%d reached the hook %d times", m.UserID, m.ID, n)
		}
	}
	if e.rec.len() != len(accepted) {
		t.Fatalf("hook saw %d messages, %d were accepted", e.rec.len(), len(accepted))
	}
}

func testConcurrentMixed(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{MaxPerUser: 10_000})
	const appenders, perAppender = 4, 60
	var (
		wg, readers sync.WaitGroup
		stop        = make(chan struct{})
		errs        = make(chan error, 16)
	)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perAppender {
				if _, err := e.s.Append(e.ctx, []module.Draft{draft("u", fmt.Sprintf(`[%d,%d]`, g, i))}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Readers act like connections: read the pending queue, mark what they "sent".
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				last, err := lastOf(e.ctx, e.s, "u")
				if err != nil {
					errs <- err
					return
				}
				msgs, err := e.s.Backlog(e.ctx, "u", module.BacklogQuery{Since: last, Pending: true, Limit: 16})
				if err != nil {
					errs <- err
					return
				}
				for i := 1; i < len(msgs); i++ {
					if msgs[i].ID <= msgs[i-1].ID {
						errs <- fmt.Errorf("pending backlog out of order: %v", ids(msgs))
						return
					}
				}
				e.s.MarkWritten("u", ids(msgs), true, time.Now())
				if _, err := e.s.Stats(e.ctx, "u"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, 20*time.Second, "the appenders")
	close(stop)
	waitGroup(t, &readers, 10*time.Second, "the readers")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := e.backlog("u", module.BacklogQuery{})
	if len(all) != appenders*perAppender {
		t.Fatalf("stored %d messages, want %d", len(all), appenders*perAppender)
	}
	e.s.MarkWritten("u", ids(e.backlog("u", e.pq("u"))), true, time.Now())
	e.expectStats("u", module.UserStats{Stored: appenders * perAppender, Pending: 0})
	e.expectBacklog("u", e.pq("u"), nil)
}

// ---- data ----

// roundTripData are JSON values whose bytes must come back exactly as published: escapes are not
// decoded or re-encoded, unicode is not normalised, numbers are not reformatted.
var roundTripData = []string{
	`{"title":"hi"}`,
	`{"s":"line\u2028sep\u2029par","nul":"a\u0000b","esc":"\"\\\/\b\f\n\r\t"}`,
	`"\u0000"`,
	`"\u2028"`,
	`"\ud83d\ude00 surrogate pair"`,
	"\"raw utf-8: é ü 中文 😀 \u2028 \u2029\"",
	`[1,"two",{"3":[true,false,null]},[],{}]`,
	`{"n":1.50,"e":1e300,"neg":-0,"big":123456789012345678901234567890}`,
	`0`,
	`-12.5E-3`,
	`true`,
	`false`,
	`""`,
	`[]`,
	`{}`,
	`{"nested":{"deep":{"deeper":[{"k":"v\u00e9"}]}}}`,
	`{"html":"<script>&amp;</script>","u003c":"\u003c\u003e\u0026"}`,
	`"` + strings.Repeat("x", 60_000) + `"`,
}

func testDataRoundTrip(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var drafts []module.Draft
	for _, d := range roundTripData {
		drafts = append(drafts, draft("u", d))
	}
	// One batch, and one message per append.
	batch := e.append(drafts...)
	var single []module.Message
	for _, d := range roundTripData {
		single = append(single, e.append(draft("v", d))...)
	}
	for _, user := range []string{"u", "v"} {
		got := e.backlog(user, module.BacklogQuery{})
		if len(got) != len(roundTripData) {
			t.Fatalf("%s: Backlog returned %d messages, want %d", user, len(got), len(roundTripData))
		}
		for i, m := range got {
			if !bytes.Equal(m.Data, []byte(roundTripData[i])) {
				t.Fatalf("%s: message %d data = %q, want %q", user, i, m.Data, roundTripData[i])
			}
		}
	}
	for i, m := range append(batch, single...) {
		if !bytes.Equal(m.Data, []byte(roundTripData[i%len(roundTripData)])) {
			t.Fatalf("Append result %d data = %q", i, m.Data)
		}
	}
	// The hook gets the same bytes.
	for i, m := range e.rec.all() {
		if !bytes.Equal(m.Data, []byte(roundTripData[i%len(roundTripData)])) {
			t.Fatalf("hook message %d data = %q", i, m.Data)
		}
	}
}

// lastOf is Head's LastID.
func lastOf(ctx context.Context, s module.Store, user string) (uint64, error) {
	h, err := s.Head(ctx, user)
	return h.LastID, err
}
