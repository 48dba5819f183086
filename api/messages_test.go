package api

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"pushlane/config"
)

// statusDrivers are the stores the status and idempotency tests run against: redis too (they
// fail or skip like every Redis test when Redis is not there).
var statusDrivers = []string{"sqlite", "memory", "redis"}

// forEachStatusStore runs body as a parallel subtest against every driver of statusDrivers.
func forEachStatusStore(t *testing.T, body func(t *testing.T, driver string)) {
	for _, d := range statusDrivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			body(t, d)
		})
	}
}

// statusJSON is one message of GET /messages, with every field kept raw to check its presence.
type statusJSON map[string]json.RawMessage

func (m statusJSON) str(k string) string {
	var s string
	_ = json.Unmarshal(m[k], &s)
	return s
}

var epochSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkStatusShape checks the fields API.md lists: userId, id, status, createdAt, expiresAt,
// data, and sentAt/ackedAt/pushedAt exactly when known, every time RFC 3339 ms UTC.
func checkStatusShape(t *testing.T, m statusJSON, user string, id uint64, status string) {
	t.Helper()
	if m.str("userId") != user || m.str("id") != strconv.FormatUint(id, 10) || m.str("status") != status {
		t.Fatalf("message %v: want userId %s, id %d, status %s", m, user, id, status)
	}
	want := map[string]bool{"userId": true, "id": true, "status": true, "createdAt": true, "expiresAt": true, "data": true}
	switch status {
	case "sent":
		want["sentAt"] = true
	case "acked":
		want["sentAt"], want["ackedAt"] = true, true
	}
	for k := range m {
		if !want[k] {
			t.Errorf("message %v: unexpected field %q for status %s", m, k, status)
		}
	}
	for k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("message %v: field %q missing for status %s", m, k, status)
		}
		if k != "data" && k != "userId" && k != "id" && k != "status" && !milliRFC3339.MatchString(m.str(k)) {
			t.Errorf("message %v: %s %q is not RFC 3339 with milliseconds in UTC", m, k, m.str(k))
		}
	}
}

// getStatus GETs one message's status with the key.
func (e *env) getStatus(path string, key string) (int, statusJSON, []byte) {
	e.t.Helper()
	status, b, _, err := e.do(http.MethodGet, path, nil, http.Header{"Authorization": {"Bearer " + key}})
	if err != nil {
		e.t.Fatal(err)
	}
	var m statusJSON
	if status == http.StatusOK {
		if err := json.Unmarshal(b, &m); err != nil {
			e.t.Fatalf("GET %s: %s: %v", path, b, err)
		}
	}
	return status, m, b
}

// TestMessageStatus: GET /messages/:userId/:id follows a message from pending to sent (written
// to a version 1 connection) to acked, with its timestamps and its data as published; 404 once
// it is not stored; the API key is required.
func TestMessageStatus(t *testing.T) {
	forEachStatusStore(t, func(t *testing.T, driver string) {
		const key = "status-key"
		e := newEnv(t, driver, func(c *config.Config) { c.Auth.APIKeys = []string{key} })
		const u = "status-user"
		resp, err := e.publishWith(key, "", []byte(`{"userId":"status-user","data":{"html":"<b>&</b>","n":[1,2.50]},"ttl":"1h"}`))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := parseID(resp.Results[0].ID)
		path := "/messages/" + u + "/" + strconv.FormatUint(id, 10)

		if status, _, _, err := e.do(http.MethodGet, path, nil, nil); err != nil || status != http.StatusUnauthorized {
			t.Fatalf("GET %s without the key: %d %v, want 401", path, status, err)
		}
		status, m, b := e.getStatus(path, key)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, b)
		}
		checkStatusShape(t, m, u, id, "pending")
		if string(m["data"]) != `{"html":"<b>&</b>","n":[1,2.50]}` {
			t.Fatalf("data %s, want the published value byte for byte", m["data"])
		}
		created, _ := time.Parse(time.RFC3339, m.str("createdAt"))
		expires, _ := time.Parse(time.RFC3339, m.str("expiresAt"))
		if d := expires.Sub(created); d < time.Hour-time.Millisecond || d > time.Hour+time.Millisecond {
			t.Fatalf("expiresAt %s is not createdAt %s + ttl 1h", m.str("expiresAt"), m.str("createdAt"))
		}

		// Written to a version 1 connection: sent, with sentAt.
		c := e.dial(u, -1)
		c.readIDs(1)
		waitFor(t, waitTimeout, "status sent", func() bool {
			_, m, _ = e.getStatus(path, key)
			return m.str("status") == "sent"
		})
		checkStatusShape(t, m, u, id, "sent")
		sent, _ := time.Parse(time.RFC3339, m.str("sentAt"))
		if sent.Before(created) {
			t.Fatalf("sentAt %s before createdAt %s", m.str("sentAt"), m.str("createdAt"))
		}

		// Acknowledged (by a version 2 client; here the store's Ack that the connection calls).
		e.store.Ack(u, []uint64{id}, time.Now())
		waitFor(t, waitTimeout, "status acked", func() bool {
			_, m, _ = e.getStatus(path, key)
			return m.str("status") == "acked"
		})
		checkStatusShape(t, m, u, id, "acked")

		// Not stored: never was, or purged.
		for _, p := range []string{"/messages/" + u + "/" + strconv.FormatUint(id+1000, 10), "/messages/nobody/1"} {
			if status, _, b := e.getStatus(p, key); status != http.StatusNotFound {
				t.Fatalf("GET %s: %d %s, want 404", p, status, b)
			}
		}
		if status, _, _, err := e.do(http.MethodDelete, "/deleteClient/"+u+"?purge=true", nil, http.Header{"Authorization": {"Bearer " + key}}); err != nil || status != http.StatusOK {
			t.Fatalf("purge: %d %v", status, err)
		}
		if status, _, b := e.getStatus(path, key); status != http.StatusNotFound {
			t.Fatalf("GET %s after a purge: %d %s, want 404", path, status, b)
		}

		// Lookups are counted by what they found (the polls above make pending, sent and acked
		// at least one each).
		metric := func(result string) float64 {
			status, b, _, err := e.do(http.MethodGet, "/metrics", nil, http.Header{"Authorization": {"Bearer " + key}})
			if err != nil || status != http.StatusOK {
				t.Fatalf("GET /metrics: %d %v", status, err)
			}
			return sampleValue(t, b, `pushlane_status_lookups_total{result="`+result+`"}`)
		}
		if n := metric("not_found"); n != 3 {
			t.Errorf("not_found lookups = %v, want 3", n)
		}
		for _, r := range []string{"pending", "sent", "acked"} {
			if n := metric(r); n < 1 {
				t.Errorf("%s lookups = %v, want at least 1", r, n)
			}
		}
	})
}

// sampleValue finds one sample line of a Prometheus text page (0 when absent).
func sampleValue(t *testing.T, page []byte, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(string(page), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestMessageList: GET /messages/:userId lists the stored messages above since, oldest first,
// at most limit of them, with the store's epoch; an unknown user has an empty list.
func TestMessageList(t *testing.T) {
	forEachStatusStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const u = "list-user"
		var ids []uint64
		for i := range 3 {
			ids = append(ids, e.publish(u, map[string]int{"n": i}))
		}
		epoch, err := e.store.Epoch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		list := func(query string) ([]statusJSON, string) {
			t.Helper()
			var out struct {
				Messages []statusJSON `json:"messages"`
				Epoch    string       `json:"epoch"`
			}
			status, b := e.request(http.MethodGet, "/messages/"+u+query, nil)
			if status != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Messages == nil {
				t.Fatalf("GET /messages/%s%s: %d %s", u, query, status, b)
			}
			if out.Epoch != epoch || !epochSyntax.MatchString(out.Epoch) {
				t.Fatalf("epoch %q, want the store's %q", out.Epoch, epoch)
			}
			return out.Messages, out.Epoch
		}
		idsOf := func(ms []statusJSON) []uint64 {
			var out []uint64
			for _, m := range ms {
				n, _ := parseID(m.str("id"))
				out = append(out, n)
			}
			return out
		}
		all, _ := list("")
		requireIncreasingExactly(t, "all", idsOf(all), ids)
		for i, m := range all {
			checkStatusShape(t, m, u, ids[i], "pending")
			if string(m["data"]) != `{"n":`+strconv.Itoa(i)+`}` {
				t.Fatalf("message %d data %s", i, m["data"])
			}
		}
		after, _ := list("?since=" + strconv.FormatUint(ids[0], 10))
		requireIncreasingExactly(t, "since the first", idsOf(after), ids[1:])
		first, _ := list("?limit=1")
		requireIncreasingExactly(t, "limit 1", idsOf(first), ids[:1])
		page, _ := list("?since=" + strconv.FormatUint(ids[0], 10) + "&limit=1")
		requireIncreasingExactly(t, "since the first, limit 1", idsOf(page), ids[1:2])
		if none, _ := list("?limit=0"); len(none) != 0 {
			t.Fatalf("limit 0: %d messages", len(none))
		}
		if many, _ := list("?limit=99999999999999999999&since=0"); len(many) != 3 {
			t.Fatalf("a huge limit: %d messages, want all 3", len(many))
		}

		var unknown map[string]json.RawMessage
		e.getJSON("/messages/nobody-at-all", http.StatusOK, &unknown)
		if string(unknown["messages"]) != "[]" {
			t.Fatalf("unknown user: %s, want an empty list", unknown["messages"])
		}
	})
}

// TestMessageStatusValidation: bad userId, id, since and limit are 400 with a JSON error.
func TestMessageStatusValidation(t *testing.T) {
	e := newEnv(t, "memory", nil)
	for _, path := range []string{
		"/messages/a%20b/1", "/messages/a%20b", "/messages/x!/1", "/messages/x!",
		"/messages/u/0", "/messages/u/01", "/messages/u/-1", "/messages/u/abc", "/messages/u/1.5",
		"/messages/u/9223372036854775808", "/messages/u/%201",
		"/messages/u?since=", "/messages/u?since=-1", "/messages/u?since=01", "/messages/u?since=x",
		"/messages/u?since=1&since=2", "/messages/u?since=9223372036854775808",
		"/messages/u?limit=", "/messages/u?limit=-1", "/messages/u?limit=ten",
	} {
		status, b, h, err := e.do(http.MethodGet, path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", path, status, b)
			continue
		}
		if err := errorBodyOK(b, h); err != nil {
			t.Errorf("GET %s: %v", path, err)
		}
	}
}
