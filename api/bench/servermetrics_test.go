package bench

import (
	"math"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// exposition is what a real Prometheus registry serves for h.
func exposition(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.Bytes()
}

func TestServerHistogramQuantiles(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: publishToWrite, Buckets: []float64{.001, .002, .004}})
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_other_total"})
	reg.MustRegister(h, other)
	for range 100 {
		h.Observe(0.0005) // before the run: must not count
	}
	before, err := parseHistogram(exposition(t, reg), publishToWrite)
	if err != nil {
		t.Fatal(err)
	}
	// The run: 50 in (0, 1 ms], 40 in (1, 2 ms], 10 in (2, 4 ms].
	for i := range 100 {
		switch {
		case i < 50:
			h.Observe(0.0008)
		case i < 90:
			h.Observe(0.0015)
		default:
			h.Observe(0.003)
		}
	}
	after, err := parseHistogram(exposition(t, reg), publishToWrite)
	if err != nil {
		t.Fatal(err)
	}
	run, ok := after.since(before)
	if !ok {
		t.Fatal("since: scrapes do not line up")
	}
	for _, c := range []struct{ q, want float64 }{
		{0.25, 0.0005}, // halfway through the first bucket
		{0.5, 0.001},   // its top
		{0.7, 0.0015},  // halfway through the second
		{0.95, 0.003},  // halfway through the third
		{0.99, 0.0038}, // nine tenths into it
	} {
		got, ok := run.quantile(c.q)
		if !ok || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%v = %v (%v), want %v", c.q, got, ok, c.want)
		}
	}
	// Past the last finite bound there is no estimate, only "more than 4 ms".
	h.Observe(10)
	late, _ := parseHistogram(exposition(t, reg), publishToWrite)
	if run, _ := late.since(after); !func() bool { v, ok := run.quantile(0.99); return ok && math.IsInf(v, 1) }() {
		t.Errorf("one observation past the buckets: want +Inf")
	}
	if _, ok := before.since(after); ok {
		t.Error("a histogram that went back (server restarted) must not give a figure")
	}
	if _, err := parseHistogram(exposition(t, reg), "pushlane_other_total"); err == nil {
		t.Error("a counter parsed as a histogram")
	}
	if _, err := parseHistogram([]byte("not { prometheus"), publishToWrite); err == nil {
		t.Error("garbage parsed")
	}
	empty := serverHistogram{upper: []float64{0.001, math.Inf(1)}, cum: []uint64{0, 0}}
	if _, ok := empty.quantile(0.5); ok {
		t.Error("a quantile of no observations")
	}
}
