package redis

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pushlane/module"
	"pushlane/module/internal/rediskeys"
	"pushlane/module/store/redis/redistest"
)

var epochFormat = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// TestEpoch: every store on one prefix reports the same epoch, in the API's format; a prefix
// that no longer holds anything (a flushed Redis) gets a new one, which Head reports at once on
// a node that was running all along, and ids restart.
func TestEpoch(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	a := openT(t, rdb, prefix, module.StoreOptions{}, false)
	b := openT(t, rdb, prefix, module.StoreOptions{}, false)
	mustAppend(t, a, draft("u", "1"), draft("u", "2"))
	ha, err := a.Head(testCtx(t), "u")
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.Head(testCtx(t), "u")
	if err != nil || hb != ha || ha.LastID != 2 || !epochFormat.MatchString(ha.Epoch) {
		t.Fatalf("Head on two nodes = %+v and %+v (%v); want the same, last id 2, epoch in format", ha, hb, err)
	}
	if e, err := b.Epoch(testCtx(t)); err != nil || e != ha.Epoch {
		t.Fatalf("Epoch = %q, %v; want %q", e, err, ha.Epoch)
	}
	redistest.Clean(t, rdb, prefix) // as FLUSHALL would
	hb2, err := b.Head(testCtx(t), "u")
	if err != nil || hb2.Epoch == ha.Epoch || hb2.LastID != 0 || !epochFormat.MatchString(hb2.Epoch) {
		t.Fatalf("Head after the flush = %+v, %v; want a new epoch and last id 0 (was %+v)", hb2, err, ha)
	}
	if got := mustAppend(t, a, draft("u", "again")); got[0].ID != 1 {
		t.Fatalf("first id after the flush = %d, want 1", got[0].ID)
	}
	if ha2, _ := a.Head(testCtx(t), "u"); ha2.Epoch != hb2.Epoch || ha2.LastID != 1 {
		t.Fatalf("the other node's Head after the flush = %+v, want epoch %s and last id 1", ha2, hb2.Epoch)
	}
}

// TestHeadCoversPublishedIDs: with PublishLive, by the time a live message arrives on the
// user's channel, Head already reports its id (the script numbers and publishes atomically);
// without it, the same holds for what the commit hook receives.
func TestHeadCoversPublishedIDs(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	keys := rediskeys.New(prefix)
	live := openT(t, rdb, prefix, module.StoreOptions{}, true)
	ps := rdb.Subscribe(testCtx(t), keys.UserChannel("u"))
	defer ps.Close()
	if _, err := ps.Receive(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; i < 20; i++ {
			_, _ = live.Append(context.Background(), []module.Draft{draft("u", "1")})
		}
	}()
	for range 20 {
		msg, err := ps.ReceiveMessage(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		id, _, _, _ := rediskeys.DecodeLive(msg.Payload)
		if h, err := live.Head(testCtx(t), "u"); err != nil || h.LastID < id {
			t.Fatalf("Head = %+v, %v after message %d was published", h, err, id)
		}
	}

	var hs *Store
	var mu sync.Mutex
	var bad []string
	hook := func(msgs []module.Message) {
		for _, m := range msgs {
			h, err := hs.Head(context.Background(), m.UserID)
			if err != nil || h.LastID < m.ID {
				mu.Lock()
				bad = append(bad, m.UserID)
				mu.Unlock()
			}
		}
	}
	hs = openT(t, rdb, redistest.Prefix(t, rdb), module.StoreOptions{OnCommit: hook}, false)
	for range 20 {
		mustAppend(t, hs, draft("v", "1"), draft("w", "1"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("Head inside OnCommit was below the hooked id for %v", bad)
	}
}

// TestStatuses: marks from version 1 and 2 connections, acks and pushes become statuses that
// every node reads alike; the unread queue follows API.md; ids that are not the user's stored
// messages change nothing.
func TestStatuses(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	s := openT(t, rdb, prefix, module.StoreOptions{}, false)
	other := openT(t, rdb, prefix, module.StoreOptions{}, false)
	msgs := mustAppend(t, s, draft("u", "1"), draft("u", "2"), draft("u", "3"), draft("u", "4"), draft("x", "1"))
	created := msgs[0].CreatedAt
	t1, t2, t3 := created.Add(time.Second), created.Add(2*time.Second), created.Add(3*time.Second)

	s.MarkWritten("u", []uint64{1}, true, t1)     // version 1: sent, out of the queue
	s.MarkWritten("u", []uint64{2, 3}, false, t1) // version 2: sent, still queued
	s.Ack("u", []uint64{3}, t2)                   // acked: out of the queue
	s.Ack("u", []uint64{4, 99}, t2)               // 4 acked without a sent mark; 99 is no message
	s.MarkWritten("u", []uint64{3}, true, t3)     // a later write keeps the first sent time
	s.MarkPushed("u", 2, t3)                      // Web Push
	s.Ack("x", []uint64{2, 3}, t2)                // x has only id 1: nothing happens
	st, err := s.Stats(testCtx(t), "u")
	if err != nil || st != (module.UserStats{Stored: 4, Pending: 1}) {
		t.Fatalf("Stats = %+v, %v; want 4 stored, 1 pending (2: sent, not acked)", st, err)
	}
	got, err := other.Statuses(testCtx(t), "u", 0, 10)
	if err != nil || len(got) != 4 {
		t.Fatalf("Statuses on another node = %v, %v", got, err)
	}
	want := []struct {
		status              string
		sent, acked, pushed time.Time
	}{
		{"sent", t1, time.Time{}, time.Time{}},
		{"sent", t1, time.Time{}, t3},
		{"acked", t1, t2, time.Time{}},
		{"acked", t2, t2, time.Time{}},
	}
	for i, w := range want {
		g := got[i]
		if g.ID != uint64(i+1) || g.Status() != w.status || !g.SentAt.Equal(w.sent) || !g.AckedAt.Equal(w.acked) ||
			!g.PushedAt.Equal(w.pushed) || string(g.Data) != string(msgs[i].Data) || !g.CreatedAt.Equal(created) {
			t.Errorf("message %d = %+v, want %+v", i+1, g, w)
		}
	}
	one, err := other.Status(testCtx(t), "u", 2)
	if err != nil || one.SentAt != got[1].SentAt || one.PushedAt != got[1].PushedAt || one.ID != 2 {
		t.Fatalf("Status(2) = %+v, %v", one, err)
	}
	if _, err := other.Status(testCtx(t), "u", 99); !errors.Is(err, module.ErrNotFound) {
		t.Fatalf("Status(99) = %v, want ErrNotFound", err)
	}
	if _, err := other.Status(testCtx(t), "nobody", 1); !errors.Is(err, module.ErrNotFound) {
		t.Fatalf("Status of an unknown user = %v, want ErrNotFound", err)
	}
	if x, err := other.Status(testCtx(t), "x", 1); err != nil || x.Status() != "pending" {
		t.Fatalf("x/1 = %+v, %v; want pending (acks for ids x does not have changed nothing)", x, err)
	}
	// The unread queue of a connection without since: only 2 (acked ones and the version 1
	// write left it).
	pend, err := other.Backlog(testCtx(t), "u", module.BacklogQuery{Since: 4, Pending: true})
	if err != nil || !slices.Equal(ids(pend), []uint64{2}) {
		t.Fatalf("pending backlog = %v, %v; want [2]", ids(pend), err)
	}
	if page, err := other.Statuses(testCtx(t), "u", 1, 2); err != nil || !slices.Equal(statusIDs(page), []uint64{2, 3}) {
		t.Fatalf("Statuses(since 1, limit 2) = %v, %v", statusIDs(page), err)
	}
}

func statusIDs(ms []module.MessageStatus) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// TestBacklogMaxBytes: the message that takes a page's data to MaxBytes or beyond is the page's
// last, so a page holds at least one message even when that one alone is larger.
func TestBacklogMaxBytes(t *testing.T) {
	rdb := redistest.Client(t)
	s := openT(t, rdb, redistest.Prefix(t, rdb), module.StoreOptions{}, false)
	big := `"` + strings.Repeat("x", 998) + `"` // 1000 bytes
	mustAppend(t, s, draft("u", big), draft("u", `"a"`), draft("u", `"b"`), draft("u", big), draft("u", `"c"`))
	cases := []struct {
		q    module.BacklogQuery
		want []uint64
	}{
		{module.BacklogQuery{MaxBytes: 500}, []uint64{1}},
		{module.BacklogQuery{After: 1, MaxBytes: 500}, []uint64{2, 3, 4}},
		{module.BacklogQuery{After: 1, MaxBytes: 1006}, []uint64{2, 3, 4}},
		{module.BacklogQuery{After: 1, MaxBytes: 1007}, []uint64{2, 3, 4, 5}},
		{module.BacklogQuery{After: 1, MaxBytes: 6}, []uint64{2, 3}},
		{module.BacklogQuery{After: 1, MaxBytes: 7}, []uint64{2, 3, 4}},
		{module.BacklogQuery{After: 1, MaxBytes: 3}, []uint64{2}},
		{module.BacklogQuery{After: 3, MaxBytes: 1}, []uint64{4}},
		{module.BacklogQuery{After: 1, MaxBytes: 5000, Limit: 2}, []uint64{2, 3}},
	}
	for _, c := range cases {
		got, err := s.Backlog(testCtx(t), "u", c.q)
		if err != nil || !slices.Equal(ids(got), c.want) {
			t.Errorf("Backlog(%+v) = %v, %v; want %v", c.q, ids(got), err, c.want)
		}
	}
}

// TestIdempotencyAcrossNodes: a key claimed on one node is in progress on another; once
// finished, every node replays the same record; a record expires after its window.
func TestIdempotencyAcrossNodes(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	a := openT(t, rdb, prefix, module.StoreOptions{}, false)
	b := openT(t, rdb, prefix, module.StoreOptions{}, false)
	key := module.IdempotencyKey{Scope: "k1", Key: "order-7", Fingerprint: "fp", Window: time.Hour}
	ctx := testCtx(t)
	if st, _, err := a.Begin(ctx, key); err != nil || st != module.IdempotencyNew {
		t.Fatalf("Begin on a = %v, %v", st, err)
	}
	if st, _, err := b.Begin(ctx, key); err != nil || st != module.IdempotencyInProgress {
		t.Fatalf("Begin on b while a holds it = %v, %v; want in progress", st, err)
	}
	other := key
	other.Scope = "k2"
	if st, _, err := b.Begin(ctx, other); err != nil || st != module.IdempotencyNew {
		t.Fatalf("Begin of the same key in another scope = %v, %v; want new", st, err)
	}
	b.Abandon(other)
	msgs, rec, err := a.AppendOnce(ctx, key, []module.Draft{draft("u", "1"), draft("v", "1")})
	if err != nil || rec != nil || len(msgs) != 2 {
		t.Fatalf("AppendOnce = %v, %v, %v", msgs, rec, err)
	}
	if err := a.Finish(ctx, key, []byte(`{"results":[]}`)); err != nil {
		t.Fatal(err)
	}
	st, rec, err := b.Begin(ctx, key)
	want := []module.IdempotentResult{{UserID: "u", ID: msgs[0].ID}, {UserID: "v", ID: msgs[1].ID}}
	if err != nil || st != module.IdempotencyDone || rec == nil || rec.Fingerprint != "fp" ||
		!slices.Equal(rec.Results, want) || string(rec.Body) != `{"results":[]}` {
		t.Fatalf("Begin after Finish = %v, %+v, %v", st, rec, err)
	}
	// Abandon releases a claim at once; a new Begin gets it.
	short := module.IdempotencyKey{Scope: "k1", Key: "short", Fingerprint: "fp", Window: 50 * time.Millisecond}
	if st, _, _ := a.Begin(ctx, short); st != module.IdempotencyNew {
		t.Fatal("Begin short: not new")
	}
	a.Abandon(short)
	if st, _, _ := b.Begin(ctx, short); st != module.IdempotencyNew {
		t.Fatal("Begin after Abandon: not new")
	}
	if _, _, err := b.AppendOnce(ctx, short, []module.Draft{draft("w", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Finish(ctx, short, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	// After the window the key is new again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _, err := a.Begin(ctx, short)
		if err != nil {
			t.Fatal(err)
		}
		if st == module.IdempotencyNew {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the record outlived its window: %v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Abandon(short)
}

// TestIdempotencyLeaseExpires: a claim whose holder died (never finished nor abandoned) ends
// with its lease.
func TestIdempotencyLeaseExpires(t *testing.T) {
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	dead, err := New(rdb, module.StoreOptions{}, Options{KeyPrefix: prefix, ClaimLease: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	key := module.IdempotencyKey{Scope: "", Key: "k", Fingerprint: "fp", Window: time.Hour}
	if st, _, err := dead.Begin(testCtx(t), key); err != nil || st != module.IdempotencyNew {
		t.Fatalf("Begin = %v, %v", st, err)
	}
	_ = dead.Close() // dies holding the claim
	alive := openT(t, rdb, prefix, module.StoreOptions{}, false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _, err := alive.Begin(testCtx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		if st == module.IdempotencyNew {
			break
		}
		if st != module.IdempotencyInProgress || time.Now().After(deadline) {
			t.Fatalf("Begin = %v; the dead holder's claim did not expire", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	alive.Abandon(key)
}

// TestIdempotentRetryAfterStall is the issue-12 case: Redis stalls (SIGSTOP) while a publish
// with a key is on the wire; the publish times out (a 503 for its caller) but Redis stores it
// when it resumes. The retry with the same key gets the same ids and stores nothing.
func TestIdempotentRetryAfterStall(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := srv.Client()
	defer rdb.Close()
	s, err := New(rdb, module.StoreOptions{}, Options{KeyPrefix: "p:", OpTimeout: 300 * time.Millisecond, ClaimLease: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := module.IdempotencyKey{Scope: "k", Key: "retry-me", Fingerprint: "fp", Window: time.Hour}
	ctx := testCtx(t)
	mustAppend(t, s, draft("warm-up", "1")) // Redis has the append script, as a running node's has
	if st, _, err := s.Begin(ctx, key); err != nil || st != module.IdempotencyNew {
		t.Fatalf("Begin = %v, %v", st, err)
	}
	srv.Pause()
	_, _, err = s.AppendOnce(ctx, key, []module.Draft{draft("u", `"once"`), draft("v", `"once"`)})
	if err == nil {
		srv.Resume()
		t.Fatal("AppendOnce succeeded while Redis was stopped")
	}
	s.Abandon(key) // fails too: the claim stays until its lease ends
	srv.Resume()

	// Redis ran the append when it resumed: the message is stored although the caller was told
	// it failed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.Stats(ctx, "u")
		if err == nil && st.Stored == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled append was not stored after all (%+v, %v): the test did not provoke the case", st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The retry: in progress while the first attempt's claim lasts (its Abandon could not reach
	// Redis), then done with the first attempt's ids (no body: it never finished), to be
	// replayed. AppendOnce, too, would store nothing and return the record.
	want := []module.IdempotentResult{{UserID: "u", ID: 1}, {UserID: "v", ID: 1}}
	for {
		state, rec, err := s.Begin(ctx, key)
		if err == nil && state == module.IdempotencyDone {
			if rec == nil || rec.Fingerprint != "fp" || rec.Body != nil || !slices.Equal(rec.Results, want) {
				t.Fatalf("record on retry = %+v, want the first attempt's ids %v and no body", rec, want)
			}
			break
		}
		if (err == nil && state != module.IdempotencyInProgress) || time.Now().After(deadline) {
			t.Fatalf("Begin on retry = %v, %v; want in progress, then done", state, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	msgs, rec, err := s.AppendOnce(ctx, key, []module.Draft{draft("u", `"once"`), draft("v", `"once"`)})
	if err != nil || msgs != nil || rec == nil || !slices.Equal(rec.Results, want) {
		t.Fatalf("AppendOnce on retry = %v, %+v, %v; want the first attempt's record", msgs, rec, err)
	}
	for _, u := range []string{"u", "v"} {
		if st, err := s.Stats(ctx, u); err != nil || st.Stored != 1 {
			t.Fatalf("%s after the retry: %+v, %v; want 1 stored", u, st, err)
		}
	}
}

// TestHealthOutOfMemory: Redis at maxmemory with noeviction refuses writes while still
// answering PING; Health says so, and recovers once memory is free again.
func TestHealthOutOfMemory(t *testing.T) {
	srv := redistest.StartServer(t, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
	rdb := srv.Client()
	defer rdb.Close()
	s := openT(t, rdb, "p:", module.StoreOptions{MaxPerUser: 100_000}, false)
	ctx := testCtx(t)
	if err := s.Health(ctx); err != nil {
		t.Fatalf("Health before = %v", err)
	}
	data := []byte(`"` + strings.Repeat("m", 60_000) + `"`)
	var appendErr error
	for i := 0; i < 1000 && appendErr == nil; i++ {
		_, appendErr = s.Append(ctx, []module.Draft{{UserID: "u", Data: data, TTL: time.Hour}})
	}
	if appendErr == nil || !strings.Contains(appendErr.Error(), "OOM") {
		t.Fatalf("appends never hit maxmemory: %v", appendErr)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING = %v; the point is that reads still work", err)
	}
	if err := s.Health(ctx); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("Health out of memory = %v, want an OOM error", err)
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(ctx); err != nil {
		t.Fatalf("Health after memory was freed = %v", err)
	}
}

// TestConcurrentHealthChecksShareOneProbe: /healthz needs no key, so a flood of it must not make
// one Redis write per request: concurrent checks share the probe in flight.
func TestConcurrentHealthChecksShareOneProbe(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := srv.Client()
	defer rdb.Close()
	s := openT(t, rdb, "p:", module.StoreOptions{}, false)
	ctx := testCtx(t)
	if err := s.Health(ctx); err != nil { // scripts loaded, as on a running node
		t.Fatal(err)
	}
	evals := func() int {
		info, err := rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				return n
			}
		}
		return 0
	}
	before := evals()
	srv.Pause() // the probe in flight stalls, and every check arrives while it is in flight
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			_ = s.Health(c)
		}()
	}
	wg.Wait()
	srv.Resume()
	if err := s.Health(ctx); err != nil { // waits for the shared probe, then sends a fresh one
		t.Logf("health after the stall: %v", err)
	}
	if n := evals() - before; n > 3 {
		t.Fatalf("100 concurrent health checks ran %d write probes, want them to share one", n)
	}
}
