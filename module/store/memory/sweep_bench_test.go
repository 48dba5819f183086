package memory

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"pushlane/module"
)

// BenchmarkPublishDuringSweep measures what the expiry sweep costs publishers (issue 13, item 4):
// the store holds PUSHLANE_SWEEP_BENCH_STORED messages (default 200,000, small enough for CI;
// the case is 2,000,000), half of them expiring during the run, and one publisher times each
// Append while the sweeper runs every second. Reported: the slowest publish, the 99.9th
// percentile and how many messages the sweeper removed meanwhile. Run it long enough to span a few
// sweeps:
//
//	PUSHLANE_SWEEP_BENCH_STORED=2000000 go test -run '^$' -bench PublishDuringSweep -benchtime 4s ./module/store/memory/
func BenchmarkPublishDuringSweep(b *testing.B) {
	stored := benchStored(b)
	metrics := module.NewMetrics(nil)
	s := New(module.StoreOptions{Metrics: metrics})
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	data := []byte(`{"title":"hello","body":"a push message of a typical size"}`)
	const users, batch = 20_000, 1000
	drafts := make([]module.Draft, 0, batch)
	for i := range stored {
		ttl := time.Hour
		if i%2 == 1 { // expire in 1-4s from now: the sweeper has work during the run
			ttl = time.Second + time.Duration(i%3000)*time.Millisecond
		}
		drafts = append(drafts, module.Draft{UserID: "u" + strconv.Itoa(i%users), Data: data, TTL: ttl})
		if len(drafts) == batch {
			if _, err := s.Append(ctx, drafts); err != nil {
				b.Fatal(err)
			}
			drafts = drafts[:0]
		}
	}
	expiredBefore := counter(metrics.Expired)
	lat := make([]time.Duration, 0, 1<<20)
	n := 0
	for b.Loop() {
		d := module.Draft{UserID: "p" + strconv.Itoa(n%1000), Data: data, TTL: time.Hour}
		start := time.Now()
		if _, err := s.Append(ctx, []module.Draft{d}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		n++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(lat[len(lat)*999/1000].Microseconds()), "p999-µs")
	b.ReportMetric(counter(metrics.Expired)-expiredBefore, "expired")
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "%d stored, %d publishes, max %v\n", stored, len(lat), lat[len(lat)-1])
	}
}

// benchStored is how many messages the sweep benchmarks store: PUSHLANE_SWEEP_BENCH_STORED, or
// 200,000 (small enough for CI's runs of every benchmark).
func benchStored(b *testing.B) int {
	v := os.Getenv("PUSHLANE_SWEEP_BENCH_STORED")
	if v == "" {
		return 200_000
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1000 {
		b.Fatalf("PUSHLANE_SWEEP_BENCH_STORED=%q: want an integer >= 1000", v)
	}
	return n
}
