package storetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"pushlane/module"
)

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
