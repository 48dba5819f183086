package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pushlane/config"
	"pushlane/module"
	"pushlane/module/store/redis/redistest"
)

// publishRaw POSTs /pushNews with an API key and an Idempotency-Key ("" for none of either).
func (e *env) publishRaw(apiKey, idemKey string, body []byte) (int, []byte, http.Header) {
	e.t.Helper()
	h := http.Header{}
	if apiKey != "" {
		h.Set("Authorization", "Bearer "+apiKey)
	}
	if idemKey != "" {
		h.Set("Idempotency-Key", idemKey)
	}
	status, b, hdr, err := e.do(http.MethodPost, "/pushNews", body, h)
	if err != nil {
		e.t.Fatal(err)
	}
	return status, b, hdr
}

// publishWith is publishRaw that requires a 200 and decodes it.
func (e *env) publishWith(apiKey, idemKey string, body []byte) (pubResponse, error) {
	var out pubResponse
	status, b, _ := e.publishRaw(apiKey, idemKey, body)
	if status != http.StatusOK {
		return out, fmt.Errorf("POST /pushNews %s: %d %s", body, status, b)
	}
	return out, json.Unmarshal(b, &out)
}

// rawPublish sends POST /pushNews over a plain TCP connection with one extra header line
// written as is (Go's client refuses to send some of the bytes tested here) and returns the
// status.
func (e *env) rawPublish(headerLine string, body []byte) int {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(readTimeout))
	fmt.Fprintf(conn, "POST /pushNews HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		e.srv.Listener.Addr(), headerLine, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// headID is the user's newest id as the store reports it (it does not move on a replay).
func (e *env) headID(user string) uint64 {
	e.t.Helper()
	h, err := e.store.Head(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	return h.LastID
}

// expectNext publishes a marker without a key and requires it to be the connection's next data
// frame: whatever was delivered before it was read already, so nothing else was queued.
func (e *env) expectNext(c *client, user string) uint64 {
	e.t.Helper()
	id := e.publish(user, json.RawMessage(`"marker"`))
	if f := c.readMessage(); f.id() != id {
		e.t.Fatalf("next frame %s, want the marker %d: something was delivered in between", f.raw, id)
	}
	return id
}

// TestIdempotentPublish: the same key with the same request answers the first answer again,
// marked Idempotent-Replayed, and stores and delivers nothing (a connected subscriber receives
// the message once); another request under the key is 422; a malformed key is 400.
func TestIdempotentPublish(t *testing.T) {
	forEachStatusStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const u = "idem-user"
		sub := e.dial(u, -1)
		e.waitConns(u, 1)

		body := []byte(`{"userIds":["idem-user","idem-other"],"data":{"title":"once"}}`)
		status, first, h := e.publishRaw("", "order-1234", body)
		if status != http.StatusOK || h.Get("Idempotent-Replayed") != "" {
			t.Fatalf("first publish: %d %s (Idempotent-Replayed %q)", status, first, h.Get("Idempotent-Replayed"))
		}
		var res pubResponse
		if err := json.Unmarshal(first, &res); err != nil || len(res.Results) != 2 || !res.Results[0].Online {
			t.Fatalf("first publish: %s", first)
		}
		id, _ := parseID(res.Results[0].ID)
		if got := sub.readMessage().id(); got != id {
			t.Fatalf("subscriber got %d, want %d", got, id)
		}
		head, otherHead := e.headID(u), e.headID("idem-other")

		// Retries, the same request written differently: the first answer, byte for byte.
		for _, retry := range [][]byte{body, []byte(" {\"userIds\" : [\"idem-user\", \"idem-other\", \"idem-user\"],\n \"data\": {\"title\": \"once\"}}\n")} {
			status, again, h := e.publishRaw("", "order-1234", retry)
			if status != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again, first) {
				t.Fatalf("retry %s: %d %s (Idempotent-Replayed %q), want 200 %s replayed", retry, status, again, h.Get("Idempotent-Replayed"), first)
			}
		}
		if e.headID(u) != head || e.headID("idem-other") != otherHead {
			t.Fatal("a replay stored a message")
		}
		marker := e.expectNext(sub, u)
		if got := e.metric("pushlane_idempotent_replays_total", ""); got != 2 {
			t.Fatalf("pushlane_idempotent_replays_total = %v, want 2", got)
		}

		// Another request under the same key.
		for _, other := range []string{
			`{"userIds":["idem-user","idem-other"],"data":{"title":"twice"}}`,
			`{"userIds":["idem-other","idem-user"],"data":{"title":"once"}}`,
			`{"userIds":["idem-user","idem-other"],"data":{"title":"once"},"ttl":"1h"}`,
		} {
			if status, b, _ := e.publishRaw("", "order-1234", []byte(other)); status != http.StatusUnprocessableEntity {
				t.Fatalf("the key with another body %s: %d %s, want 422", other, status, b)
			}
		}
		if e.headID(u) != marker || e.headID("idem-other") != otherHead {
			t.Fatal("a 422 stored a message")
		}

		// Keys that are not 1-255 bytes of 0x21-0x7E: 400, nothing stored.
		for _, bad := range []string{"with space", "tab\there", "é", "del\x7f", strings.Repeat("k", 256)} {
			if status := e.rawPublish("Idempotency-Key: "+bad, body); status != http.StatusBadRequest {
				t.Errorf("Idempotency-Key %q: %d, want 400", bad, status)
			}
		}
		for _, h := range []http.Header{{"Idempotency-Key": {""}}, {"Idempotency-Key": {"a", "b"}}} {
			status, b, _, err := e.do(http.MethodPost, "/pushNews", body, h)
			if err != nil || status != http.StatusBadRequest {
				t.Errorf("Idempotency-Key %q: %d %s, want 400", h["Idempotency-Key"], status, b)
			}
		}
		if e.headID(u) != marker || e.headID("idem-other") != otherHead {
			t.Fatal("a refused key stored a message")
		}
		var printable strings.Builder
		for c := byte(0x21); c <= 0x7e; c++ {
			printable.WriteByte(c)
		}
		longest := (printable.String() + printable.String() + printable.String())[:255]
		if _, err := e.publishWith("", longest, []byte(`{"userId":"idem-user","data":1}`)); err != nil {
			t.Fatalf("a 255-byte key of every printable character: %v", err)
		}
		sub.readMessage()
		e.expectNext(sub, u)
	})
}

// blockingStore holds AppendOnce until released: a test double for timing only, around a real
// store that does the work.
type blockingStore struct {
	module.Store
	entered chan struct{} // receives once per AppendOnce that waits
	release chan struct{} // closed to let them go on
	failing int           // the next AppendOnce calls that fail without storing
	mu      sync.Mutex
}

func (s *blockingStore) AppendOnce(ctx context.Context, k module.IdempotencyKey, d []module.Draft) ([]module.Message, *module.IdempotencyRecord, error) {
	s.mu.Lock()
	fail := s.failing > 0
	if fail {
		s.failing--
	}
	s.mu.Unlock()
	if fail {
		return nil, nil, errors.New("injected failure before anything was stored")
	}
	if s.entered != nil {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.Store.AppendOnce(ctx, k, d)
}

// TestIdempotencyConflictWhileInProgress: while the first request with a key is being processed,
// the same key is 409 (whatever the body); once it is done, a retry replays it.
func TestIdempotencyConflictWhileInProgress(t *testing.T) {
	forEachStatusStore(t, func(t *testing.T, driver string) {
		bs := &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
		e := newEnv(t, driver, nil, wrapStore(func(s module.Store) module.Store { bs.Store = s; return bs }))
		body := []byte(`{"userId":"busy","data":1}`)
		type answer struct {
			status int
			body   []byte
		}
		firstDone := make(chan answer, 1)
		go func() {
			status, b, _, _ := e.do(http.MethodPost, "/pushNews", body, http.Header{"Idempotency-Key": {"slow"}})
			firstDone <- answer{status, b}
		}()
		<-bs.entered
		for _, other := range [][]byte{body, []byte(`{"userId":"busy","data":2}`)} {
			if status, b, _ := e.publishRaw("", "slow", other); status != http.StatusConflict {
				t.Fatalf("the key while its first request runs (%s): %d %s, want 409", other, status, b)
			}
		}
		close(bs.release)
		first := <-firstDone
		if first.status != http.StatusOK {
			t.Fatalf("first request: %d %s", first.status, first.body)
		}
		status, again, h := e.publishRaw("", "slow", body)
		if status != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again, first.body) {
			t.Fatalf("after the first finished: %d %s, want the replay of %s", status, again, first.body)
		}
	})
}

// TestIdempotencyFailedFirstAttemptRecordsNothing: a first attempt answered 400 or 503 leaves
// no record, so a retry with the same key is processed as new (stored once), not 422 or a replay.
func TestIdempotencyFailedFirstAttemptRecordsNothing(t *testing.T) {
	forEachStatusStore(t, func(t *testing.T, driver string) {
		bs := &blockingStore{}
		e := newEnv(t, driver, nil, wrapStore(func(s module.Store) module.Store { bs.Store = s; return bs }))
		if status, b, _ := e.publishRaw("", "k-400", []byte(`{"userId":"retry","data":1,"TTL":"1h"}`)); status != http.StatusBadRequest {
			t.Fatalf("bad body: %d %s", status, b)
		}
		status, b, h := e.publishRaw("", "k-400", []byte(`{"userId":"retry","data":1}`))
		if status != http.StatusOK || h.Get("Idempotent-Replayed") != "" {
			t.Fatalf("after a 400 under the key: %d %s (replayed %q), want a new 200", status, b, h.Get("Idempotent-Replayed"))
		}

		before := e.headID("retry")
		bs.mu.Lock()
		bs.failing = 1
		bs.mu.Unlock()
		if status, b, _ := e.publishRaw("", "k-503", []byte(`{"userId":"retry","data":2}`)); status != http.StatusServiceUnavailable {
			t.Fatalf("failing store: %d %s, want 503", status, b)
		}
		if e.headID("retry") != before {
			t.Fatal("the failed attempt stored a message")
		}
		status, b, h = e.publishRaw("", "k-503", []byte(`{"userId":"retry","data":2}`))
		if status != http.StatusOK || h.Get("Idempotent-Replayed") != "" {
			t.Fatalf("retry after a 503: %d %s (replayed %q), want a new 200", status, b, h.Get("Idempotent-Replayed"))
		}
		if e.headID("retry") <= before {
			t.Fatal("the retry after a 503 stored nothing")
		}
	})
}

// TestIdempotencyScopedPerAPIKey: the same Idempotency-Key sent with two API keys is two keys.
func TestIdempotencyScopedPerAPIKey(t *testing.T) {
	forEachStatusStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, func(c *config.Config) { c.Auth.APIKeys = []string{"team-a", "team-b"} })
		body := []byte(`{"userId":"scoped","data":1}`)
		a, err := e.publishWith("team-a", "shared-key", body)
		if err != nil {
			t.Fatal(err)
		}
		status, bBody, h := e.publishRaw("team-b", "shared-key", body)
		var b pubResponse
		if status != http.StatusOK || h.Get("Idempotent-Replayed") != "" || json.Unmarshal(bBody, &b) != nil || b.Results[0].ID == a.Results[0].ID {
			t.Fatalf("the key under another API key: %d %s (replayed %q), want a new message", status, bBody, h.Get("Idempotent-Replayed"))
		}
		if status, _, h := e.publishRaw("team-a", "shared-key", body); status != http.StatusOK || h.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("the key again under its own API key: %d, replayed %q", status, h.Get("Idempotent-Replayed"))
		}
	})
}

// TestIdempotencySurvivesRestart: a key recorded before a restart (the same SQLite file, the same
// Redis prefix) replays after it, and a second node on the same Redis prefix replays it too.
func TestIdempotencySurvivesRestart(t *testing.T) {
	for _, driver := range []string{"sqlite", "redis"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			first := newEnv(t, driver, nil)
			body := []byte(`{"userId":"durable","data":{"k":"v"}}`)
			status, want, _ := first.publishRaw("", "survives", body)
			if status != http.StatusOK {
				t.Fatalf("first: %d %s", status, want)
			}
			same := func(c *config.Config) {
				c.Store.Path = first.cfg.Store.Path
				c.Redis.KeyPrefix = first.cfg.Redis.KeyPrefix
			}
			if driver == "redis" {
				other := newEnv(t, driver, same)
				if status, got, h := other.publishRaw("", "survives", body); status != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || !bytes.Equal(got, want) {
					t.Fatalf("on a second node: %d %s (replayed %q), want %s", status, got, h.Get("Idempotent-Replayed"), want)
				}
			}
			first.close()
			again := newEnv(t, driver, same)
			status, got, h := again.publishRaw("", "survives", body)
			if status != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || !bytes.Equal(got, want) {
				t.Fatalf("after a restart: %d %s (replayed %q), want %s", status, got, h.Get("Idempotent-Replayed"), want)
			}
			if status, b, _ := again.publishRaw("", "survives", []byte(`{"userId":"durable","data":{"k":"w"}}`)); status != http.StatusUnprocessableEntity {
				t.Fatalf("another body after a restart: %d %s, want 422", status, b)
			}
		})
	}
}

// TestStalledPublishReachesLiveConnectionsOnRetry: the redis store with the local broker (one
// node on Redis). A publish answered 503 because Redis stalled is stored when Redis resumes; no
// commit hook delivered it. The retry with the same Idempotency-Key replays it without storing
// anything, and the connected subscriber gets the message then (not only at its next reconnect).
func TestStalledPublishReachesLiveConnectionsOnRetry(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	// Redis stalls for 4 s right when the first attempt's append is sent (after its key was
	// claimed), longer than the client's read timeout (3 s): a test double for the timing only,
	// around the real store.
	stall := &stallingStore{srv: srv}
	e := newEnv(t, "redis", nil, privateRedis(srv, 300*time.Millisecond),
		wrapStore(func(s module.Store) module.Store { stall.Store = s; return stall }))
	warm := e.publish("stalled", "warm-up") // Redis has the append script, as a running node's has
	c := e.dial("stalled", int64(warm))
	e.waitConns("stalled", 1)

	body := []byte(`{"userId":"stalled","data":"during the stall"}`)
	stall.once.Store(true)
	status, b, _ := e.publishRaw("", "stall-key", body)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("publish while Redis is stopped: %d %s, want 503", status, b)
	}
	// The retry: 409 while the first attempt's claim lasts (its release could not reach Redis),
	// then the replay of the first attempt, stored after all.
	var res pubResponse
	deadline := time.Now().Add(45 * time.Second)
	for {
		status, b, hdr := e.publishRaw("", "stall-key", body)
		if status == http.StatusOK {
			if hdr.Get("Idempotent-Replayed") != "true" || json.Unmarshal(b, &res) != nil || len(res.Results) != 1 {
				t.Fatalf("retry: %d %s %v, want the replay of the first attempt", status, b, hdr)
			}
			break
		}
		if (status != http.StatusConflict && status != http.StatusServiceUnavailable) || time.Now().After(deadline) {
			t.Fatalf("retry: %d %s", status, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	id, err := parseID(res.Results[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.readMessage(); f.id() != id || f.str("data") != "during the stall" {
		t.Fatalf("the live connection got %s, want message %d", f.raw, id)
	}
}

// stallingStore pauses its Redis for 4 s when the next AppendOnce is sent.
type stallingStore struct {
	module.Store
	srv  *redistest.Server
	once atomic.Bool
}

func (s *stallingStore) AppendOnce(ctx context.Context, key module.IdempotencyKey, drafts []module.Draft) ([]module.Message, *module.IdempotencyRecord, error) {
	if s.once.CompareAndSwap(true, false) {
		s.srv.Pause()
		time.AfterFunc(4*time.Second, s.srv.Resume)
	}
	return s.Store.AppendOnce(ctx, key, drafts)
}
