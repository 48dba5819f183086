package webpush

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Web Push instruments; safe for concurrent use.
type Metrics struct {
	// Sent counts pushes a push service accepted (201, 200, 202).
	Sent prometheus.Counter
	// Failed counts attempts that were not accepted, by class: 3xx, 4xx, 5xx (status
	// classes; 429 is a 4xx), network (no answer), refused (the endpoint policy refused the
	// address at send time).
	Failed *prometheus.CounterVec
	// Retried counts retries scheduled (after a 429, a 5xx or no answer).
	Retried prometheus.Counter
	// Removed counts subscriptions removed, by reason: gone (the push service answered 404 or
	// 410), replaced (beyond webpush.maxPerUser), deleted (DELETE /webpush/subscriptions/:id).
	Removed *prometheus.CounterVec
	// Dropped counts due pushes given up without sending, by reason: read (the message left the
	// unread queue in time, or is no longer stored), expired (its ttl ran out before an
	// attempt could be made), unsubscribed (the subscription was removed meanwhile).
	Dropped *prometheus.CounterVec
	// Registered counts subscriptions created (not re-registrations of the same endpoint).
	Registered prometheus.Counter
}

// NewMetrics creates the instruments and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_webpush_sent_total",
			Help: "Web Push messages a push service accepted (201, 200 or 202)."}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushlane_webpush_failed_total",
			Help: "Web Push attempts not accepted, by class: 3xx, 4xx, 5xx, network (no answer), refused (endpoint address not allowed)."}, []string{"class"}),
		Retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_webpush_retried_total",
			Help: "Web Push retries scheduled after a 429, a 5xx or no answer."}),
		Removed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushlane_webpush_subscriptions_removed_total",
			Help: "Push subscriptions removed, by reason: gone (404/410 from the push service), replaced (beyond webpush.maxPerUser), deleted (by the API)."}, []string{"reason"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushlane_webpush_dropped_total",
			Help: "Due pushes given up without sending, by reason: read (left the unread queue or no longer stored), expired, unsubscribed."}, []string{"reason"}),
		Registered: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_webpush_subscriptions_registered_total",
			Help: "Push subscriptions created (a re-registration of the same endpoint is not counted)."}),
	}
	for _, c := range []string{"3xx", "4xx", "5xx", "network", "refused"} {
		m.Failed.WithLabelValues(c)
	}
	for _, r := range []string{"gone", "replaced", "deleted"} {
		m.Removed.WithLabelValues(r)
	}
	for _, r := range []string{"read", "expired", "unsubscribed"} {
		m.Dropped.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Sent, m.Failed, m.Retried, m.Removed, m.Dropped, m.Registered)
	}
	return m
}
