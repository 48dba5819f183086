package module

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the core's Prometheus instruments. Build one per process (or per test) with
// NewMetrics; every field is safe for concurrent use.
type Metrics struct {
	Connections     prometheus.Gauge
	UsersOnline     prometheus.Gauge
	Published       prometheus.Counter
	Delivered       *prometheus.CounterVec // by kind: message, backlog, broadcast
	Queued          prometheus.Gauge
	Expired         prometheus.Counter
	Trimmed         prometheus.Counter
	SlowConsumers   prometheus.Counter
	PongTimeouts    prometheus.Counter
	Broadcasts      prometheus.Counter
	DeliveryLatency prometheus.Histogram
	StoreLatency    *prometheus.HistogramVec // by op
	AcksReceived    prometheus.Counter
	AcksDropped     prometheus.Counter
	// StatusChanges counts the stored messages whose status the store changed, by the status
	// reached: "sent" (first written to any connection), "acked", "pushed" (Web Push). Stores
	// count each message once per status.
	StatusChanges *prometheus.CounterVec

	// IdempotentReplays counts publishes answered from an earlier request with the same
	// Idempotency-Key (nothing stored or delivered again).
	IdempotentReplays prometheus.Counter
	// StatusLookups counts GET /messages/:userId/:id answers by what they said: the message's
	// status (pending, sent, acked) or not_found. It shows what backends find when they ask,
	// not how many messages are in each state (that would take a scan of the store).
	StatusLookups *prometheus.CounterVec

	// The per-frame counters, resolved once: a label lookup hashes its values on every call.
	deliveredLive, deliveredBacklog, deliveredBroadcast prometheus.Counter
}

// NewMetrics creates the instruments and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushlane_connections", Help: "Subscriber connections (WebSocket and SSE) registered on this node."}),
		UsersOnline: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushlane_users_online", Help: "Users with at least one connection on this node."}),
		Published:   prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_messages_published_total", Help: "Messages accepted and stored (one per recipient)."}),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushlane_frames_delivered_total",
			Help: "Data frames written to connections, by kind (live, backlog, broadcast)."}, []string{"kind"}),
		Queued:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "pushlane_frames_queued", Help: "Frames waiting in connection send queues."}),
		Expired:       prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_messages_expired_total", Help: "Stored messages removed because their ttl passed."}),
		Trimmed:       prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_messages_trimmed_total", Help: "Stored messages removed beyond store.maxPerUser."}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_slow_consumer_closes_total", Help: "Connections closed with 4001 because their send queue overflowed."}),
		PongTimeouts:  prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_pong_timeouts_total", Help: "Connections dropped after websocket.pongWait of silence."}),
		Broadcasts:    prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_broadcasts_total", Help: "Broadcasts accepted."}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pushlane_publish_to_write_seconds",
			Help:    "Time from accepting a message to writing it to a live connection.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		StoreLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pushlane_store_seconds",
			Help:    "Store operation latency, by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"op"}),
		IdempotentReplays: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_idempotent_replays_total",
			Help: "Publishes answered as a replay of an earlier request with the same Idempotency-Key (nothing stored or delivered again)."}),
		StatusLookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushlane_status_lookups_total",
			Help: "GET /messages/:userId/:id answers, by the status found (pending, sent, acked) or not_found."}, []string{"result"}),
		AcksReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_acks_received_total", Help: "Acknowledgements received from version 2 clients."}),
		StatusChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pushlane_messages_status_total",
			Help: "Stored messages that reached a status: sent (first written to a connection), acked, pushed (Web Push)."}, []string{"status"}),
		AcksDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "pushlane_acks_dropped_total",
			Help: "Acknowledgements ignored because a connection sent more than 2,000 a second (the messages stay unacknowledged and come back)."}),
	}
	m.deliveredLive = m.Delivered.WithLabelValues("live")
	m.deliveredBacklog = m.Delivered.WithLabelValues("backlog")
	m.deliveredBroadcast = m.Delivered.WithLabelValues("broadcast")
	if reg != nil {
		reg.MustRegister(m.Connections, m.UsersOnline, m.Published, m.Delivered, m.Queued, m.Expired, m.Trimmed,
			m.SlowConsumers, m.PongTimeouts, m.Broadcasts, m.DeliveryLatency, m.StoreLatency, m.IdempotentReplays, m.StatusLookups, m.AcksReceived, m.AcksDropped, m.StatusChanges)
	}
	return m
}
