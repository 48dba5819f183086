package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// publishToWrite is the server's histogram of the time from accepting a message (stored) to
// writing it to a live connection. Its change over a unicast run splits the latency the
// subscribers see into the server's part and the rest (the publish request, the network, the
// load generator's own scheduling).
const publishToWrite = "pushlane_publish_to_write_seconds"

// serverHistogram is one scrape of a cumulative Prometheus histogram.
type serverHistogram struct {
	upper []float64 // bucket upper bounds in seconds, increasing, the last +Inf
	cum   []uint64  // observations at or below each bound
}

// scrapeHistogram reads the histogram name from the server's GET /metrics.
func (b *bench) scrapeHistogram(ctx context.Context, name string) (serverHistogram, error) {
	status, body, err := b.posts.get(ctx, b.t.httpBase+"/metrics")
	if err != nil {
		return serverHistogram{}, fmt.Errorf("get /metrics: %w", err)
	}
	if status != http.StatusOK {
		return serverHistogram{}, fmt.Errorf("get /metrics: status %d", status)
	}
	return parseHistogram(body, name)
}

// parseHistogram finds the histogram name in a Prometheus text exposition.
func parseHistogram(text []byte, name string) (serverHistogram, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return serverHistogram{}, fmt.Errorf("parse /metrics: %w", err)
	}
	fam, ok := families[name]
	if !ok || fam.GetType() != dto.MetricType_HISTOGRAM || len(fam.GetMetric()) != 1 {
		return serverHistogram{}, fmt.Errorf("parse /metrics: no histogram %s", name)
	}
	h := fam.GetMetric()[0].GetHistogram()
	var out serverHistogram
	for _, bk := range h.GetBucket() {
		out.upper = append(out.upper, bk.GetUpperBound())
		out.cum = append(out.cum, bk.GetCumulativeCount())
	}
	if len(out.upper) == 0 || !math.IsInf(out.upper[len(out.upper)-1], 1) {
		out.upper = append(out.upper, math.Inf(1))
		out.cum = append(out.cum, h.GetSampleCount())
	}
	if !sort.Float64sAreSorted(out.upper) {
		return serverHistogram{}, errors.New("parse /metrics: buckets out of order")
	}
	return out, nil
}

// since returns the observations made between before and h, or false when the two scrapes do
// not line up (other buckets, or a counter that went back: the server restarted).
func (h serverHistogram) since(before serverHistogram) (serverHistogram, bool) {
	if len(h.upper) != len(before.upper) {
		return serverHistogram{}, false
	}
	d := serverHistogram{upper: h.upper, cum: make([]uint64, len(h.cum))}
	for i := range h.cum {
		if h.upper[i] != before.upper[i] || h.cum[i] < before.cum[i] {
			return serverHistogram{}, false
		}
		d.cum[i] = h.cum[i] - before.cum[i]
	}
	return d, true
}

// quantile estimates the q-quantile in seconds the way Prometheus' histogram_quantile does:
// linearly within the bucket it falls in (from 0 for the first). It is false without
// observations, and +Inf when the quantile is past the last finite bound.
func (h serverHistogram) quantile(q float64) (float64, bool) {
	if len(h.cum) == 0 || h.cum[len(h.cum)-1] == 0 {
		return 0, false
	}
	rank := q * float64(h.cum[len(h.cum)-1])
	i := sort.Search(len(h.cum), func(i int) bool { return float64(h.cum[i]) >= rank })
	if math.IsInf(h.upper[i], 1) {
		return math.Inf(1), true
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.upper[i-1], float64(h.cum[i-1])
	}
	inBucket := float64(h.cum[i]) - below
	if inBucket == 0 {
		return h.upper[i], true
	}
	return lower + (h.upper[i]-lower)*(rank-below)/inBucket, true
}
