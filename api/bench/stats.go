package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Latency histogram: log-linear buckets with 64 sub-buckets per power of two (HDR-like, at most
// 1.6% relative error), in nanoseconds, constant memory whatever the number of samples. It is
// sharded so that thousands of reader goroutines do not fight over the same cache lines.
const (
	histSub     = 64
	histLinear  = 2 * histSub // values below are exact
	histBuckets = histLinear + (64-7)*histSub
	histShards  = 32
)

type histogram struct {
	shards [histShards]struct {
		counts [histBuckets]uint64
		max    int64
	}
}

func bucketOf(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - 7 // v>>shift is in [64, 128)
	return histLinear + (shift-1)*histSub + int(v>>shift) - histSub
}

// bucketUpper is the largest value that falls in bucket i.
func bucketUpper(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := uint64((i-histLinear)%histSub + histSub)
	return (m+1)<<shift - 1
}

// record adds one sample; shard is any number (a subscriber index).
func (h *histogram) record(shard int, ns int64) {
	if ns < 0 {
		ns = 0
	}
	s := &h.shards[shard%histShards]
	atomic.AddUint64(&s.counts[bucketOf(uint64(ns))], 1)
	for {
		old := atomic.LoadInt64(&s.max)
		if ns <= old || atomic.CompareAndSwapInt64(&s.max, old, ns) {
			break
		}
	}
}

// latencies are the reported percentiles, in milliseconds.
type latencies struct {
	n                  uint64
	p50, p90, p99, max float64
}

func (h *histogram) summary() latencies {
	var counts [histBuckets]uint64
	var l latencies
	var maxNS int64
	for i := range h.shards {
		s := &h.shards[i]
		for j := range counts {
			c := atomic.LoadUint64(&s.counts[j])
			counts[j] += c
			l.n += c
		}
		maxNS = max(maxNS, atomic.LoadInt64(&s.max))
	}
	if l.n == 0 {
		return l
	}
	at := func(q float64) float64 {
		rank := uint64(q*float64(l.n) + 0.999999)
		rank = max(rank, 1)
		var cum uint64
		for j, c := range counts {
			cum += c
			if cum >= rank {
				return nsToMS(int64(min(bucketUpper(j), uint64(maxNS))))
			}
		}
		return nsToMS(maxNS)
	}
	l.p50, l.p90, l.p99, l.max = at(0.50), at(0.90), at(0.99), nsToMS(maxNS)
	return l
}

func nsToMS(ns int64) float64 { return float64(ns) / 1e6 }

// procSample is what /proc tells about the server process.
type procSample struct {
	rssKB int64
	ticks int64 // utime + stime, in clock ticks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// readProc reads VmRSS from /proc/PID/status and utime+stime from /proc/PID/stat.
func readProc(pid int) (procSample, error) {
	var p procSample
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return p, err
	}
	found := false
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				p.rssKB, err = strconv.ParseInt(f[0], 10, 64)
				found = err == nil
			}
			break
		}
	}
	if !found {
		return p, errors.New("no VmRSS in /proc/PID/status (a zombie or kernel thread?)")
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return p, err
	}
	// The command name, in parentheses, may hold spaces: fields are counted after its last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return p, errors.New("unexpected /proc/PID/stat format")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return p, errors.New("unexpected /proc/PID/stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return p, errors.New("unexpected /proc/PID/stat format")
	}
	p.ticks = ut + st
	return p, nil
}

// tally counts occurrences by a short reason; at most maxReasons distinct keys are kept.
type tally struct {
	mu sync.Mutex
	m  map[string]int
}

const maxReasons = 20

func (t *tally) add(reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]int)
	}
	if _, ok := t.m[reason]; !ok && len(t.m) >= maxReasons {
		reason = "other"
	}
	t.m[reason]++
}

func (t *tally) snapshot() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int, len(t.m))
	for k, v := range t.m {
		out[k] = v
	}
	return out
}

func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, v := range t.m {
		n += v
	}
	return n
}

// errReason classifies a network error in a few words, without addresses or ports, so that
// thousands of failures fold into a handful of keys.
func errReason(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "address not available (ephemeral ports exhausted?)"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files (ulimit -n)"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "context deadline exceeded"):
		return "timeout"
	case strings.Contains(err.Error(), "context canceled"):
		return "canceled"
	case strings.Contains(err.Error(), "EOF"):
		return "EOF"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// clock gives unix nanoseconds read from the monotonic clock, so that latencies are not
// disturbed by wall-clock steps during the run.
type clock struct{ base time.Time }

func newClock() clock { return clock{base: time.Now()} }

func (c clock) now() int64 { return c.base.UnixNano() + int64(time.Since(c.base)) }

func fmtRate(n float64, d float64) float64 {
	if d <= 0 {
		return 0
	}
	return n / d
}

func fmtKB(kb int64) string {
	if kb >= 10*1024 {
		return fmt.Sprintf("%.1f MB", float64(kb)/1024)
	}
	return fmt.Sprintf("%d KB", kb)
}
