package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"pushlane/config"
)

// These tests subscribe with Server-Sent Events (API.md "Server-Sent Events on the same route")
// through a plain HTTP client, reading the stream as an EventSource would.

// event is one Server-Sent Event: its fields, or a comment when comment is set.
type event struct {
	id, name, data string
	hasID          bool
	comment        string
}

// sseStream is one open event stream.
type sseStream struct {
	t      testing.TB
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openSSE subscribes rawQuery as an event stream with extra request headers; it returns the
// response whatever its status (the body is then the JSON error).
func (e *env) openSSE(rawQuery string, header http.Header) *sseStream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+"/getPushNews?"+rawQuery, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Transport: e.http.Transport} // no overall timeout: the stream is long
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("GET /getPushNews?%s as an event stream: %v", rawQuery, err)
	}
	s := &sseStream{t: e.t, resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}
	e.t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// nextE reads the next event or comment, within readTimeout.
func (s *sseStream) nextE() (event, error) {
	type result struct {
		ev  event
		err error
	}
	done := make(chan result, 1)
	go func() {
		var ev event
		var data []string
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				done <- result{err: err}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if data != nil || ev.hasID || ev.name != "" {
					ev.data = strings.Join(data, "\n")
					done <- result{ev: ev}
					return
				}
			case strings.HasPrefix(line, ":"):
				done <- result{ev: event{comment: strings.TrimSpace(line[1:])}}
				return
			default:
				field, value, _ := strings.Cut(line, ":")
				value = strings.TrimPrefix(value, " ")
				switch field {
				case "id":
					ev.id, ev.hasID = value, true
				case "event":
					ev.name = value
				case "data":
					data = append(data, value)
				}
			}
		}
	}()
	select {
	case r := <-done:
		return r.ev, r.err
	case <-time.After(readTimeout):
		s.close() // unblocks the reader goroutine
		<-done
		return event{}, errors.New("no event within the timeout")
	}
}

// next reads the next event, skipping ping comments.
func (s *sseStream) next() event {
	s.t.Helper()
	for {
		ev, err := s.nextE()
		if err != nil {
			s.t.Fatalf("event stream: %v", err)
		}
		if ev.comment == "" {
			return ev
		}
	}
}

// message reads a message event of user and checks it: an id line equal to the frame's id, and
// a data line holding the same frame a WebSocket connection gets.
func (s *sseStream) message(user string) frame {
	s.t.Helper()
	ev := s.next()
	f := frame{raw: []byte(ev.data)}
	if err := json.Unmarshal(f.raw, &f.fields); err != nil {
		s.t.Fatalf("event data %q is not a JSON frame: %v", ev.data, err)
	}
	if err := checkMessageFrame(f, user); err != nil {
		s.t.Fatal(err)
	}
	if !ev.hasID || ev.id != f.str("id") || ev.name != "" {
		s.t.Fatalf("event id %q (given: %v), name %q for frame %s; want id %s and no name", ev.id, ev.hasID, ev.name, ev.data, f.str("id"))
	}
	return f
}

// ended requires the stream to end (the server closed the response).
func (s *sseStream) ended() {
	s.t.Helper()
	for {
		ev, err := s.nextE()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		if err != nil {
			s.t.Fatalf("waiting for the stream to end: %v", err)
		}
		if ev.comment == "" {
			s.t.Fatalf("event %+v after the close event", ev)
		}
	}
}

func TestSSEDeliversMessagesAndBroadcasts(t *testing.T) {
	t.Parallel()
	forAllStores(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		stored := e.publish("sse", map[string]any{"title": "before"})
		s := e.openSSE("userId=sse", nil)
		if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d, Content-Type %q; want 200 text/event-stream", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
		}
		if got := s.message("sse").id(); got != stored {
			t.Fatalf("first event: message %d, want the pending %d", got, stored)
		}
		e.waitConns("sse", 1)
		live := e.publish("sse", []int{1, 2, 3})
		f := s.message("sse")
		if f.id() != live || string(f.fields["data"]) != "[1,2,3]" {
			t.Fatalf("live event %s, want message %d with data [1,2,3]", f.raw, live)
		}
		// A broadcast is an event without id.
		var res struct{ Connections int }
		status, b := e.request(http.MethodPost, "/broadcast", []byte(`{"data":"all"}`))
		if status != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Connections != 1 {
			t.Fatalf("broadcast: %d %s, want 200 with 1 connection", status, b)
		}
		ev := s.next()
		var bf map[string]any
		if ev.hasID || json.Unmarshal([]byte(ev.data), &bf) != nil || bf["broadcast"] != true || bf["userId"] != "sse" || bf["data"] != "all" {
			t.Fatalf("broadcast event %+v, want no id and a broadcast frame for sse", ev)
		}
		// The connection counts like a WebSocket one: online, and in /clients.
		var pub pubResponse
		body, _ := json.Marshal(map[string]any{"userId": "sse", "data": 1})
		if pub, _ = e.publishE(body); len(pub.Results) != 1 || !pub.Results[0].Online {
			t.Fatalf("publish to a user with an event stream: %+v, want online", pub.Results)
		}
		s.message("sse")
	})
}

func TestSSEResumesWithLastEventIDAcrossRestart(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/push.db"
	onFile := func(c *config.Config) { c.Store.Path = path }
	first := newEnv(t, "sqlite", onFile)
	a := first.publish("resume", "a")
	b := first.publish("resume", "b")
	s := first.openSSE("userId=resume&since=0", nil)
	s.message("resume")
	seen := s.message("resume").id()
	if seen != b {
		t.Fatalf("second event %d, want %d", seen, b)
	}
	s.close()
	first.close() // the server goes away; the file stays

	second := newEnv(t, "sqlite", onFile)
	c := second.publish("resume", "c")
	d := second.publish("resume", "d")
	// EventSource sends the last id it saw as Last-Event-ID when it reconnects.
	r := second.openSSE("userId=resume", http.Header{"Last-Event-ID": {strconv.FormatUint(seen, 10)}})
	got := []uint64{r.message("resume").id(), r.message("resume").id()}
	requireIncreasingExactly(t, "after Last-Event-ID", got, []uint64{c, d})
	_ = a
}

func TestSSELastEventIDAndSinceTheGreaterWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", nil)
	ids := []uint64{e.publish("both", 1), e.publish("both", 2), e.publish("both", 3)}
	r := e.openSSE(fmt.Sprintf("userId=both&since=%d", ids[0]), http.Header{"Last-Event-ID": {strconv.FormatUint(ids[1], 10)}})
	if got := r.message("both").id(); got != ids[2] {
		t.Fatalf("since %d with Last-Event-ID %d: first event %d, want %d", ids[0], ids[1], got, ids[2])
	}
	r2 := e.openSSE(fmt.Sprintf("userId=both&since=%d", ids[1]), http.Header{"Last-Event-ID": {strconv.FormatUint(ids[0], 10)}})
	if got := r2.message("both").id(); got != ids[2] {
		t.Fatalf("since %d with Last-Event-ID %d: first event %d, want %d", ids[1], ids[0], got, ids[2])
	}
}

func TestSSECloseEventOnDeleteClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", nil)
	s := e.openSSE("userId=kicked", nil)
	e.waitConns("kicked", 1)
	status, b := e.request(http.MethodDelete, "/deleteClient/kicked", nil)
	if status != http.StatusOK || !strings.Contains(string(b), `"closed":1`) {
		t.Fatalf("DELETE /deleteClient/kicked: %d %s", status, b)
	}
	ev := s.next()
	if ev.name != "close" || ev.data != `{"code":4000}` {
		t.Fatalf("event %+v, want event close with data {\"code\":4000}", ev)
	}
	s.ended()
	e.waitConns("kicked", 0)
}

func TestSSECloseEventOnTokenExpiry(t *testing.T) {
	t.Parallel()
	const secret = "a-long-enough-jwt-secret-for-sse-tests"
	e := newEnv(t, "memory", func(c *config.Config) {
		c.Auth.JWTSecret = secret
		c.WebSocket.PingInterval = 50 * time.Millisecond
		c.WebSocket.PongWait = time.Second
	})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "exp", "exp": time.Now().Add(time.Second).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	s := e.openSSE("userId=exp&token="+tok, nil)
	ev := s.next() // pings are skipped; the pong wait does not apply: the client cannot answer
	if ev.name != "close" || ev.data != `{"code":1008}` {
		t.Fatalf("event %+v, want event close with data {\"code\":1008}", ev)
	}
	s.ended()
}

func TestSSEHeartbeatComment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.PingInterval = 50 * time.Millisecond })
	s := e.openSSE("userId=beat", nil)
	for range 3 {
		ev, err := s.nextE()
		if err != nil || ev.comment != "ping" {
			t.Fatalf("got %+v, %v; want the comment line \": ping\"", ev, err)
		}
	}
}

func TestSSERefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.MaxConnsPerUser = 1 })
	for name, tc := range map[string]struct {
		query  string
		header http.Header
		status int
	}{
		"bad userId":          {"userId=a%20b", nil, http.StatusBadRequest},
		"bad since":           {"userId=u&since=01", nil, http.StatusBadRequest},
		"bad Last-Event-ID":   {"userId=u", http.Header{"Last-Event-ID": {"-1"}}, http.StatusBadRequest},
		"foreign origin":      {"userId=u", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		"bad protocol number": {"userId=u&v=3", nil, http.StatusBadRequest},
	} {
		s := e.openSSE(tc.query, tc.header)
		b, _ := io.ReadAll(s.r)
		if s.resp.StatusCode != tc.status || errorBodyOK(b, s.resp.Header) != nil {
			t.Errorf("%s: %d %s, want %d with a JSON error", name, s.resp.StatusCode, b, tc.status)
		}
	}
	// Limits count event streams and WebSockets together.
	e.openSSE("userId=one", nil)
	e.waitConns("one", 1)
	if _, resp, err := e.dialE("userId=one", nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a WebSocket beside an event stream over maxConnsPerUser=1: %v, want 429", err)
	}
	s := e.openSSE("userId=one", nil)
	if s.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second event stream over maxConnsPerUser=1: %d, want 429", s.resp.StatusCode)
	}
	// Neither an upgrade nor an event-stream request.
	status, b := e.request(http.MethodGet, "/getPushNews?userId=u", nil)
	if status != http.StatusBadRequest || errorBodyOK(b, http.Header{"Content-Type": {"application/json; charset=utf-8"}}) != nil {
		t.Fatalf("plain GET: %d %s, want 400", status, b)
	}
}

// TestConnectionsLetGoOfTheirBuffers: a connection that was sent a large frame holds no buffer
// for it afterwards, on either transport: idle connections cost what an idle connection costs,
// whatever they were sent before. (An event stream once kept its largest batch, up to 256 KB, for
// its whole life: 65 KB per stream after one 60 KB event.)
func TestConnectionsLetGoOfTheirBuffers(t *testing.T) {
	const conns = 40
	for _, transport := range []string{"sse", "websocket"} {
		t.Run(transport, func(t *testing.T) {
			e := newEnv(t, "memory", nil)
			var readBroadcast []func() string // one per connection: the next frame's text
			for i := range conns {
				user := fmt.Sprintf("buf-%d", i)
				if transport == "sse" {
					s := e.openSSE("userId="+user, nil)
					readBroadcast = append(readBroadcast, func() string { return s.next().data })
				} else {
					c := e.dial(user, -1)
					readBroadcast = append(readBroadcast, func() string { return string(c.readFrame().raw) })
				}
				e.waitConns(user, 1)
			}
			broadcast := func(data string) {
				t.Helper()
				body, _ := json.Marshal(map[string]any{"data": data})
				if status, b := e.request(http.MethodPost, "/broadcast", body); status != http.StatusOK {
					t.Fatalf("broadcast: %d %s", status, b)
				}
				for _, next := range readBroadcast {
					if got := next(); !strings.Contains(got, `"broadcast":true`) {
						t.Fatalf("frame %.200s, want the broadcast", got)
					}
				}
			}
			broadcast("small") // every connection has written once
			before := heapNow()
			broadcast(strings.Repeat("x", 60_000)) // not stored: only the connections could keep it
			after := heapNow()
			per := (int64(after) - int64(before)) / conns
			t.Logf("%s: %d bytes more per connection after a 60 KB frame", transport, per)
			if per > 8<<10 {
				t.Fatalf("each connection holds %d more bytes after a 60 KB frame than before it; want none kept (at most 8 KB of noise)", per)
			}
		})
	}
}

// TestIdleEventStreamsAreLight: over HTTP/1.1 an idle event stream costs the server one small
// reader goroutine and no buffers (its connection is taken over from net/http once the head is
// written). Measured in this process, clients included (each stream's HTTP client keeps two
// goroutines and its buffers): 3 goroutines and about 21 KB per stream. Kept as a response of
// net/http, a stream held the request's goroutine, net/http's background reader and its read,
// write and response buffers besides: 4 goroutines and about 36 KB.
func TestIdleEventStreamsAreLight(t *testing.T) {
	const streams = 100
	e := newEnv(t, "memory", func(c *config.Config) { c.WebSocket.PingInterval = time.Hour })
	heapBefore, goroutinesBefore := heapNow(), runtime.NumGoroutine()
	for i := range streams {
		user := fmt.Sprintf("light-%d", i)
		e.openSSE("userId="+user, nil)
		e.waitConns(user, 1)
	}
	heapPer := (int64(heapNow()) - int64(heapBefore)) / streams
	goroutinesPer := float64(runtime.NumGoroutine()-goroutinesBefore) / streams
	t.Logf("per idle stream, server and client: %d bytes of heap, %.2f goroutines", heapPer, goroutinesPer)
	if goroutinesPer > 3.2 {
		t.Errorf("%.2f goroutines per idle stream, want 3 (the server's reader, the client's two)", goroutinesPer)
	}
	if heapPer > 26<<10 {
		t.Errorf("%d bytes of heap per idle stream, server and client, want at most 26 KB", heapPer)
	}
}
