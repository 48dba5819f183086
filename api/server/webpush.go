package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sender "pushlane/api/webpush"
	"pushlane/config"
	"pushlane/module"
	"pushlane/module/webpush"
)

// Option tunes New; only tests need one.
type Option func(*nodeOptions)

type nodeOptions struct {
	webPush WebPushTuning
}

// WebPushTuning changes how a node's Web Push behaves, for tests: a clock they move, short polls
// and backoffs, a push service certificate to trust, a resolver they control. Zero fields keep
// the defaults.
type WebPushTuning struct {
	Now          func() time.Time
	PollInterval time.Duration
	MinBackoff   time.Duration
	MaxBackoff   time.Duration
	RootCAs      *x509.CertPool
	Resolver     webpush.Resolver
}

// WithWebPush tunes the node's Web Push (with webpush.enabled).
func WithWebPush(t WebPushTuning) Option { return func(o *nodeOptions) { o.webPush = t } }

// nodePush is a node's Web Push: the service (registrations and the pusher) and its sender.
type nodePush struct {
	service *webpush.WebPush
	sender  *sender.Sender
}

// newNodePush builds and starts Web Push on the node's store.
func newNodePush(cfg config.Config, store module.Store, reg *prometheus.Registry, log *slog.Logger, t WebPushTuning) (*nodePush, error) {
	ps, ok := store.(webpush.Store)
	if !ok {
		return nil, fmt.Errorf("webpush.enabled: store.driver %s does not keep push subscriptions", cfg.Store.Driver)
	}
	w := cfg.WebPush
	policy := webpush.NewEndpointPolicy(w.AllowedEndpointOrigins, t.Resolver)
	s := sender.New(sender.Options{PublicKey: w.VAPIDPublicKey, PrivateKey: w.VAPIDPrivateKey, Subject: w.Subject,
		Policy: policy, RootCAs: t.RootCAs})
	svc := webpush.New(ps, s, webpush.Options{
		MaxPerUser: w.MaxPerUser, Policy: policy, PublicKey: w.VAPIDPublicKey,
		Metrics: webpush.NewMetrics(reg), Log: log,
		Now: t.Now, PollInterval: t.PollInterval, MinBackoff: t.MinBackoff, MaxBackoff: t.MaxBackoff,
	})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pushlane_webpush_due",
		Help: "Due Web Push records in the store (waiting, claimed or to be retried), on every node alike."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, err := svc.Due(ctx)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		}))
	svc.Start()
	log.Info("web push on", "delay", w.Delay, "maxPerUser", w.MaxPerUser, "allowedEndpointOrigins", w.AllowedEndpointOrigins)
	return &nodePush{service: svc, sender: s}, nil
}

func (p *nodePush) close() {
	p.service.Close()
	p.sender.Close()
}

// WebPush is the node's Web Push service; nil when webpush.enabled is false.
func (a *Node) WebPush() *webpush.WebPush {
	if a.push == nil {
		return nil
	}
	return a.push.service
}
