package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"pushlane/module"
)

// fakeClock is a settable clock for the store's now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newManual opens a store whose sweeper never ticks (the test calls sweepStep) on a fake clock.
func newManual(t testing.TB, maxPerUser int) (*Store, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := New(module.StoreOptions{MaxPerUser: maxPerUser, SweepInterval: time.Hour, Metrics: module.NewMetrics(nil)})
	s.now = clock.now
	t.Cleanup(func() { s.Close() })
	return s, clock
}

func counter(c interface{ Write(*dto.Metric) error }) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// sweepAll runs sweep steps until none is due and returns how many it took.
func sweepAll(s *Store, now time.Time) int {
	steps := 1
	for s.sweepStep(now) {
		steps++
	}
	return steps
}

// TestSweepMatchesModel drives the store with random appends (mixed ttls, so a user's newest
// message often expires before older ones), trims, purges and clock jumps, and checks after every
// sweep that exactly the messages a model says are stored remain, in order, and that the expired
// counter counts exactly the messages the sweep removed (not trimmed or purged ones).
func TestSweepMatchesModel(t *testing.T) {
	const maxPerUser = 6
	s, clock := newManual(t, maxPerUser)
	rng := rand.New(rand.NewPCG(7, 11))
	type stored struct {
		id      uint64
		expires time.Time
	}
	model := map[string][]stored{} // what must remain: not trimmed, purged or swept
	expired := 0
	ctx := context.Background()
	for round := range 400 {
		var drafts []module.Draft
		for range rng.IntN(12) {
			drafts = append(drafts, module.Draft{UserID: fmt.Sprintf("u%d", rng.IntN(15)), Data: []byte(`1`),
				TTL: time.Duration(1+rng.IntN(40)) * 100 * time.Millisecond})
		}
		msgs, err := s.Append(ctx, drafts)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			list := append(model[m.UserID], stored{m.ID, m.ExpiresAt})
			model[m.UserID] = list[max(0, len(list)-maxPerUser):]
		}
		if rng.IntN(20) == 0 {
			u := fmt.Sprintf("u%d", rng.IntN(15))
			n, err := s.Purge(ctx, u)
			if err != nil || n != len(model[u]) {
				t.Fatalf("round %d: Purge(%s) = %d, %v; model has %d", round, u, n, err, len(model[u]))
			}
			delete(model, u)
		}
		clock.add(time.Duration(rng.IntN(700)) * time.Millisecond)
		now := clock.now()
		sweepAll(s, now)
		for u, list := range model {
			kept := list[:0]
			for _, m := range list {
				if ceilSecond(m.expires) <= now.Unix() {
					expired++
				} else {
					kept = append(kept, m)
				}
			}
			if len(kept) == 0 {
				delete(model, u)
			} else {
				model[u] = kept
			}
		}
		// The store holds exactly the model.
		s.mu.Lock()
		got := map[string][]uint64{}
		for u, q := range s.users {
			if q.user != u {
				t.Fatalf("round %d: queue of %s filed under %s", round, q.user, u)
			}
			dead := 0
			for _, e := range q.entries {
				if e.dead {
					dead++
				} else {
					got[u] = append(got[u], e.msg.ID)
				}
			}
			if dead != q.dead || q.live() == 0 {
				t.Fatalf("round %d: %s has %d dead entries, counted %d, %d live", round, u, dead, q.dead, q.live())
			}
		}
		s.mu.Unlock()
		want := map[string][]uint64{}
		for u, list := range model {
			for _, m := range list {
				want[u] = append(want[u], m.id)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d at %v: store holds %v, model %v", round, now, got, want)
		}
		if c := counter(s.opts.Metrics.Expired); int(c) != expired {
			t.Fatalf("round %d: expired counter %v, model %d", round, c, expired)
		}
		// Reads agree: what is stored and not yet expired, oldest first.
		for u, list := range model {
			var live []uint64
			for _, m := range list {
				if m.expires.After(now) {
					live = append(live, m.id)
				}
			}
			msgs, err := s.Backlog(ctx, u, module.BacklogQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if ids := msgIDs(msgs); !slices.Equal(ids, live) {
				t.Fatalf("round %d: Backlog(%s) = %v, want %v", round, u, ids, live)
			}
		}
	}
	if expired == 0 {
		t.Fatal("nothing expired: the test did not test")
	}
}

func msgIDs(msgs []module.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// TestSweepStepIsBounded: one step removes at most sweepStepRefs messages and says whether more
// are due, so the lock is released between bounded steps however much expires at once.
func TestSweepStepIsBounded(t *testing.T) {
	s, clock := newManual(t, 1000)
	const n = 3*sweepStepRefs + 17
	drafts := make([]module.Draft, n)
	for i := range drafts {
		drafts[i] = module.Draft{UserID: fmt.Sprintf("u%d", i%50), Data: []byte(`1`), TTL: time.Second}
	}
	if _, err := s.Append(context.Background(), drafts); err != nil {
		t.Fatal(err)
	}
	if s.sweepStep(clock.now()) {
		t.Fatal("a step before anything expired reports more to do")
	}
	clock.add(2 * time.Second)
	now := clock.now()
	for i := range 3 {
		if !s.sweepStep(now) {
			t.Fatalf("step %d reports nothing more with %d messages due", i, n-i*sweepStepRefs)
		}
		if c := counter(s.opts.Metrics.Expired); int(c) != (i+1)*sweepStepRefs {
			t.Fatalf("after step %d: %v removed, want %d", i, c, (i+1)*sweepStepRefs)
		}
	}
	if s.sweepStep(now) {
		t.Fatal("the last step reports more")
	}
	if c := counter(s.opts.Metrics.Expired); int(c) != n {
		t.Fatalf("%v removed, want %d", c, n)
	}
	if len(s.users) != 0 || len(s.expiry.buckets) != 0 || len(s.expiry.seconds) != 0 {
		t.Fatalf("left after everything expired: %d users, %d buckets, %d seconds", len(s.users), len(s.expiry.buckets), len(s.expiry.seconds))
	}
}

// TestExpiredRecordsForgotten: the sweep drops expired idempotency records, keeping a record made
// again under the same key after the first expired.
func TestExpiredRecordsForgotten(t *testing.T) {
	s, clock := newManual(t, 1000)
	ctx := context.Background()
	k := module.IdempotencyKey{Scope: "s", Key: "k", Fingerprint: "f", Window: time.Second}
	for range 2 {
		if st, _, err := s.Begin(ctx, k); err != nil || st != module.IdempotencyNew {
			t.Fatalf("Begin = %d, %v; want New", st, err)
		}
		if _, _, err := s.AppendOnce(ctx, k, []module.Draft{{UserID: "u", Data: []byte(`1`), TTL: time.Hour}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Finish(ctx, k, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		clock.add(1500 * time.Millisecond)
	}
	// At 2.4 s: the first record (expired at 1 s) was replaced by the second (expires at 2.5 s).
	clock.add(-600 * time.Millisecond)
	sweepAll(s, clock.now())
	if len(s.idem.records) != 1 {
		t.Fatalf("%d records after the first expired, want the second one", len(s.idem.records))
	}
	clock.add(time.Second)
	sweepAll(s, clock.now())
	if len(s.idem.records) != 0 || len(s.idem.expiry) != 0 {
		t.Fatalf("%d records, %d expiries left after both expired", len(s.idem.records), len(s.idem.expiry))
	}
}

// BenchmarkSweepStep times single sweep steps, the longest the sweeper holds the store's lock, in
// a store holding PUSHLANE_SWEEP_BENCH_STORED messages that do not expire (default 200,000) of
// 20,000 users, while messages of the same users expire among them (so removals hit the middle of
// queues and compactions happen). Reported: the 99th percentile and the longest step (on a busy
// machine the longest is mostly the scheduler's and the garbage collector's, not the step's).
//
//	PUSHLANE_SWEEP_BENCH_STORED=2000000 go test -run '^$' -bench SweepStep -benchtime 2000x ./module/store/memory/
func BenchmarkSweepStep(b *testing.B) {
	stored := benchStored(b)
	s, clock := newManual(b, 1000)
	ctx := context.Background()
	data := []byte(`{"title":"hello","body":"a push message of a typical size"}`)
	const users = 20_000
	fill := func(n int, ttl func(i int) time.Duration) {
		drafts := make([]module.Draft, 0, 1000)
		for i := range n {
			drafts = append(drafts, module.Draft{UserID: "u" + strconv.Itoa(i%users), Data: data, TTL: ttl(i)})
			if len(drafts) == cap(drafts) || i == n-1 {
				if _, err := s.Append(ctx, drafts); err != nil {
					b.Fatal(err)
				}
				drafts = drafts[:0]
			}
		}
	}
	// Interleave due and lasting messages: the due ones end up between lasting ones of their user.
	fill(stored, func(i int) time.Duration {
		if i%2 == 1 {
			return time.Second
		}
		return 100 * time.Hour
	})
	clock.add(2 * time.Second)
	var times []time.Duration
	for b.Loop() {
		now := clock.now()
		start := time.Now()
		more := s.sweepStep(now)
		times = append(times, time.Since(start))
		if !more {
			b.StopTimer()
			fill(stored/2, func(int) time.Duration { return time.Second })
			clock.add(2 * time.Second)
			b.StartTimer()
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-step-µs")
	b.ReportMetric(float64(times[len(times)-1].Microseconds()), "max-step-µs")
}
