package webpush

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"pushlane/module"
)

// The push service answers that matter (RFC 8030, 8292). The core imports no net/http.
const (
	statusOK              = 200
	statusCreated         = 201
	statusAccepted        = 202
	statusNotFound        = 404
	statusGone            = 410
	statusTooManyRequests = 429
)

// storeTimeout bounds one store call of the pusher.
const storeTimeout = 10 * time.Second

// run is the pusher's loop: poll the store every PollInterval (or at once when woken), until
// Close.
func (w *WebPush) run() {
	defer close(w.loopDone)
	tick := time.NewTicker(w.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-tick.C:
		case <-w.wake:
		}
		w.poll()
	}
}

// wakeUp makes the loop poll again without waiting for its tick.
func (w *WebPush) wakeUp() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// poll claims as many due pushes as there are free slots and starts one goroutine for each; it
// claims again while whole batches come back.
func (w *WebPush) poll() {
	for {
		free := cap(w.sem) - len(w.sem)
		if free == 0 || w.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(w.ctx, storeTimeout)
		due, err := w.store.ClaimDue(ctx, w.opts.Now(), free, w.opts.Lease)
		cancel()
		if err != nil {
			if w.ctx.Err() == nil {
				w.opts.Log.Warn("webpush: claiming due pushes failed; retried at the next poll", "err", err)
			}
			return
		}
		for _, d := range due {
			// Never blocks: only this loop takes slots, and it claimed at most the free ones.
			w.sem <- struct{}{}
			w.inFlight.Add(1)
			go func() {
				defer w.inFlight.Done()
				defer func() { <-w.sem }()
				w.handle(d)
			}()
		}
		if len(due) < free {
			return
		}
	}
}

// handle works one claimed record to its end: dropped, expanded, sent, removed, or retried.
func (w *WebPush) handle(d Due) {
	now := w.opts.Now()
	msg, pending, err := w.pendingMessage(d)
	switch {
	case err != nil:
		w.opts.Log.Warn("webpush: reading a due message failed; retried", "userId", d.UserID, "id", d.MsgID, "err", err)
		w.release(d, now)
		return
	case !pending:
		w.finish(d, nil, "read")
		return
	case msg.ExpiresAt.Sub(now) < time.Second:
		w.finish(d, nil, "expired")
		return
	}
	if d.FanOut() {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := w.store.ExpandDue(ctx, d, now); err != nil {
			if !errors.Is(err, ErrClaimLost) {
				w.opts.Log.Warn("webpush: expanding a due push failed; retried when its claim runs out", "userId", d.UserID, "id", d.MsgID, "err", err)
			}
			return
		}
		w.wakeUp()
		return
	}
	sub, found, err := w.subscription(d)
	switch {
	case err != nil:
		w.opts.Log.Warn("webpush: reading subscriptions failed; retried", "userId", d.UserID, "err", err)
		w.release(d, now)
		return
	case !found:
		w.finish(d, nil, "unsubscribed")
		return
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.opts.RequestTimeout)
	resp, err := w.sender.Send(ctx, sub, Payload(&msg), msg.ExpiresAt.Sub(now))
	cancel()
	now = w.opts.Now()
	m := w.opts.Metrics
	switch {
	case err != nil && w.ctx.Err() != nil: // Close cancelled the request: whoever runs next sends it
		w.release(d, now)
	case errors.Is(err, ErrEndpointRefused):
		m.Failed.WithLabelValues("refused").Inc()
		w.opts.Log.Warn("webpush: endpoint address refused at send time", "userId", d.UserID, "subscription", d.SubID, "err", err)
		w.finish(d, nil, "")
	case err != nil:
		m.Failed.WithLabelValues("network").Inc()
		w.opts.Log.Debug("webpush: no answer from the push service", "origin", sub.Origin(), "err", err)
		w.retry(d, msg, now, Response{})
	case resp.Status == statusCreated || resp.Status == statusOK || resp.Status == statusAccepted:
		w.store.MarkPushed(d.UserID, d.MsgID, now)
		m.Sent.Inc()
		w.finish(d, nil, "")
	case resp.Status == statusNotFound || resp.Status == statusGone:
		m.Failed.WithLabelValues("4xx").Inc()
		w.removeGone(d, sub)
	case resp.Status == statusTooManyRequests || resp.Status >= 500:
		m.Failed.WithLabelValues(statusClass(resp.Status)).Inc()
		w.retry(d, msg, now, resp)
	default:
		m.Failed.WithLabelValues(statusClass(resp.Status)).Inc()
		w.opts.Log.Info("webpush: push service refused a push; not retried", "origin", sub.Origin(), "status", resp.Status)
		w.finish(d, nil, "")
	}
}

// statusClass is "3xx", "4xx", "5xx" (other answers count as 4xx: the request was not taken).
func statusClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 300 && status < 400:
		return "3xx"
	}
	return "4xx"
}

// pendingMessage reads d's message if it is still in its user's unread queue and stored: a
// version 1 connection that was written it, or an ack from a version 2 client, took it out.
// Backlog sees every mark made before it is called (module.Store), so a mark made before the
// push came due always wins.
func (w *WebPush) pendingMessage(d Due) (module.Message, bool, error) {
	ctx, cancel := context.WithTimeout(w.ctx, storeTimeout)
	defer cancel()
	msgs, err := w.store.Backlog(ctx, d.UserID, module.BacklogQuery{After: d.MsgID - 1, Since: d.MsgID, Pending: true, Limit: 1})
	if err != nil {
		return module.Message{}, false, err
	}
	if len(msgs) == 0 || msgs[0].ID != d.MsgID {
		return module.Message{}, false, nil
	}
	return msgs[0], true, nil
}

// subscription finds d's subscription among its user's.
func (w *WebPush) subscription(d Due) (Subscription, bool, error) {
	ctx, cancel := context.WithTimeout(w.ctx, storeTimeout)
	defer cancel()
	subs, err := w.store.Subscriptions(ctx, d.UserID)
	if err != nil {
		return Subscription{}, false, err
	}
	for _, s := range subs {
		if s.ID == d.SubID {
			return s, true, nil
		}
	}
	return Subscription{}, false, nil
}

// retry schedules the next attempt: after Retry-After when the push service sent one, else
// after the backoff of d's attempt; not at all when the message expires first.
func (w *WebPush) retry(d Due, msg module.Message, now time.Time, resp Response) {
	wait := w.backoff(d.Attempt)
	if resp.HasRetryAfter {
		wait = resp.RetryAfter
	}
	at := now.Add(wait)
	if msg.ExpiresAt.Sub(at) < time.Second {
		w.finish(d, nil, "expired")
		return
	}
	if w.finish(d, []Retry{{SubID: d.SubID, At: at, Attempt: d.Attempt + 1}}, "") {
		w.opts.Metrics.Retried.Inc()
	}
}

// backoff is MinBackoff doubled per attempt, capped at MaxBackoff, with "equal jitter" (half
// fixed, half random) so that pushes failed together by one outage do not come back together.
func (w *WebPush) backoff(attempt int) time.Duration {
	d := w.opts.MinBackoff
	for i := 0; i < attempt && d < w.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// removeGone deletes a subscription its push service says is gone (404, 410).
func (w *WebPush) removeGone(d Due, sub Subscription) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	ok, err := w.store.DeleteSubscription(ctx, sub.UserID, sub.ID)
	switch {
	case err != nil:
		w.opts.Log.Warn("webpush: deleting a gone subscription failed", "userId", sub.UserID, "err", err)
	case ok:
		w.opts.Metrics.Removed.WithLabelValues("gone").Inc()
	}
	w.finish(d, nil, "")
}

// release hands a claimed record back, due at now with the same attempt count: the pusher is
// closing, or the store could not be read.
func (w *WebPush) release(d Due, now time.Time) {
	w.finish(d, []Retry{{SubID: d.SubID, At: now, Attempt: d.Attempt}}, "")
}

// finish ends a claimed record (adding retries) and counts a drop when dropped names its
// reason. It reports whether the store took it. It runs on its own context: a closing pusher
// still hands its records back.
func (w *WebPush) finish(d Due, retries []Retry, dropped string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := w.store.FinishDue(ctx, d, retries); err != nil {
		if !errors.Is(err, ErrClaimLost) {
			w.opts.Log.Warn("webpush: finishing a due push failed; it comes back when its claim runs out", "userId", d.UserID, "id", d.MsgID, "err", err)
		}
		return false
	}
	if dropped != "" {
		w.opts.Metrics.Dropped.WithLabelValues(dropped).Inc()
	}
	return true
}
