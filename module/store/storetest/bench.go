package storetest

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"pushlane/module"
)

// commitCount is how many commits the store has timed (0 for a store that times none).
func commitCount(b *testing.B, m *module.Metrics) uint64 {
	var out dto.Metric
	if err := m.StoreLatency.WithLabelValues("commit").(prometheus.Metric).Write(&out); err != nil {
		b.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}

// BenchUnicast is a store's share of compare.sh's unicast scenario (10,000 users, 16 publishers,
// one message per publish): each of publishers goroutines appends one message to a random one of
// users and then marks it written to a version 1 connection, as the hub does once the frame is
// out (the mark rides with a later commit). It reports msgs/s and cpu-µs/msg, the process's CPU
// time (user and system, fsync included) per message: on a shared 2-core machine the CPU per
// message is steadier than the wall time, and it is what the server and the load generator share;
// and msgs/commit, the messages per group commit (from the store's commit latency histogram).
func BenchUnicast(b *testing.B, open func(b *testing.B, opts module.StoreOptions) module.Store, users, publishers int) {
	metrics := module.NewMetrics(nil)
	s := open(b, module.StoreOptions{Metrics: metrics})
	ctx := context.Background()
	data := []byte(`{"lg_0123456789":1765050000000000000,"title":"hello","body":"a push"}`)
	names := make([]string, users)
	for i := range names {
		names[i] = "lg0123-" + strconv.Itoa(i)
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((publishers + procs - 1) / procs) // RunParallel starts GOMAXPROCS × this many goroutines
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 7))
		draft := make([]module.Draft, 1)
		for pb.Next() {
			user := names[r.IntN(len(names))]
			draft[0] = module.Draft{UserID: user, Data: data, TTL: time.Hour}
			msgs, err := s.Append(ctx, draft)
			if err != nil {
				b.Error(err)
				return
			}
			s.MarkWritten(user, []uint64{msgs[0].ID}, true, time.Now())
		}
	})
	b.StopTimer()
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if commits := commitCount(b, metrics); commits > 0 {
		b.ReportMetric(float64(b.N)/float64(commits), "msgs/commit")
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	}
}
