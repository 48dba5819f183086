package webpush

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"pushlane/module"
)

// Sender makes one push request (RFC 8030) to sub's endpoint: the payload encrypted for the
// subscription (RFC 8291), VAPID (RFC 8292), TTL, Urgency: normal; it never follows a redirect.
// An error means no answer: ErrEndpointRefused when the endpoint policy refused the address it
// was about to connect to, anything else a network failure or timeout. api/webpush implements it.
type Sender interface {
	Send(ctx context.Context, sub Subscription, payload []byte, ttl time.Duration) (Response, error)
}

// Response is a push service's answer.
type Response struct {
	Status     int
	RetryAfter time.Duration // from a Retry-After header; meaningful when HasRetryAfter
	// HasRetryAfter says the answer carried a usable Retry-After.
	HasRetryAfter bool
}

// Options tune WebPush. Zero values take the defaults named on each field.
type Options struct {
	MaxPerUser int             // webpush.maxPerUser; 10
	Policy     *EndpointPolicy // which endpoints may be registered; all public https:// ones when nil
	PublicKey  string          // webpush.vapidPublicKey, served to browsers
	Metrics    *Metrics        // may be nil
	Log        *slog.Logger    // may be nil

	// Now is the clock of due times and retries; time.Now. Tests move it by hand.
	Now func() time.Time
	// PollInterval is how often the store is asked for due pushes; 250ms. It bounds how late
	// a push goes out after it is due.
	PollInterval time.Duration
	// Concurrency bounds the push requests in flight on this node; 16. A slow push service
	// holds at most this many goroutines and connections, never a publisher or a WebSocket.
	Concurrency int
	// RequestTimeout bounds one push request, connection included; 30s.
	RequestTimeout time.Duration
	// Lease is how long a claimed due push is hidden from other nodes; 2m. It must outlast
	// RequestTimeout, or a slow request's push could be sent again by another node.
	Lease time.Duration
	// MinBackoff and MaxBackoff bound the wait before retrying a 5xx, a 429 without
	// Retry-After, or no answer: MinBackoff doubling per attempt, with jitter, up to MaxBackoff;
	// 5s and 10m.
	MinBackoff, MaxBackoff time.Duration
}

func (o *Options) fill() {
	if o.MaxPerUser <= 0 {
		o.MaxPerUser = 10
	}
	if o.Policy == nil {
		o.Policy = NewEndpointPolicy(nil, nil)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 30 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	o.Lease = max(o.Lease, 2*o.RequestTimeout)
	if o.MinBackoff <= 0 {
		o.MinBackoff = 5 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Minute
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
}

// WebPush registers subscriptions and sends the pushes that come due. Start runs its pusher: one
// loop that claims due pushes from the store, at most Options.Concurrency at a time, and one
// goroutine per claimed push, each owned by the loop and waited for by Close. Safe for
// concurrent use.
type WebPush struct {
	store  Store
	sender Sender
	opts   Options

	ctx      context.Context // cancelled by Close: ends in-flight requests
	cancel   context.CancelFunc
	done     chan struct{} // closed by Close: stops the loop
	loopDone chan struct{}
	wake     chan struct{} // new due records (expanded fan-outs): poll again now
	sem      chan struct{} // one slot per push in flight
	inFlight sync.WaitGroup

	startOnce, closeOnce sync.Once
}

// New builds the Web Push service on store, sending with sender.
func New(store Store, sender Sender, o Options) *WebPush {
	o.fill()
	ctx, cancel := context.WithCancel(context.Background())
	return &WebPush{
		store: store, sender: sender, opts: o,
		ctx: ctx, cancel: cancel,
		done: make(chan struct{}), loopDone: make(chan struct{}),
		wake: make(chan struct{}, 1),
		sem:  make(chan struct{}, o.Concurrency),
	}
}

// Start starts the pusher. Without it, WebPush only registers subscriptions.
func (w *WebPush) Start() {
	w.startOnce.Do(func() { go w.run() })
}

// Close stops the pusher: it claims nothing more, cancels the requests in flight, hands their
// pushes back to the store as due now (so a restarted or another node sends them at once) and
// waits for its goroutines. Call it before closing the store.
func (w *WebPush) Close() {
	w.closeOnce.Do(func() {
		close(w.done)
		w.cancel()
		started := true
		w.startOnce.Do(func() { started = false }) // a pusher never started has no loop
		if started {
			<-w.loopDone
		}
		w.inFlight.Wait()
	})
}

// PublicKey is the VAPID public key browsers subscribe with.
func (w *WebPush) PublicKey() string { return w.opts.PublicKey }

// newID is a subscription id: 16 random bytes, base64url.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Register stores the PushSubscription JSON body for userID (which the caller validated). It
// returns the stored subscription and whether it is new: registering an endpoint the user
// already has keeps its id. Errors: ErrBadSubscription (400: malformed, or an endpoint the
// policy refuses), module.ErrUnavailable (the store failed).
func (w *WebPush) Register(ctx context.Context, userID string, body []byte) (Subscription, bool, error) {
	sub, err := ParseSubscription(userID, body)
	if err != nil {
		return Subscription{}, false, err
	}
	if err := w.opts.Policy.Check(ctx, sub.Endpoint); err != nil {
		return Subscription{}, false, err
	}
	sub.ID = newID()
	sub.CreatedAt = time.Now()
	saved, created, removed, err := w.store.SaveSubscription(ctx, sub, w.opts.MaxPerUser)
	if err != nil {
		return Subscription{}, false, fmt.Errorf("%w: store save subscription: %w", module.ErrUnavailable, err)
	}
	if created {
		w.opts.Metrics.Registered.Inc()
	}
	if removed > 0 {
		w.opts.Metrics.Removed.WithLabelValues("replaced").Add(float64(removed))
	}
	return saved, created, nil
}

// Delete removes one subscription of the user; false when the user has none with that id.
func (w *WebPush) Delete(ctx context.Context, userID, id string) (bool, error) {
	ok, err := w.store.DeleteSubscription(ctx, userID, id)
	if err != nil {
		return false, fmt.Errorf("%w: store delete subscription: %w", module.ErrUnavailable, err)
	}
	if ok {
		w.opts.Metrics.Removed.WithLabelValues("deleted").Inc()
	}
	return ok, nil
}

// List returns the user's subscriptions, oldest first.
func (w *WebPush) List(ctx context.Context, userID string) ([]Subscription, error) {
	subs, err := w.store.Subscriptions(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("%w: store subscriptions: %w", module.ErrUnavailable, err)
	}
	return subs, nil
}

// Due counts the due pushes in the store, claimed or not.
func (w *WebPush) Due(ctx context.Context) (int, error) { return w.store.CountDue(ctx) }
