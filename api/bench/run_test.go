package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pushlane/config"
)

// result is one Run: its exit code and its output.
type result struct {
	code   int
	stdout string
	stderr string
}

func runBench(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := Run(ctx, args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// runOK runs pushlane bench and requires exit code 0.
func runOK(t *testing.T, args ...string) result {
	t.Helper()
	r := runBench(t, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return r
}

// lastJSON checks that the last stdout line is one JSON object holding every key of Report.
func lastJSON(t *testing.T, r result) map[string]any {
	t.Helper()
	out := strings.TrimRight(r.stdout, "\n")
	last := out[strings.LastIndexByte(out, '\n')+1:]
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(last))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("last stdout line is not a JSON object: %v\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	if dec.More() {
		t.Fatalf("last stdout line holds more than one JSON value: %s", last)
	}
	for _, k := range []string{
		"mode", "server", "run", "ok", "failures", "timed_out", "conns", "conns_open", "conn_failures", "conn_errors",
		"connect_seconds", "connect_rate", "dropped", "hold_seconds", "messages", "broadcasts", "answered",
		"http_errors", "publish_rate", "expected_deliveries", "deliveries", "deliveries_per_sec",
		"latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_max_ms", "lost_messages",
		"lost_deliveries", "duplicates", "server_rss_before_kb", "server_rss_after_kb",
		"server_rss_per_conn_kb", "server_cpu_connect_seconds", "server_cpu_load_seconds",
		"server_cpu_us_per_message", "server_cpu_us_per_delivery", "client_cpu_total_seconds",
	} {
		if _, ok := m[k]; !ok {
			t.Errorf("report has no %q: %s", k, last)
		}
	}
	return m
}

func num(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("%s = %v, want a number", key, m[key])
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return f
}

func wantNum(t *testing.T, m map[string]any, key string, want float64) {
	t.Helper()
	if got := num(t, m, key); got != want {
		t.Errorf("%s = %v, want %v", key, got, want)
	}
}

// pidArgs measures this test process, which hosts the server, when /proc is there.
func pidArgs() []string {
	if _, err := readProc(os.Getpid()); err != nil {
		return nil
	}
	return []string{"--pid", strconv.Itoa(os.Getpid()), "--settle", "10ms"}
}

func TestConns(t *testing.T) {
	n := newNode(t, "memory", nil)
	args := append([]string{"conns", "--server", n.srv.URL, "--conns", "50", "--dial-concurrency", "8", "--hold", "200ms"}, pidArgs()...)
	r := runOK(t, args...)
	m := lastJSON(t, r)
	wantNum(t, m, "conns_open", 50)
	wantNum(t, m, "conn_failures", 0)
	wantNum(t, m, "dropped", 0)
	if num(t, m, "connect_rate") <= 0 {
		t.Errorf("connect_rate %v", m["connect_rate"])
	}
	if m["ok"] != true || m["mode"] != "conns" || len(m["failures"].([]any)) != 0 {
		t.Errorf("ok %v mode %v failures %v", m["ok"], m["mode"], m["failures"])
	}
	if pidArgs() != nil {
		num(t, m, "server_rss_per_conn_kb")
		num(t, m, "server_cpu_us_per_conn")
	}
	if !strings.Contains(r.stdout, "connections") || !strings.Contains(r.stdout, "result") {
		t.Errorf("no human summary:\n%s", r.stdout)
	}
}

func TestUnicast(t *testing.T) {
	n := newNode(t, "sqlite", func(c *config.Config) {
		c.Auth.APIKeys = []string{"bench-key"}
		c.Auth.JWTSecret = "bench-secret"
	})
	args := append([]string{"unicast", "--server", n.srv.URL, "--key", "bench-key", "--jwt-secret", "bench-secret",
		"--conns", "20", "--messages", "500", "--publishers", "4"}, pidArgs()...)
	r := runOK(t, args...)
	m := lastJSON(t, r)
	wantNum(t, m, "conns_open", 20)
	wantNum(t, m, "answered", 500)
	wantNum(t, m, "expected_deliveries", 500)
	wantNum(t, m, "deliveries", 500)
	wantNum(t, m, "lost_messages", 0)
	wantNum(t, m, "lost_deliveries", 0)
	wantNum(t, m, "duplicates", 0)
	wantNum(t, m, "misrouted", 0)
	if p50, max := num(t, m, "latency_p50_ms"), num(t, m, "latency_max_ms"); p50 <= 0 || p50 > max {
		t.Errorf("latency p50 %v max %v", p50, max)
	}
	if num(t, m, "publish_rate") <= 0 || num(t, m, "deliveries_per_sec") <= 0 {
		t.Errorf("publish_rate %v deliveries_per_sec %v", m["publish_rate"], m["deliveries_per_sec"])
	}
	if len(m["http_errors"].(map[string]any)) != 0 {
		t.Errorf("http errors %v", m["http_errors"])
	}
	// The split of the latency: the publish's round trip, and the server's own part from its
	// /metrics (scraped before and after the run).
	if p50, p99 := num(t, m, "publish_p50_ms"), num(t, m, "publish_p99_ms"); p50 <= 0 || p50 > p99 {
		t.Errorf("publish answered p50 %v p99 %v", p50, p99)
	}
	if p50, p99 := num(t, m, "server_publish_to_write_p50_ms"), num(t, m, "server_publish_to_write_p99_ms"); p50 <= 0 || p50 > p99 || p99 > 2500 {
		t.Errorf("server part p50 %v p99 %v", p50, p99)
	}
	if !strings.Contains(r.stdout, "server part") || !strings.Contains(r.stdout, "publish answered") {
		t.Errorf("summary lacks the latency split:\n%s", r.stdout)
	}
}

// --ack: version 2 subscribers acknowledge every message, which the server's message status
// then shows as acked for each one (while without --ack they are only sent).
func TestUnicastAck(t *testing.T) {
	for _, ack := range []bool{true, false} {
		t.Run(fmt.Sprintf("ack=%v", ack), func(t *testing.T) {
			n := newNode(t, "sqlite", nil)
			args := []string{"unicast", "--server", n.srv.URL, "--conns", "4", "--messages", "40", "--publishers", "2", "--run", "acks"}
			if ack {
				args = append(args, "--ack")
			}
			m := lastJSON(t, runOK(t, args...))
			wantNum(t, m, "deliveries", 40)
			wantNum(t, m, "unexpected_frames", 0)
			wantNum(t, m, "ack_errors", 0)
			if m["ack"] != ack {
				t.Errorf("report ack = %v, want %v", m["ack"], ack)
			}
			want := "sent"
			if ack {
				want = "acked"
			}
			// Acks are written as frames arrive; the last ones may still be on their way when the
			// run ends.
			deadline := time.Now().Add(10 * time.Second)
			for {
				counts := map[string]int{}
				for u := range 4 {
					resp, err := http.Get(n.srv.URL + "/messages/bench-acks-" + strconv.Itoa(u))
					if err != nil {
						t.Fatal(err)
					}
					var list struct {
						Messages []struct {
							Status string `json:"status"`
						} `json:"messages"`
					}
					err = json.NewDecoder(resp.Body).Decode(&list)
					resp.Body.Close()
					if err != nil {
						t.Fatal(err)
					}
					for _, msg := range list.Messages {
						counts[msg.Status]++
					}
				}
				if counts[want] == 40 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("statuses %v, want all 40 %s", counts, want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// Shared users: each message reaches every connection of its user.
func TestUnicastSharedUsersPaced(t *testing.T) {
	n := newNode(t, "memory", nil)
	r := runOK(t, "unicast", "--server", n.srv.URL, "--conns", "20", "--users", "5",
		"--messages", "200", "--publishers", "4", "--rate", "2000")
	m := lastJSON(t, r)
	wantNum(t, m, "users", 5)
	wantNum(t, m, "expected_deliveries", 800)
	wantNum(t, m, "deliveries", 800)
	wantNum(t, m, "lost_messages", 0)
	wantNum(t, m, "duplicates", 0)
	wantNum(t, m, "rate_limit", 2000)
	if s := num(t, m, "publish_seconds"); s < 0.05 { // 200 at 2000/s is about 0.1s
		t.Errorf("paced publish took %vs", s)
	}
}

func TestBroadcast(t *testing.T) {
	n := newNode(t, "memory", nil)
	args := append([]string{"broadcast", "--server", n.srv.URL, "--conns", "20", "--broadcasts", "10"}, pidArgs()...)
	r := runOK(t, args...)
	m := lastJSON(t, r)
	wantNum(t, m, "answered", 10)
	wantNum(t, m, "expected_deliveries", 200)
	wantNum(t, m, "deliveries", 200)
	wantNum(t, m, "lost_deliveries", 0)
	wantNum(t, m, "lost_messages", 0)
	wantNum(t, m, "duplicates", 0)
	wantNum(t, m, "server_connections", 20)
	num(t, m, "latency_p99_ms")
	if m["messages"] != nil {
		t.Errorf("messages = %v in broadcast mode, want null", m["messages"])
	}
}

// A non-loopback server is refused before anything is dialed.
func TestRefusesRemote(t *testing.T) {
	var hits atomic.Int64
	target := "http://203.0.113.7:8080" // TEST-NET-3: never reached
	if ip := nonLoopbackIP(); ip != nil {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err == nil {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
			srv.Listener.Close()
			srv.Listener = ln
			srv.Config.ConnState = func(net.Conn, http.ConnState) { hits.Add(1) }
			srv.Start()
			defer srv.Close()
			target = srv.URL
		}
	}
	start := time.Now()
	r := runBench(t, "conns", "--server", target, "--conns", "5")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "--allow-remote") {
		t.Errorf("stderr does not mention --allow-remote: %s", r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout: %s", r.stdout)
	}
	if time.Since(start) > time.Second {
		t.Errorf("refusal took %v", time.Since(start))
	}
	time.Sleep(50 * time.Millisecond)
	if hits.Load() != 0 {
		t.Errorf("%d connections reached the remote server", hits.Load())
	}
	for _, host := range []string{"http://example.com", "https://10.0.0.1:443", "http://[2001:db8::1]:80"} {
		if r := runBench(t, "unicast", "--server", host); r.code != 2 {
			t.Errorf("%s: exit %d, want 2", host, r.code)
		}
	}
}

func nonLoopbackIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	return nil
}

// A server that is not there: every connection fails quickly, the report still comes, exit 1.
func TestServerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := runBench(t, "unicast", "--server", "http://"+addr, "--conns", "10", "--messages", "20",
		"--dial-timeout", "2s", "--drain", "100ms", "--request-timeout", "2s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m := lastJSON(t, r)
	wantNum(t, m, "conns_open", 0)
	wantNum(t, m, "conn_failures", 10)
	if m["ok"] != false || len(m["failures"].([]any)) == 0 {
		t.Errorf("ok = %v, failures %v", m["ok"], m["failures"])
	}
}

// Refused connections are tallied by status and the server's reason.
func TestConnsRefused(t *testing.T) {
	n := newNode(t, "memory", func(c *config.Config) { c.WebSocket.MaxConnsPerUser = 2 })
	r := runBench(t, "conns", "--server", n.srv.URL, "--conns", "6", "--users", "2", "--dial-concurrency", "1", "--hold", "0s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m := lastJSON(t, r)
	wantNum(t, m, "conns_open", 4)
	wantNum(t, m, "conn_failures", 2)
	errs := m["conn_errors"].(map[string]any)
	if len(errs) != 1 {
		t.Fatalf("conn_errors %v", errs)
	}
	for k, v := range errs {
		if !strings.HasPrefix(k, "HTTP 429") || v.(json.Number).String() != "2" {
			t.Errorf("conn_errors %v", errs)
		}
	}
}

// The global --timeout ends a run that would otherwise hold for a minute.
func TestTimeout(t *testing.T) {
	n := newNode(t, "memory", nil)
	start := time.Now()
	r := runBench(t, "conns", "--server", n.srv.URL, "--conns", "5", "--hold", "1m", "--timeout", "300ms")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	m := lastJSON(t, r)
	if m["timed_out"] != true {
		t.Errorf("timed_out = %v", m["timed_out"])
	}
}

func TestUsageAndBadArgs(t *testing.T) {
	r := runBench(t, "-h")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--allow-remote") {
		t.Errorf("-h: exit %d\n%s", r.code, r.stdout)
	}
	r = runBench(t, "unicast", "-h")
	if r.code != 0 || !strings.Contains(r.stdout, "-messages") {
		t.Errorf("unicast -h: exit %d\n%s", r.code, r.stdout)
	}
	for _, args := range [][]string{
		{},
		{"flood"},
		{"conns", "--conns", "0"},
		{"conns", "extra"},
		{"conns", "--nope"},
		{"unicast", "--token", "a", "--jwt-secret", "b"},
		{"unicast", "--server", "ftp://127.0.0.1"},
		{"broadcast", "--broadcasts", "0"},
		{"conns", "--run", "a b"},
	} {
		if r := runBench(t, args...); r.code != 2 {
			t.Errorf("%q: exit %d, want 2", args, r.code)
		}
	}
}

func TestTarget(t *testing.T) {
	tg, err := newTarget("http://localhost:9000/push/", false, true)
	if err != nil {
		t.Fatal(err)
	}
	if tg.wsURL != "ws://localhost:9000/push/getPushNews" || tg.httpBase != "http://localhost:9000/push" || tg.dialAddr != "127.0.0.1:9000" {
		t.Errorf("%+v", tg)
	}
	if len(tg.sources) != 0 && (len(tg.sources) != 253 || tg.source(0).IP.String() != "127.0.0.2" || tg.source(252).IP.String() != "127.0.0.254") {
		t.Errorf("sources %v", tg.sources)
	}
	tg, err = newTarget("https://push.example.com", true, true)
	if err != nil || tg.wsURL != "wss://push.example.com/getPushNews" || tg.dialAddr != "push.example.com:443" || tg.sources != nil {
		t.Errorf("%+v %v", tg, err)
	}
	if tg, err = newTarget("http://[::1]:8080", false, true); err != nil || tg.sources != nil {
		t.Errorf("::1: %+v %v", tg, err)
	}
}

func TestParseFrame(t *testing.T) {
	cases := []struct {
		raw  string
		want frame
		ok   bool
	}{
		{`{"id":"42","userId":"u","data":{"t":123,"s":7},"createdAt":"2026-01-01T00:00:00.000Z"}`, frame{id: 42, hasID: true, sent: 123, seq: 7}, true},
		{`{"userId":"u","broadcast":true,"data":{"t":5,"s":0},"createdAt":"x"}`, frame{broadcast: true, sent: 5, seq: 0}, true},
		{`{"data":{"s":7,"t":123},"id":"9","userId":"u"}`, frame{id: 9, hasID: true, sent: 123, seq: 7}, true}, // other order: json path
		{`{"type":"pong"}`, frame{}, false},
		{`{"id":"1","userId":"u","data":"hello"}`, frame{}, false},
		{`not json`, frame{}, false},
	}
	for _, c := range cases {
		got, ok := parseFrame([]byte(c.raw))
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("parseFrame(%s) = %+v, %v; want %+v, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
}

func TestHistogram(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 1000, 123456, 1 << 40, 1<<63 - 1} {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets || bucketUpper(i) < v || (i > 0 && bucketUpper(i-1) >= v) {
			t.Errorf("value %d: bucket %d upper %d", v, i, bucketUpper(i))
		}
	}
	h := new(histogram)
	for i := 1; i <= 1000; i++ { // 1..1000 µs
		h.record(i, int64(i)*1000)
	}
	l := h.summary()
	near := func(name string, got, want float64) {
		if got < want || got > want*1.02 {
			t.Errorf("%s = %v, want %v (+2%%)", name, got, want)
		}
	}
	near("p50", l.p50, 0.5)
	near("p90", l.p90, 0.9)
	near("p99", l.p99, 0.99)
	if l.max != 1 || l.n != 1000 {
		t.Errorf("max %v n %d", l.max, l.n)
	}
}

// --publish-server sends the publishes to another node: here a second listener on the same node,
// so every publish must go through it (the subscribers' server sees none) and all arrive.
func TestPublishServer(t *testing.T) {
	n := newNode(t, "memory", nil)
	var published atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		published.Add(1)
		n.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	r := runOK(t, "unicast", "--server", n.srv.URL, "--publish-server", front.URL, "--conns", "5", "--messages", "50", "--publishers", "2")
	m := lastJSON(t, r)
	wantNum(t, m, "deliveries", 50)
	wantNum(t, m, "lost_messages", 0)
	if got := published.Load(); got != 50 {
		t.Fatalf("publishes through --publish-server: %d, want 50", got)
	}
	if r := runBench(t, "unicast", "--server", n.srv.URL, "--publish-server", "http://203.0.113.7:8080"); r.code != 2 {
		t.Fatalf("remote --publish-server without --allow-remote: exit %d, want 2", r.code)
	}
}

// Publishes and subscribers over TLS: with --insecure a self-signed server is measured; without
// it the certificate is refused and the run fails.
func TestTLS(t *testing.T) {
	n := newNodeOn(t, "memory", nil, httptest.NewTLSServer)
	base := []string{"unicast", "--server", n.srv.URL, "--conns", "5", "--messages", "50", "--publishers", "2", "--timeout", "20s"}
	r := runOK(t, append(base, "--insecure")...)
	m := lastJSON(t, r)
	wantNum(t, m, "answered", 50)
	wantNum(t, m, "deliveries", 50)
	wantNum(t, m, "lost_messages", 0)

	r = runBench(t, base...)
	if r.code != 1 {
		t.Fatalf("exit %d without --insecure, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if m := lastJSON(t, r); m["ok"] != false {
		t.Fatalf("ok %v without --insecure", m["ok"])
	}
}

// A publish the server refuses is counted under its status code, never as delivered.
func TestRefusedPublishesCounted(t *testing.T) {
	n := newNode(t, "memory", func(c *config.Config) { c.Auth.APIKeys = []string{"right-key"} })
	r := runBench(t, "unicast", "--server", n.srv.URL, "--key", "wrong-key", "--conns", "3", "--messages", "30", "--publishers", "2", "--drain", "100ms")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m := lastJSON(t, r)
	wantNum(t, m, "answered", 0)
	wantNum(t, m, "deliveries", 0)
	if got := m["http_errors"].(map[string]any)["401"]; fmt.Sprint(got) != "30" {
		t.Fatalf("http_errors %v, want 401: 30", m["http_errors"])
	}
}
