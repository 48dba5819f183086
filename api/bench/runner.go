package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"pushlane/client"
)

// bench is one run: its options, its subscribers and everything they count.
type bench struct {
	o        options
	t        *target
	stderr   io.Writer
	clk      clock
	posts    *poster        // the unicast hot path and /metrics (fasthttp, see poster)
	api      *client.Client // broadcasts: one request per fan-out, so net/http's cost is noise
	tokenExp time.Time

	subs      []*subscriber
	userConns []int // open connections per user index
	open      int
	readers   sync.WaitGroup
	closing   atomic.Bool

	// perMsg counts the valid deliveries of each message (unicast) or broadcast, by sequence.
	perMsg  []atomic.Int32
	hist    *histogram // publish sent to frame received
	pubHist *histogram // publish sent to its answer received

	connErrs   tally
	drops      tally
	httpErrs   tally
	dropped    atomic.Int64
	dups       atomic.Int64
	misrouted  atomic.Int64
	unexpected atomic.Int64
	ackErrors  atomic.Int64 // acknowledgements that could not be written (--ack)
}

func newBench(o options, t *target, stderr io.Writer) (*bench, error) {
	b := &bench{
		o:         o,
		t:         t,
		stderr:    stderr,
		clk:       newClock(),
		hist:      new(histogram),
		pubHist:   new(histogram),
		userConns: make([]int, o.users),
		tokenExp:  time.Now().Add(max(time.Hour, o.timeout+5*time.Minute)),
	}
	switch o.mode {
	case modeUnicast:
		b.perMsg = make([]atomic.Int32, o.messages)
	case modeBroadcast:
		b.perMsg = make([]atomic.Int32, o.broadcasts)
	}
	api, err := newAPIClient(o, t.publishBase)
	if err != nil {
		return nil, err
	}
	b.api = api
	b.posts = newPoster(o, t.publishBase)
	return b, nil
}

func (b *bench) userName(i int) string { return "bench-" + b.o.run + "-" + strconv.Itoa(i) }

// progress prints a line to stderr every few seconds until done is closed.
func (b *bench) progress(done <-chan struct{}, phase string, line func() string) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			fmt.Fprintf(b.stderr, "pushlane bench: %s: %s\n", phase, line())
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// run does the whole measurement and returns its report. It always closes what it opened.
func (b *bench) run(ctx context.Context) *Report {
	began := time.Now()
	cpuStart, _ := selfCPU()
	rep := &Report{
		Mode: b.o.mode, Server: b.t.display, Run: b.o.run,
		Conns: b.o.conns, Users: b.o.users, Ack: b.o.ack, DialConcurrency: b.o.dialConc, SourceAddrs: len(b.t.sources),
	}
	var proc0, proc1 procSample
	procOK := b.o.pid > 0
	if procOK {
		p, err := readProc(b.o.pid)
		procOK = err == nil
		proc0 = p
	}

	fmt.Fprintf(b.stderr, "pushlane bench: %s: opening %d connections to %s (users bench-%s-*)\n", b.o.mode, b.o.conns, b.t.wsURL, b.o.run)
	t0 := time.Now()
	b.dialAll(ctx)
	connectDur := time.Since(t0).Seconds()
	cpuConnected, _ := selfCPU()
	rep.ConnsOpen = b.open
	rep.ConnFailures = b.o.conns - b.open
	rep.ConnErrors = b.connErrs.snapshot()
	rep.ConnectSeconds = connectDur
	rep.ConnectRate = fmtRate(float64(b.open), connectDur)
	rep.ClientCPUConnectSeconds = cpuConnected - cpuStart

	if procOK {
		sleep(ctx, b.o.settle)
		p, err := readProc(b.o.pid)
		if err != nil {
			procOK = false
			fmt.Fprintf(b.stderr, "pushlane bench: --pid %d: %v\n", b.o.pid, err)
		} else {
			proc1 = p
			rep.ServerPID = ptr(b.o.pid)
			rep.ServerRSSBeforeKB = ptr(proc0.rssKB)
			rep.ServerRSSAfterKB = ptr(proc1.rssKB)
			if b.open > 0 {
				rep.ServerRSSPerConnKB = ptr(float64(proc1.rssKB-proc0.rssKB) / float64(b.open))
			}
			cpu := float64(proc1.ticks-proc0.ticks) / clockTicks
			rep.ServerCPUConnectSeconds = ptr(cpu)
			if b.open > 0 {
				rep.ServerCPUUsPerConn = ptr(cpu * 1e6 / float64(b.open))
			}
		}
	}

	cpuLoad0, _ := selfCPU()
	switch b.o.mode {
	case modeConns:
		fmt.Fprintf(b.stderr, "pushlane bench: holding %d connections for %s\n", b.open, b.o.hold)
		hold0 := time.Now()
		sleep(ctx, b.o.hold)
		rep.HoldSeconds = ptr(time.Since(hold0).Seconds())
	case modeUnicast:
		b.unicast(ctx, rep)
	case modeBroadcast:
		b.broadcast(ctx, rep)
	}
	if b.o.mode != modeConns {
		cpuLoad1, _ := selfCPU()
		load := cpuLoad1 - cpuLoad0
		rep.ClientCPULoadSeconds = ptr(load)
		if rep.Deliveries != nil && *rep.Deliveries > 0 {
			rep.ClientCPUUsPerDelivery = ptr(load * 1e6 / float64(*rep.Deliveries))
		}
		if procOK {
			if p, err := readProc(b.o.pid); err == nil {
				cpu := float64(p.ticks-proc1.ticks) / clockTicks
				rep.ServerCPULoadSeconds = ptr(cpu)
				if rep.Answered != nil && *rep.Answered > 0 {
					rep.ServerCPUUsPerMessage = ptr(cpu * 1e6 / float64(*rep.Answered))
				}
				if rep.Deliveries != nil && *rep.Deliveries > 0 {
					rep.ServerCPUUsPerDelivery = ptr(cpu * 1e6 / float64(*rep.Deliveries))
				}
			}
		}
	}

	b.closeAll()
	b.posts.close()
	b.api.CloseIdleConnections()
	rep.Dropped = b.dropped.Load()
	rep.DropReasons = b.drops.snapshot()
	rep.UnexpectedFrames = b.unexpected.Load()
	rep.AckErrors = b.ackErrors.Load()
	rep.HTTPErrors = b.httpErrs.snapshot()
	cpuEnd, maxRSS := selfCPU()
	rep.ClientCPUTotalSeconds = cpuEnd - cpuStart
	rep.ClientMaxRSSKB = maxRSS
	rep.ElapsedSeconds = time.Since(began).Seconds()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		rep.TimedOut = true
	case ctx.Err() != nil:
		rep.Interrupted = true
	}
	rep.Failures = failures(rep)
	rep.OK = len(rep.Failures) == 0
	return rep
}

// failures lists, in words, every reason the run is not clean.
func failures(r *Report) []string {
	out := []string{}
	add := func(cond bool, format string, a ...any) {
		if cond {
			out = append(out, fmt.Sprintf(format, a...))
		}
	}
	add(r.TimedOut, "--timeout reached")
	add(r.Interrupted, "interrupted")
	add(r.ConnFailures > 0, "%d connections failed", r.ConnFailures)
	add(r.Dropped > 0, "%d connections dropped", r.Dropped)
	if r.Answered != nil {
		want := deref(r.Messages)
		if r.Broadcasts != nil {
			want = *r.Broadcasts
		}
		add(*r.Answered < int64(want), "%d of %d publishes not answered 200", int64(want)-*r.Answered, want)
	}
	add(len(r.HTTPErrors) > 0, "http errors")
	add(deref(r.LostDeliveries) > 0, "%d deliveries lost", deref(r.LostDeliveries))
	add(deref(r.Duplicates) > 0, "%d duplicates", deref(r.Duplicates))
	add(deref(r.Misrouted) > 0, "%d misrouted", deref(r.Misrouted))
	add(r.AckErrors > 0, "%d acknowledgements not written", r.AckErrors)
	return out
}

func ptr[T any](v T) *T { return &v }

// limiter paces the publishes to o.rate per second in total; nil when unpaced.
func (b *bench) limiter() *rate.Limiter {
	if b.o.rate <= 0 {
		return nil
	}
	// The publishers are a closed loop: while all of them wait for slow answers nobody takes
	// tokens. A bucket of 100 ms lets them catch up after such a stall, so the average holds
	// (bursts stay bounded by the number of publishers in flight). It starts empty: no burst at
	// the start.
	burst := max(1, int(b.o.rate/10))
	lim := rate.NewLimiter(rate.Limit(b.o.rate), burst)
	lim.AllowN(time.Now(), burst)
	return lim
}

// noteHTTP records a failed publish: by status code, or by transport error.
func (b *bench) noteHTTP(status int, err error) {
	if err != nil {
		b.httpErrs.add("transport: " + errReason(err))
		return
	}
	b.httpErrs.add(strconv.Itoa(status))
}

// noteAPI counts a failed client call by its status, or as a transport error.
func (b *bench) noteAPI(err error) {
	var e *client.Error
	if errors.As(err, &e) {
		b.noteHTTP(e.StatusCode, nil)
		return
	}
	b.noteHTTP(0, err)
}

// received is the number of valid deliveries so far and the time of the last one.
func (b *bench) received() (n int64, last int64) {
	for _, s := range b.subs {
		if s != nil {
			n += s.frames.Load()
			last = max(last, s.lastRecv.Load())
		}
	}
	return n, last
}

// drainUntil waits until expected deliveries have arrived, the drain time after the last
// answer has passed, or ctx ends.
func (b *bench) drainUntil(ctx context.Context, expected int64) {
	deadline := time.Now().Add(b.o.drain)
	for {
		n, _ := b.received()
		if n >= expected || !time.Now().Before(deadline) {
			return
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return
		}
	}
}

// unicast publishes o.messages messages from o.publishers loops, round-robin over the users.
func (b *bench) unicast(ctx context.Context, rep *Report) {
	m, p := b.o.messages, b.o.publishers
	rep.Messages, rep.Publishers = ptr(m), ptr(p)
	if b.o.rate > 0 {
		rep.RateLimit = ptr(b.o.rate)
	}
	answered := make([]bool, m) // entry s is written only by the loop that sent s
	lastAnswer := make([]int64, p)
	var next, answeredN, expected atomic.Int64
	lim := b.limiter()
	serverBefore, serverErr := b.scrapeHistogram(ctx, publishToWrite)
	fmt.Fprintf(b.stderr, "pushlane bench: publishing %d messages from %d publishers\n", m, p)
	done := make(chan struct{})
	go b.progress(done, "publishing", func() string {
		n, _ := b.received()
		return fmt.Sprintf("%d/%d answered, %d delivered", answeredN.Load(), m, n)
	})
	start := b.clk.now()
	var wg sync.WaitGroup
	for w := range p {
		wg.Go(func() {
			body := make([]byte, 0, 160)
			for {
				s := int(next.Add(1) - 1)
				if s >= m || ctx.Err() != nil {
					return
				}
				if lim != nil && lim.Wait(ctx) != nil {
					return
				}
				user := s % b.o.users
				sentAt := b.clk.now()
				body = append(body[:0], `{"userId":"`...)
				body = append(body, b.userName(user)...)
				body = append(body, `","data":{"t":`...)
				body = strconv.AppendInt(body, sentAt, 10)
				body = append(body, `,"s":`...)
				body = strconv.AppendInt(body, int64(s), 10)
				body = append(body, `}}`...)
				status, _, err := b.posts.post(ctx, "/pushNews", body, false)
				if err != nil || status != http.StatusOK {
					if ctx.Err() == nil {
						b.noteHTTP(status, err)
					}
					continue
				}
				answered[s] = true
				answeredN.Add(1)
				expected.Add(int64(b.userConns[user]))
				lastAnswer[w] = b.clk.now()
				b.pubHist.record(w, lastAnswer[w]-sentAt)
			}
		})
	}
	wg.Wait()
	pubEnd := start
	for _, t := range lastAnswer {
		pubEnd = max(pubEnd, t)
	}
	fmt.Fprintf(b.stderr, "pushlane bench: %d answered; waiting up to %s for deliveries\n", answeredN.Load(), b.o.drain)
	b.drainUntil(ctx, expected.Load())
	close(done)
	if serverErr == nil {
		b.fillServerLatency(ctx, rep, serverBefore)
	} else {
		fmt.Fprintf(b.stderr, "pushlane bench: no server-side latency: %v\n", serverErr)
	}

	n, last := b.received()
	rep.Answered = ptr(answeredN.Load())
	if l := b.pubHist.summary(); l.n > 0 {
		rep.PublishP50, rep.PublishP99 = ptr(l.p50), ptr(l.p99)
	}
	pubSec := float64(pubEnd-start) / 1e9
	rep.PublishSeconds = ptr(pubSec)
	rep.PublishRate = ptr(fmtRate(float64(answeredN.Load()), pubSec))
	var lostMsgs, lostDeliveries, excess, unanswered int64
	for s := range m {
		got := int64(b.perMsg[s].Load())
		if !answered[s] {
			if got > 0 {
				unanswered++
			}
			continue
		}
		want := int64(b.userConns[s%b.o.users])
		if got < want {
			lostMsgs++
			lostDeliveries += want - got
		} else if got > want {
			excess += got - want
		}
	}
	b.fillDeliveries(rep, start, n, last, expected.Load())
	rep.LostMessages = ptr(lostMsgs)
	rep.LostDeliveries = ptr(lostDeliveries)
	rep.Duplicates = ptr(b.dups.Load() + excess)
	rep.Misrouted = ptr(b.misrouted.Load())
	rep.ReceivedUnanswered = ptr(unanswered)
}

// fillServerLatency reports the server's own part of the delivery latency: its publish-to-write
// histogram's change since before.
func (b *bench) fillServerLatency(ctx context.Context, rep *Report, before serverHistogram) {
	after, err := b.scrapeHistogram(ctx, publishToWrite)
	if err != nil {
		fmt.Fprintf(b.stderr, "pushlane bench: no server-side latency: %v\n", err)
		return
	}
	run, ok := after.since(before)
	if !ok {
		fmt.Fprintf(b.stderr, "pushlane bench: no server-side latency: the server's histogram was reset during the run\n")
		return
	}
	for _, q := range []struct {
		at  float64
		dst **float64
	}{{0.5, &rep.ServerWriteP50}, {0.99, &rep.ServerWriteP99}} {
		if v, ok := run.quantile(q.at); ok && !math.IsInf(v, 0) {
			*q.dst = ptr(v * 1e3)
		}
	}
}

// broadcast sends o.broadcasts broadcasts one after the other (or paced with --rate).
func (b *bench) broadcast(ctx context.Context, rep *Report) {
	k := b.o.broadcasts
	rep.Broadcasts = ptr(k)
	rep.Publishers = ptr(1)
	if b.o.rate > 0 {
		rep.RateLimit = ptr(b.o.rate)
	}
	answered := make([]bool, k)
	var answeredN int64
	lim := b.limiter()
	fmt.Fprintf(b.stderr, "pushlane bench: sending %d broadcasts to %d connections\n", k, b.open)
	var answeredNow atomic.Int64
	done := make(chan struct{})
	go b.progress(done, "broadcasting", func() string {
		n, _ := b.received()
		return fmt.Sprintf("%d/%d answered, %d delivered", answeredNow.Load(), k, n)
	})
	start := b.clk.now()
	pubEnd := start
	body := make([]byte, 0, 64)
	for s := range k {
		if ctx.Err() != nil {
			break
		}
		if lim != nil && lim.Wait(ctx) != nil {
			break
		}
		body = append(body[:0], `{"data":{"t":`...)
		body = strconv.AppendInt(body, b.clk.now(), 10)
		body = append(body, `,"s":`...)
		body = strconv.AppendInt(body, int64(s), 10)
		body = append(body, `}}`...)
		// Sent once, never retried by the client: a retry could deliver a broadcast twice.
		conns, err := b.api.Broadcast(ctx, json.RawMessage(body[len(`{"data":`):len(body)-1]))
		if err != nil {
			if ctx.Err() == nil {
				b.noteAPI(err)
			}
			continue
		}
		answered[s] = true
		answeredN++
		answeredNow.Store(answeredN)
		pubEnd = b.clk.now()
		if rep.ServerConnections == nil {
			rep.ServerConnections = ptr(conns)
		}
	}
	expected := answeredN * int64(b.open)
	fmt.Fprintf(b.stderr, "pushlane bench: %d answered; waiting up to %s for %d deliveries\n", answeredN, b.o.drain, expected)
	b.drainUntil(ctx, expected)
	close(done)

	n, last := b.received()
	rep.Answered = ptr(answeredN)
	pubSec := float64(pubEnd-start) / 1e9
	rep.PublishSeconds = ptr(pubSec)
	rep.PublishRate = ptr(fmtRate(float64(answeredN), pubSec))
	var lostMsgs, lostDeliveries, excess, unanswered int64
	for s := range k {
		got := int64(b.perMsg[s].Load())
		if !answered[s] {
			if got > 0 {
				unanswered++
			}
			continue
		}
		if want := int64(b.open); got < want {
			lostMsgs++
			lostDeliveries += want - got
		} else if got > want {
			excess += got - want
		}
	}
	b.fillDeliveries(rep, start, n, last, expected)
	rep.LostMessages = ptr(lostMsgs)
	rep.LostDeliveries = ptr(lostDeliveries)
	rep.Duplicates = ptr(b.dups.Load() + excess)
	rep.Misrouted = ptr(b.misrouted.Load())
	rep.ReceivedUnanswered = ptr(unanswered)
}

func (b *bench) fillDeliveries(rep *Report, start, n, last, expected int64) {
	rep.ExpectedDeliveries = ptr(expected)
	rep.Deliveries = ptr(n)
	sec := 0.0
	if n > 0 && last > start {
		sec = float64(last-start) / 1e9
	}
	rep.DeliverSeconds = ptr(sec)
	rep.DeliveriesPerSec = ptr(fmtRate(float64(n), sec))
	l := b.hist.summary()
	if l.n > 0 {
		rep.LatencyP50, rep.LatencyP90, rep.LatencyP99, rep.LatencyMax = ptr(l.p50), ptr(l.p90), ptr(l.p99), ptr(l.max)
	}
}
