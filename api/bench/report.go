package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is every figure of a run; it is printed as the last line of the output, one JSON
// object. Figures a mode does not measure, or that need --pid, are null.
type Report struct {
	Mode           string   `json:"mode"`
	Server         string   `json:"server"`
	Run            string   `json:"run"`
	OK             bool     `json:"ok"`       // every subscriber connected and stayed, nothing lost, duplicated or refused
	Failures       []string `json:"failures"` // why not ok, in words
	TimedOut       bool     `json:"timed_out"`
	Interrupted    bool     `json:"interrupted"`
	ElapsedSeconds float64  `json:"elapsed_seconds"`

	Conns           int            `json:"conns"`
	Users           int            `json:"users"`
	Ack             bool           `json:"ack"` // version 2 subscribers acknowledging every message
	DialConcurrency int            `json:"dial_concurrency"`
	SourceAddrs     int            `json:"source_addrs"` // local addresses the subscribers were spread over (0: one)
	ConnsOpen       int            `json:"conns_open"`
	ConnFailures    int            `json:"conn_failures"`
	ConnErrors      map[string]int `json:"conn_errors"`
	ConnectSeconds  float64        `json:"connect_seconds"`
	ConnectRate     float64        `json:"connect_rate"` // connections opened per second
	Dropped         int64          `json:"dropped"`      // connections ended by the server or the network before the end
	DropReasons     map[string]int `json:"drop_reasons"`
	HoldSeconds     *float64       `json:"hold_seconds"`

	Messages          *int           `json:"messages"`
	Broadcasts        *int           `json:"broadcasts"`
	Publishers        *int           `json:"publishers"`
	RateLimit         *float64       `json:"rate_limit"` // null: unpaced
	Answered          *int64         `json:"answered"`   // publishes answered 200
	HTTPErrors        map[string]int `json:"http_errors"`
	PublishSeconds    *float64       `json:"publish_seconds"`
	PublishRate       *float64       `json:"publish_rate"` // answered per second
	ServerConnections *int           `json:"server_connections"`

	ExpectedDeliveries *int64   `json:"expected_deliveries"`
	Deliveries         *int64   `json:"deliveries"`
	DeliverSeconds     *float64 `json:"deliver_seconds"` // first publish sent to last frame received
	DeliveriesPerSec   *float64 `json:"deliveries_per_sec"`
	LatencyP50         *float64 `json:"latency_p50_ms"`
	LatencyP90         *float64 `json:"latency_p90_ms"`
	LatencyP99         *float64 `json:"latency_p99_ms"`
	LatencyMax         *float64 `json:"latency_max_ms"`
	PublishP50         *float64 `json:"publish_p50_ms"` // unicast: publish sent to its answer
	PublishP99         *float64 `json:"publish_p99_ms"`
	ServerWriteP50     *float64 `json:"server_publish_to_write_p50_ms"` // unicast: the server's histogram, stored to written
	ServerWriteP99     *float64 `json:"server_publish_to_write_p99_ms"`
	LostMessages       *int64   `json:"lost_messages"`   // answered, and missing on at least one connection
	LostDeliveries     *int64   `json:"lost_deliveries"` // (message, connection) pairs missing
	Duplicates         *int64   `json:"duplicates"`
	Misrouted          *int64   `json:"misrouted"`
	ReceivedUnanswered *int64   `json:"received_unanswered"` // delivered although the publish failed
	UnexpectedFrames   int64    `json:"unexpected_frames"`
	AckErrors          int64    `json:"ack_errors"` // --ack: acknowledgements that could not be written

	ServerPID               *int     `json:"server_pid"`
	ServerRSSBeforeKB       *int64   `json:"server_rss_before_kb"`
	ServerRSSAfterKB        *int64   `json:"server_rss_after_kb"`
	ServerRSSPerConnKB      *float64 `json:"server_rss_per_conn_kb"`
	ServerCPUConnectSeconds *float64 `json:"server_cpu_connect_seconds"`
	ServerCPUUsPerConn      *float64 `json:"server_cpu_us_per_conn"`
	ServerCPULoadSeconds    *float64 `json:"server_cpu_load_seconds"`
	ServerCPUUsPerMessage   *float64 `json:"server_cpu_us_per_message"`
	ServerCPUUsPerDelivery  *float64 `json:"server_cpu_us_per_delivery"`

	ClientCPUConnectSeconds float64  `json:"client_cpu_connect_seconds"`
	ClientCPULoadSeconds    *float64 `json:"client_cpu_load_seconds"`
	ClientCPUUsPerDelivery  *float64 `json:"client_cpu_us_per_delivery"`
	ClientCPUTotalSeconds   float64  `json:"client_cpu_total_seconds"`
	ClientMaxRSSKB          int64    `json:"client_max_rss_kb"`
}

// printReport writes the human summary, aligned, then the JSON line.
func printReport(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(label, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, a...)) }

	line("mode", "%s (run %s) against %s", r.Mode, r.Run, r.Server)
	spread := "one source address"
	if r.SourceAddrs > 0 {
		spread = fmt.Sprintf("%d source addresses", r.SourceAddrs)
	}
	acks := ""
	if r.Ack {
		acks = ", version 2, every message acknowledged"
	}
	line("connections", "%d/%d open, %d failed, %d users, %s%s", r.ConnsOpen, r.Conns, r.ConnFailures, r.Users, spread, acks)
	line("connect", "%.2fs at %.0f conns/s (%d at once)", r.ConnectSeconds, r.ConnectRate, r.DialConcurrency)
	if len(r.ConnErrors) > 0 {
		line("connect errors", "%s", fmtTally(r.ConnErrors))
	}
	if r.HoldSeconds != nil {
		line("held", "%.1fs", *r.HoldSeconds)
	}
	if r.Answered != nil {
		what, sent := "messages", r.Messages
		if r.Broadcasts != nil {
			what, sent = "broadcasts", r.Broadcasts
		}
		pace := "unpaced"
		if r.RateLimit != nil {
			pace = fmt.Sprintf("paced at %.0f/s", *r.RateLimit)
		}
		pubs := fmt.Sprintf("%d publishers", deref(r.Publishers))
		if deref(r.Publishers) == 1 {
			pubs = "1 publisher, one after the other"
		}
		line("publish", "%d/%d %s answered in %.2fs: %.0f/s (%s, %s)", *r.Answered, deref(sent), what,
			deref(r.PublishSeconds), deref(r.PublishRate), pubs, pace)
		if r.ServerConnections != nil {
			line("server connections", "%d (first broadcast's answer)", *r.ServerConnections)
		}
		if len(r.HTTPErrors) > 0 {
			line("http errors", "%s", fmtTally(r.HTTPErrors))
		} else {
			line("http errors", "none")
		}
		line("deliveries", "%d/%d in %.2fs: %.0f/s", deref(r.Deliveries), deref(r.ExpectedDeliveries),
			deref(r.DeliverSeconds), deref(r.DeliveriesPerSec))
		if r.LatencyP50 != nil {
			line("latency", "p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms", *r.LatencyP50, *r.LatencyP90, *r.LatencyP99, *r.LatencyMax)
		} else {
			line("latency", "no deliveries")
		}
		if r.PublishP50 != nil {
			line("publish answered", "p50 %.2fms  p99 %.2fms (request sent to answer received)", *r.PublishP50, *r.PublishP99)
		}
		if r.ServerWriteP50 != nil && r.ServerWriteP99 != nil {
			line("server part", "p50 %.2fms  p99 %.2fms (stored to written, the server's %s)", *r.ServerWriteP50, *r.ServerWriteP99, publishToWrite)
		}
		line("lost", "%d messages (%d deliveries), %d duplicates, %d misrouted", deref(r.LostMessages),
			deref(r.LostDeliveries), deref(r.Duplicates), deref(r.Misrouted))
		if deref(r.ReceivedUnanswered) > 0 {
			line("received unanswered", "%d (publish failed but was delivered)", *r.ReceivedUnanswered)
		}
	}
	if r.UnexpectedFrames > 0 {
		line("unexpected frames", "%d", r.UnexpectedFrames)
	}
	if r.AckErrors > 0 {
		line("ack errors", "%d acknowledgements could not be written", r.AckErrors)
	}
	if r.Dropped > 0 {
		line("dropped", "%d connections ended early: %s", r.Dropped, fmtTally(r.DropReasons))
	} else {
		line("dropped", "none")
	}
	if r.ServerPID != nil {
		perConn := ""
		if r.ServerRSSPerConnKB != nil {
			perConn = fmt.Sprintf(" = %.1f KB per connection", *r.ServerRSSPerConnKB)
		}
		line("server rss", "%s -> %s (pid %d)%s", fmtKB(*r.ServerRSSBeforeKB), fmtKB(*r.ServerRSSAfterKB), *r.ServerPID, perConn)
		line("server cpu connect", "%.2fs = %.0f µs per connection", deref(r.ServerCPUConnectSeconds), deref(r.ServerCPUUsPerConn))
		if r.ServerCPULoadSeconds != nil {
			line("server cpu load", "%.2fs = %.1f µs per %s, %.1f µs per delivery", *r.ServerCPULoadSeconds,
				deref(r.ServerCPUUsPerMessage), strings.TrimSuffix(perWhat(r), "s"), deref(r.ServerCPUUsPerDelivery))
		}
	}
	client := fmt.Sprintf("%.2fs connect", r.ClientCPUConnectSeconds)
	if r.ClientCPULoadSeconds != nil {
		client += fmt.Sprintf(", %.2fs load (%.1f µs per delivery)", *r.ClientCPULoadSeconds, deref(r.ClientCPUUsPerDelivery))
	}
	line("client cpu", "%s, %.2fs total, max rss %s", client, r.ClientCPUTotalSeconds, fmtKB(r.ClientMaxRSSKB))
	verdict := "OK"
	if !r.OK {
		verdict = "FAILED: " + strings.Join(r.Failures, ", ")
	}
	line("result", "%s in %.1fs", verdict, r.ElapsedSeconds)
	_ = tw.Flush()

	roundFloats(r)
	raw, err := json.Marshal(r)
	if err != nil { // cannot happen: only numbers, strings, bools and string maps
		raw = []byte(`{"error":"report not encodable"}`)
	}
	fmt.Fprintf(w, "%s\n", raw)
}

// roundFloats keeps 4 decimals of every figure (0.1 µs of a latency in ms), for a readable line.
func roundFloats(r *Report) {
	round := func(f float64) float64 { return math.Round(f*1e4) / 1e4 }
	v := reflect.ValueOf(r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.Float64:
			f.SetFloat(round(f.Float()))
		case f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.Float64:
			f.Elem().SetFloat(round(f.Elem().Float()))
		}
	}
}

func perWhat(r *Report) string {
	if r.Broadcasts != nil {
		return "broadcasts"
	}
	return "messages"
}

func deref[T int | int64 | float64](p *T) T {
	if p == nil {
		return 0
	}
	return *p
}

// fmtTally lists the reasons, most frequent first.
func fmtTally(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
