package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"pushlane/module"
	"pushlane/module/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts module.StoreOptions) module.Store {
		return openT(t, filepath.Join(t.TempDir(), "push.db"), opts)
	})
}

// openT opens a store at path and closes it when the test ends.
func openT(t testing.TB, path string, opts module.StoreOptions) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openFirst opens a store that the test closes itself before reopening the file; the cleanup's
// Close is then a no-op.
func openFirst(t *testing.T, path string, opts module.StoreOptions) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writerGate holds the writer inside the commit hook on demand, so a test can act while no commit
// can happen: ops and marks only queue.
type writerGate struct {
	holding atomic.Bool
	entered chan struct{}
	hold    chan struct{}
	once    sync.Once
}

// openGated opens a store at path whose writer a writerGate can hold.
func openGated(t *testing.T, path string, opts module.StoreOptions) (*Store, *writerGate) {
	t.Helper()
	g := &writerGate{entered: make(chan struct{}, 1), hold: make(chan struct{})}
	opts.OnCommit = func([]module.Message) {
		if g.holding.Load() {
			g.entered <- struct{}{}
			<-g.hold
		}
	}
	s := openT(t, path, opts)
	t.Cleanup(g.release) // runs before Close: a failing test must not leave the writer held
	return s, g
}

// holdWriter appends a message in the background and returns once the writer is held in the
// hook of its commit; the channel gets the append's result after release.
func (g *writerGate) holdWriter(t *testing.T, s *Store) <-chan error {
	t.Helper()
	g.holding.Store(true)
	appended := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), []module.Draft{d("gate", `1`)})
		appended <- err
	}()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never reached the hook")
	}
	return appended
}

func (g *writerGate) release() {
	g.holding.Store(false)
	g.once.Do(func() { close(g.hold) })
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, s *Store, drafts ...module.Draft) []module.Message {
	t.Helper()
	msgs, err := s.Append(testCtx(t), drafts)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(msgs) != len(drafts) {
		t.Fatalf("Append returned %d messages for %d drafts", len(msgs), len(drafts))
	}
	return msgs
}

func mustBacklog(t *testing.T, s *Store, user string, q module.BacklogQuery) []module.Message {
	t.Helper()
	msgs, err := s.Backlog(testCtx(t), user, q)
	if err != nil {
		t.Fatalf("Backlog(%s, %+v): %v", user, q, err)
	}
	return msgs
}

func msgIDs(msgs []module.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

func d(user, data string) module.Draft {
	return module.Draft{UserID: user, Data: []byte(data), TTL: time.Hour}
}

// commitCount reads the sample count of pushlane_store_seconds{op="commit"}: one per transaction.
func commitCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "pushlane_store_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == "commit" {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// lastID is Head's LastID.
func lastID(ctx context.Context, s *Store, user string) (uint64, error) {
	h, err := s.Head(ctx, user)
	return h.LastID, err
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitWG(t *testing.T, wg *sync.WaitGroup, timeout time.Duration, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

func TestDurableAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s1 := openFirst(t, path, module.StoreOptions{})
	u := mustAppend(t, s1, d("u", `{"n":1}`), d("u", `"\u2028\u0000"`), d("v", `[1]`))
	u = append(u, mustAppend(t, s1, d("u", `true`), d("u", `{"n":5}`))...)
	var uMsgs, vMsgs []module.Message
	for _, m := range u {
		if m.UserID == "u" {
			uMsgs = append(uMsgs, m)
		} else {
			vMsgs = append(vMsgs, m)
		}
	}
	s1.MarkWritten("u", []uint64{uMsgs[0].ID}, true, time.Now())
	// A read of the pending queue commits this mark; the next one is only queued when Close
	// runs, which must commit it too.
	mustBacklog(t, s1, "u", module.BacklogQuery{Since: uMsgs[3].ID, Pending: true})
	s1.MarkWritten("u", []uint64{uMsgs[2].ID}, true, time.Now())
	last1, err := lastID(testCtx(t), s1, "u")
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := openT(t, path, module.StoreOptions{})
	ctx := testCtx(t)
	all := mustBacklog(t, s2, "u", module.BacklogQuery{})
	if !slices.Equal(msgIDs(all), msgIDs(uMsgs)) {
		t.Fatalf("after reopen u has ids %v, want %v", msgIDs(all), msgIDs(uMsgs))
	}
	for i, m := range all {
		w := uMsgs[i]
		if !bytes.Equal(m.Data, w.Data) || m.UserID != "u" ||
			m.CreatedAt.UnixMilli() != w.CreatedAt.UnixMilli() || m.ExpiresAt.UnixMilli() != w.ExpiresAt.UnixMilli() {
			t.Fatalf("after reopen message %d = %+v, want %+v", i, m, w)
		}
	}
	if got := mustBacklog(t, s2, "v", module.BacklogQuery{}); !slices.Equal(msgIDs(got), msgIDs(vMsgs)) {
		t.Fatalf("after reopen v has ids %v, want %v", msgIDs(got), msgIDs(vMsgs))
	}
	last2, err := lastID(ctx, s2, "u")
	if err != nil {
		t.Fatal(err)
	}
	if last2 != last1 {
		t.Fatalf("LastID after reopen = %d, before = %d", last2, last1)
	}
	pending := mustBacklog(t, s2, "u", module.BacklogQuery{Since: last2, Pending: true})
	if want := []uint64{uMsgs[1].ID, uMsgs[3].ID}; !slices.Equal(msgIDs(pending), want) {
		t.Fatalf("pending after reopen = %v, want %v (delivered marks survive, the one queued at Close too)", msgIDs(pending), want)
	}
	st, err := s2.Stats(ctx, "u")
	if err != nil || st != (module.UserStats{Stored: 4, Pending: 2}) {
		t.Fatalf("Stats after reopen = %+v, %v", st, err)
	}
	next := mustAppend(t, s2, d("u", `6`), d("w", `7`))
	if next[0].ID <= last1 || next[1].ID <= next[0].ID {
		t.Fatalf("ids after reopen %v, want above %d", msgIDs(next), last1)
	}
}

func TestHeadSurvivesPurgeAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s1 := openFirst(t, path, module.StoreOptions{})
	msgs := mustAppend(t, s1, d("u", `1`), d("u", `2`), d("v", `3`))
	for _, u := range []string{"u", "v"} {
		if _, err := s1.Purge(testCtx(t), u); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// The table is empty now: only the saved counter knows how far ids went.
	s2 := openT(t, path, module.StoreOptions{})
	for user, want := range map[string]uint64{"u": msgs[1].ID, "v": msgs[2].ID} {
		if last, err := lastID(testCtx(t), s2, user); err != nil || last != want {
			t.Fatalf("Head(%s).LastID after purge and reopen = %d, %v; want %d", user, last, err, want)
		}
	}
	next := mustAppend(t, s2, d("u", `4`))
	if next[0].ID <= msgs[2].ID {
		t.Fatalf("id after purge and reopen = %d, not above %d", next[0].ID, msgs[2].ID)
	}
	// A client resuming with the old id gets exactly the new message.
	got := mustBacklog(t, s2, "u", module.BacklogQuery{After: msgs[1].ID, Since: msgs[1].ID})
	if !slices.Equal(msgIDs(got), msgIDs(next)) {
		t.Fatalf("resume after purge = %v, want %v", msgIDs(got), msgIDs(next))
	}
}

func TestOpenCreatesFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "c")
	path := filepath.Join(dir, "push.db")
	s := openT(t, path, module.StoreOptions{})
	mustAppend(t, s, d("u", `1`))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("folder %s: %v", dir, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
}

func TestOpenFails(t *testing.T) {
	// The parent "folder" is a regular file: Open must fail cleanly, naming the problem.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(file, "push.db"), module.StoreOptions{})
	if err == nil {
		s.Close()
		t.Fatal("Open under a regular file succeeded")
	}
	// A file that is not a database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(junk, module.StoreOptions{})
	if err == nil {
		s.Close()
		t.Fatal("Open of a junk file succeeded")
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	// The path goes into a file: URI; '?', '#', '%' and spaces must not be read as URI syntax.
	dir := filepath.Join(t.TempDir(), "odd dir #1 %20 ?x=y")
	path := filepath.Join(dir, "push db?.sqlite")
	s := openT(t, path, module.StoreOptions{})
	mustAppend(t, s, d("u", `1`))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %q: %v", path, err)
	}
}

func TestWALMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s := openT(t, path, module.StoreOptions{})
	mustAppend(t, s, d("u", `1`))

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
	// The other connection sees the committed row: the append was committed before it returned.
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM messages WHERE user_id = 'u'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows seen by another connection: %d, %v", n, err)
	}
}

// TestGroupCommitConcurrent: 200 concurrent single-message appends all succeed with distinct ids,
// in fewer transactions than appends when they pile up.
func TestGroupCommitConcurrent(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{Metrics: module.NewMetrics(reg)})
	const n = 200
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		got   []module.Message
		errs  = make(chan error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			msgs, err := s.Append(context.Background(), []module.Draft{d(fmt.Sprintf("u%d", i%10), fmt.Sprint(i))})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			got = append(got, msgs...)
			mu.Unlock()
		}()
	}
	close(start)
	waitWG(t, &wg, 30*time.Second, "200 appends")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, m := range got {
		if seen[m.ID] {
			t.Fatalf("id %d given twice", m.ID)
		}
		seen[m.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids, want %d", len(seen), n)
	}
	commits := commitCount(t, reg)
	if commits < 1 || commits > n {
		t.Fatalf("%d commits for %d appends", commits, n)
	}
	t.Logf("%d appends in %d commits", n, commits)
	total := 0
	for u := range 10 {
		msgs := mustBacklog(t, s, fmt.Sprintf("u%d", u), module.BacklogQuery{})
		total += len(msgs)
	}
	if total != n {
		t.Fatalf("stored %d messages, want %d", total, n)
	}
}

// TestGroupCommitBatches makes the pile-up deterministic: the commit hook holds the writer on its
// first batch until every other append is queued; they must then all go in one transaction.
func TestGroupCommitBatches(t *testing.T) {
	reg := prometheus.NewRegistry()
	var (
		calls    atomic.Int32
		firstLen atomic.Int32
		entered  = make(chan struct{})
		release  = make(chan struct{})
		sizesMu  sync.Mutex
		sizes    []int
	)
	hook := func(msgs []module.Message) {
		sizesMu.Lock()
		sizes = append(sizes, len(msgs))
		sizesMu.Unlock()
		if calls.Add(1) == 1 {
			firstLen.Store(int32(len(msgs)))
			close(entered)
			<-release
		}
	}
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{Metrics: module.NewMetrics(reg), OnCommit: hook})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before Close: a failing test must not leave the writer stuck
	const n = 200
	var wg sync.WaitGroup
	ids := make([]uint64, n)
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs, err := s.Append(context.Background(), []module.Draft{d("u", fmt.Sprint(i))})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = msgs[0].ID
		}()
	}
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the first commit never reached the hook")
	}
	rest := n - int(firstLen.Load())
	waitUntil(t, 20*time.Second, fmt.Sprintf("%d appends to queue behind the first commit", rest), func() bool {
		return len(s.ops) == rest
	})
	unblock()
	waitWG(t, &wg, 20*time.Second, "the appends")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if c := commitCount(t, reg); c != 2 {
		t.Fatalf("%d commits for %d appends, want 2 (the first, then all the queued ones)", c, n)
	}
	sizesMu.Lock()
	defer sizesMu.Unlock()
	if len(sizes) != 2 || sizes[1] != rest {
		t.Fatalf("hook batch sizes %v, want [%d %d]", sizes, n-rest, rest)
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for i := 1; i < n; i++ {
		if sorted[i] == sorted[i-1] {
			t.Fatalf("id %d given twice", sorted[i])
		}
	}
	if got := mustBacklog(t, s, "u", module.BacklogQuery{}); len(got) != n {
		t.Fatalf("stored %d messages, want %d", len(got), n)
	}
}

// TestMarksCommittedByPendingRead: delivery marks ride with the writer's transactions and a pending read waits
// for them, so MarkWritten never blocks on the disk.
func TestMarksCommittedByPendingRead(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{Metrics: module.NewMetrics(reg)})
	msgs := mustAppend(t, s, d("u", `1`), d("u", `2`), d("u", `3`))
	for _, m := range msgs[:2] {
		s.MarkWritten("u", []uint64{m.ID}, true, time.Now())
	}
	got := mustBacklog(t, s, "u", module.BacklogQuery{Since: msgs[2].ID, Pending: true})
	if !slices.Equal(msgIDs(got), []uint64{msgs[2].ID}) {
		t.Fatalf("pending = %v, want [%d]", msgIDs(got), msgs[2].ID)
	}
	if p := s.marks.pending.Load(); p != 0 {
		t.Fatalf("%d marks still pending after a pending read", p)
	}
	// A plain since read does not need them.
	s.MarkWritten("u", []uint64{msgs[2].ID}, true, time.Now())
	if got := mustBacklog(t, s, "u", module.BacklogQuery{}); len(got) != 3 {
		t.Fatalf("since read returned %v", msgIDs(got))
	}
	waitUntil(t, 5*time.Second, "the writer to commit the mark by itself", func() bool { return s.marks.pending.Load() == 0 })
	var delivered int
	if err := s.read.QueryRow(`SELECT COUNT(*) FROM messages WHERE sent_at IS NOT NULL AND queued = 0`).Scan(&delivered); err != nil || delivered != 3 {
		t.Fatalf("delivered rows = %d, %v; want 3", delivered, err)
	}
}

// TestExpiredRowsAreDeleted: the sweeper deletes expired rows and counts them. The counter is
// added after the commit, so the test waits for the counter (not for the row to disappear, which
// comes first and once let it read the counter too early), then checks the rows.
func TestExpiredRowsAreDeleted(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{Metrics: module.NewMetrics(reg), SweepInterval: 10 * time.Millisecond})
	mustAppend(t, s, module.Draft{UserID: "u", Data: []byte(`1`), TTL: 20 * time.Millisecond}, d("u", `2`))
	expired := func() float64 {
		var m dto.Metric
		if err := s.opts.Metrics.Expired.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	waitUntil(t, 5*time.Second, "the sweeper to count the expired row", func() bool { return expired() >= 1 })
	var n int
	if err := s.read.QueryRow(`SELECT COUNT(*) FROM messages`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows left, %v; want the unexpired one", n, err)
	}
	if v := expired(); v != 1 {
		t.Fatalf("expired counter = %v, want 1", v)
	}
}

func BenchmarkAppend(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "push.db"), module.StoreOptions{})
	ctx := context.Background()
	data := []byte(`{"title":"hello","body":"a push message of a typical size"}`)
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := s.Append(ctx, []module.Draft{{UserID: users[n%len(users)], Data: data, TTL: time.Hour}}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkAppendParallel(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "push.db"), module.StoreOptions{})
	ctx := context.Background()
	data := []byte(`{"title":"hello","body":"a push message of a typical size"}`)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // many publishers per core, as under HTTP load
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		user := fmt.Sprintf("u%d", next.Add(1))
		for pb.Next() {
			if _, err := s.Append(ctx, []module.Draft{{UserID: user, Data: data, TTL: time.Hour}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// TestCloseCommitsQueuedMarks: marks still queued when Close runs are committed, not dropped. The
// writer is held in the commit hook while the mark is made and Close starts, so the mark can only
// be committed by Close's final flush.
func TestCloseCommitsQueuedMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	var (
		hold    atomic.Bool
		entered = make(chan struct{}, 1)
		release = make(chan struct{})
	)
	hook := func([]module.Message) {
		if hold.Load() {
			entered <- struct{}{}
			<-release
		}
	}
	s, err := Open(path, module.StoreOptions{OnCommit: hook})
	if err != nil {
		t.Fatal(err)
	}
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(func() { unblock(); s.Close() })

	msgs := mustAppend(t, s, d("u", `1`), d("u", `2`))
	hold.Store(true)
	appended := make(chan error, 1)
	go func() {
		_, err := s.Append(context.Background(), []module.Draft{d("u", `3`)})
		appended <- err
	}()
	select {
	case <-entered: // the writer is inside the hook of the third append's commit
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never reached the hook")
	}
	s.MarkWritten("u", []uint64{msgs[0].ID}, true, time.Now()) // the writer is held in the hook: Close must commit it
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	waitUntil(t, 10*time.Second, "Close to start", s.closed.Load)
	unblock()
	if err := <-appended; err != nil {
		t.Fatalf("append in flight during Close: %v", err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}

	s2 := openT(t, path, module.StoreOptions{})
	last, err := lastID(testCtx(t), s2, "u")
	if err != nil {
		t.Fatal(err)
	}
	pending := mustBacklog(t, s2, "u", module.BacklogQuery{Since: last, Pending: true})
	if want := []uint64{msgs[1].ID, last}; !slices.Equal(msgIDs(pending), want) {
		t.Fatalf("pending after reopen = %v, want %v: the mark queued at Close was lost", msgIDs(pending), want)
	}
}

// TestManyMarksInOneBatch covers the chunked UPDATE: more marks than one statement takes, plus a
// remainder, all land, and only those.
func TestManyMarksInOneBatch(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{})
	drafts := make([]module.Draft, 150)
	for i := range drafts {
		drafts[i] = d("m", `1`)
	}
	msgs := mustAppend(t, s, drafts...)
	ids := msgIDs(msgs)
	s.MarkWritten("m", ids[:139], true, time.Now()) // two full chunks of 64 and 11 single marks
	last, err := lastID(testCtx(t), s, "m")
	if err != nil {
		t.Fatal(err)
	}
	pending := mustBacklog(t, s, "m", module.BacklogQuery{Since: last, Pending: true})
	if want := ids[139:]; !slices.Equal(msgIDs(pending), want) {
		t.Fatalf("pending after 139 marks = %v, want %v", msgIDs(pending), want)
	}
	st, err := s.Stats(testCtx(t), "m")
	if err != nil || st.Pending != 11 || st.Stored != 150 {
		t.Fatalf("stats = %+v, %v; want 150 stored, 11 pending", st, err)
	}
}

// TestWALStaysBounded: under steady single-message commits with readers beside them, the WAL
// is checkpointed and restarted instead of growing with every commit (a checkpointer racing the
// writer once let it reach gigabytes).
func TestWALStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s := openT(t, path, module.StoreOptions{})
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // a subscriber reading its backlog over and over
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = s.Backlog(context.Background(), "w", module.BacklogQuery{Since: 0, Limit: 50})
		}
	}()
	const commits = 3000 // about 12 MB of WAL frames if the WAL were never restarted
	for i := 0; i < commits; i++ {
		mustAppend(t, s, d("w", `{"n":1}`))
	}
	close(stop)
	<-readerDone
	info, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() > 8<<20 {
		t.Fatalf("WAL is %d bytes after %d commits: it is not being checkpointed and restarted", info.Size(), commits)
	}
	t.Logf("WAL %d KB after %d commits", info.Size()>>10, commits)
}

// TestSyncModes: store.sync sets SQLite's synchronous level on the connection that commits
// (FULL = 2: fsync every commit; NORMAL = 1: fsync at checkpoints); anything else is refused.
func TestSyncModes(t *testing.T) {
	for _, tc := range []struct {
		opts []Option
		want int
	}{{nil, 2}, {[]Option{WithSync(SyncFull)}, 2}, {[]Option{WithSync(SyncNormal)}, 1}} {
		s, err := Open(filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{}, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, d("u", `1`))
		var level int
		if err := s.write.QueryRow(`PRAGMA synchronous`).Scan(&level); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if level != tc.want {
			t.Fatalf("synchronous = %d with %d options, want %d", level, len(tc.opts), tc.want)
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{}, WithSync("off")); err == nil {
		t.Fatal("Open accepted sync \"off\"")
	}
}

// BenchmarkHead is the cost of Head (one read per connect): the newest row of the user among
// 100,000 rows of 1,000 users, and the saved head of a user whose messages are gone. The context
// can be cancelled, as a connect's request context can.
func BenchmarkHead(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "push.db"), module.StoreOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drafts := make([]module.Draft, 0, 1000)
	for i := range 100_000 {
		drafts = append(drafts, module.Draft{UserID: fmt.Sprintf("u%d", i%1000), Data: []byte(`{"n":1}`), TTL: time.Hour})
		if len(drafts) == cap(drafts) {
			if _, err := s.Append(ctx, drafts); err != nil {
				b.Fatal(err)
			}
			drafts = drafts[:0]
		}
	}
	if _, err := s.Purge(ctx, "u7"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		h, err := s.Head(ctx, fmt.Sprintf("u%d", n%1000))
		if err != nil || h.LastID == 0 {
			b.Fatalf("Head = %+v, %v", h, err)
		}
		n++
	}
}

// BenchmarkUnicast: the store's share of compare.sh's unicast scenario (storetest.BenchUnicast),
// sync full as by default.
func BenchmarkUnicast(b *testing.B) {
	storetest.BenchUnicast(b, func(b *testing.B, opts module.StoreOptions) module.Store {
		return openT(b, filepath.Join(b.TempDir(), "push.db"), opts)
	}, 10_000, 16)
}

// BenchmarkAppendAtLimit: 16 publishers append to users that already hold store.maxPerUser
// messages (1,000), the steady state of a busy user: every append trims one message.
func BenchmarkAppendAtLimit(b *testing.B) {
	s := openT(b, filepath.Join(b.TempDir(), "push.db"), module.StoreOptions{})
	ctx := context.Background()
	const users = 64
	data := []byte(`{"title":"hello","body":"a push message of a typical size"}`)
	drafts := make([]module.Draft, 0, 1000)
	for u := range users {
		for range 1000 {
			drafts = append(drafts, module.Draft{UserID: fmt.Sprintf("u%d", u), Data: data, TTL: time.Hour})
		}
		if _, err := s.Append(ctx, drafts); err != nil {
			b.Fatal(err)
		}
		drafts = drafts[:0]
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			user := fmt.Sprintf("u%d", next.Add(1)%users)
			if _, err := s.Append(ctx, []module.Draft{{UserID: user, Data: data, TTL: time.Hour}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
