package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type clientsList struct {
	Users []struct {
		UserID      string `json:"userId"`
		Connections int    `json:"connections"`
	} `json:"users"`
	Total int `json:"total"`
}

// TestDeleteClient: every socket of the user is closed with 4000 and the answer counts them;
// other users stay; an unknown or already removed user is 404; purge removes stored messages.
func TestDeleteClient(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		k1 := e.dial("kick", -1)
		k2 := e.dial("kick", -1)
		stay := e.dial("stay", -1)
		e.waitConns("kick", 2)
		e.waitConns("stay", 1)
		kept := e.publish("kick", "kept after the kick")
		k1.readMessage()
		k2.readMessage()

		status, b := e.request(http.MethodDelete, "/deleteClient/kick", nil)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, b)
		}
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatal(err)
		}
		if want := map[string]any{"userId": "kick", "closed": float64(2)}; !reflect.DeepEqual(body, want) {
			t.Fatalf("body %s, want %v", b, want)
		}
		k1.expectClose(4000)
		k2.expectClose(4000)
		// The registry entry is gone with the answer.
		var list clientsList
		e.getJSON("/clients", http.StatusOK, &list)
		if list.Total != 1 || len(list.Users) != 1 || list.Users[0].UserID != "stay" {
			t.Fatalf("GET /clients after the kick: %+v, want only stay", list)
		}
		// The other user is still served.
		id := e.publish("stay", 1)
		if f := stay.readMessage(); f.id() != id {
			t.Fatalf("stay got %s, want %d", f.raw, id)
		}

		// No live connection any more, nothing purged: 404.
		for _, path := range []string{"/deleteClient/kick", "/deleteClient/never-seen"} {
			status, b, h, err := e.do(http.MethodDelete, path, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusNotFound {
				t.Fatalf("DELETE %s: status %d, want 404 (%s)", path, status, b)
			}
			if err := errorBodyOK(b, h); err != nil {
				t.Fatal(err)
			}
		}
		status, b = e.request(http.MethodDelete, "/deleteClient/bad$id", nil)
		if status != http.StatusBadRequest {
			t.Fatalf("DELETE a bad userId: status %d, want 400 (%s)", status, b)
		}

		// Stored messages stay without purge.
		c := e.dial("kick", 0)
		if f := c.readMessage(); f.id() != kept {
			t.Fatalf("since=0 after a kick got %s, want the stored message %d", f.raw, kept)
		}
		e.waitConns("kick", 1)

		// purge=true closes the connection too and removes the stored messages.
		e.publish("kick", "also purged")
		c.readMessage()
		status, b = e.request(http.MethodDelete, "/deleteClient/kick?purge=true", nil)
		if status != http.StatusOK {
			t.Fatalf("purge: status %d: %s", status, b)
		}
		var purged struct {
			UserID string `json:"userId"`
			Closed *int   `json:"closed"`
		}
		if err := json.Unmarshal(b, &purged); err != nil || purged.UserID != "kick" || purged.Closed == nil || *purged.Closed != 1 {
			t.Fatalf("purge body %s, want userId kick, closed 1", b)
		}
		c.expectClose(4000)
		e.waitConns("kick", 0)
		if status, b := e.request(http.MethodGet, "/clients/kick", nil); status != http.StatusNotFound {
			t.Fatalf("GET /clients/kick after purge: %d %s, want 404", status, b)
		}
		c = e.dial("kick", 0)
		e.waitConns("kick", 1)
		sentinel := e.publish("kick", "after purge")
		if f := c.readMessage(); f.id() != sentinel {
			t.Fatalf("since=0 after purge replayed %s, want nothing before %d", f.raw, sentinel)
		}

		// An offline user with stored messages: purge is 200 with closed 0, then 404.
		e.publish("offline", "x")
		status, b = e.request(http.MethodDelete, "/deleteClient/offline?purge=true", nil)
		if status != http.StatusOK || !strings.Contains(string(b), `"closed":0`) {
			t.Fatalf("purge of an offline user with messages: %d %s, want 200 closed 0", status, b)
		}
		if status, b := e.request(http.MethodDelete, "/deleteClient/offline?purge=true", nil); status != http.StatusNotFound {
			t.Fatalf("second purge: %d %s, want 404", status, b)
		}
	})
}

// TestListClients: users in byte order of userId, connections per user, total before paging,
// limit and offset rules.
func TestListClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", nil)
	users := []string{"abc", "Zed", "_u", "0x", "ABC", "-dash", "a.b", "a:b", "a@b", "9", "zz", "B"}
	for _, u := range users {
		e.dial(u, -1)
	}
	e.dial("abc", -1) // a second tab
	for _, u := range users {
		want := 1
		if u == "abc" {
			want = 2
		}
		e.waitConns(u, want)
	}
	sorted := append([]string(nil), users...)
	sort.Strings(sorted) // byte order
	n := len(sorted)

	page := func(query string) clientsList {
		t.Helper()
		status, b := e.request(http.MethodGet, "/clients"+query, nil)
		if status != http.StatusOK {
			t.Fatalf("GET /clients%s: status %d: %s", query, status, b)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 2 || !strings.HasPrefix(string(raw["users"]), "[") {
			t.Fatalf(`GET /clients%s: body %s, want {"users": [...], "total": N}`, query, b)
		}
		var l clientsList
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		if l.Total != n {
			t.Fatalf("GET /clients%s: total %d, want %d", query, l.Total, n)
		}
		return l
	}
	check := func(query string, from, to int) {
		t.Helper()
		l := page(query)
		var got []string
		for _, u := range l.Users {
			got = append(got, u.UserID)
			want := 1
			if u.UserID == "abc" {
				want = 2
			}
			if u.Connections != want {
				t.Fatalf("GET /clients%s: %s has %d connections, want %d", query, u.UserID, u.Connections, want)
			}
		}
		if want := sorted[from:to]; !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("GET /clients%s: users %v, want %v", query, got, want)
		}
	}
	check("", 0, n)
	check("?limit=3", 0, 3)
	check("?limit=3&offset=2", 2, 5)
	check("?offset=10", 10, n)
	check("?offset=11&limit=100", 11, n)
	check("?offset="+fmt.Sprint(n), n, n)
	check("?offset=99999999999999999999999999", n, n)
	check("?limit=0", 0, 0)
	check("?limit=0&offset=3", 3, 3)
	check("?limit=1000", 0, n)
	check("?limit=1001", 0, n)
	check("?limit=99999999999999999999999999", 0, n)

	for _, q := range []string{"?limit=", "?offset=", "?limit=-1", "?offset=-3", "?limit=1.5", "?limit=abc",
		"?offset=x", "?limit=1e3", "?limit=0x10", "?limit=%20", "?limit=-99999999999999999999"} {
		status, b, h, err := e.do(http.MethodGet, "/clients"+q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusBadRequest {
			t.Errorf("GET /clients%s: status %d, want 400 (%s)", q, status, b)
			continue
		}
		if err := errorBodyOK(b, h); err != nil {
			t.Errorf("GET /clients%s: %v", q, err)
		}
	}
}

// TestListClientsLimitCap: with more than 1000 users online, any limit above 1000 returns 1000.
func TestListClientsLimitCap(t *testing.T) {
	if testing.Short() {
		t.Skip("1001 connections")
	}
	t.Parallel()
	e := newEnv(t, "memory", nil)
	const users = 1001
	var wg sync.WaitGroup
	errs := make(chan error, users)
	conns := make(chan *websocket.Conn, users)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < users; i += 8 {
				conn, _, err := e.dialE(subQuery(fmt.Sprintf("cap-%04d", i), -1), nil)
				if err != nil {
					errs <- err
					return
				}
				conns <- conn
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(conns)
	t.Cleanup(func() {
		for c := range conns {
			c.Close()
		}
	})
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "1001 users online", func() bool { return len(e.hub.Users()) == users })
	for _, q := range []string{"", "?limit=1000", "?limit=1001", "?limit=5000", "?limit=99999999999999999999999999"} {
		var l clientsList
		e.getJSON("/clients"+q, http.StatusOK, &l)
		want := 1000
		if q == "" {
			want = 100 // the default
		}
		if l.Total != users || len(l.Users) != want {
			t.Fatalf("GET /clients%s: %d users, total %d; want %d users, total %d", q, len(l.Users), l.Total, want, users)
		}
		if l.Users[0].UserID != "cap-0000" || l.Users[want-1].UserID != fmt.Sprintf("cap-%04d", want-1) {
			t.Fatalf("GET /clients%s: first %s last %s, not the first page in order", q, l.Users[0].UserID, l.Users[want-1].UserID)
		}
	}
	var l clientsList
	e.getJSON("/clients?offset=1000&limit=5000", http.StatusOK, &l)
	if len(l.Users) != 1 || l.Users[0].UserID != "cap-1000" {
		t.Fatalf("the last page: %+v", l.Users)
	}
}

// TestClientDetail: GET /clients/:id lists connections with messagesSent (data and broadcast
// frames, not pongs) and the unread-queue size; 404 for a user without connection or message.
func TestClientDetail(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		const u = "detail"
		for _, path := range []string{"/clients/" + u, "/clients/nobody"} {
			status, b, h, err := e.do(http.MethodGet, path, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if status != http.StatusNotFound {
				t.Fatalf("GET %s: %d %s, want 404", path, status, b)
			}
			if err := errorBodyOK(b, h); err != nil {
				t.Fatal(err)
			}
		}
		e.publish(u, "one")
		e.publish(u, "two")
		var d clientDetail
		status, b := e.request(http.MethodGet, "/clients/"+u, nil)
		if status != http.StatusOK {
			t.Fatalf("offline user with messages: %d %s, want 200", status, b)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 3 || string(raw["connections"]) != "[]" {
			t.Fatalf(`body %s, want {"userId", "connections": [], "pending"}`, b)
		}
		_ = json.Unmarshal(b, &d)
		if d.UserID != u || d.Pending != 2 {
			t.Fatalf("body %s, want userId %s, pending 2", b, u)
		}

		before := time.Now().Add(-time.Second)
		c := e.dial(u, -1)
		c.readIDs(2) // the unread queue
		other := e.dial(u, 0)
		other.readIDs(2)
		e.waitConns(u, 2)
		c.sendText(`{"type":"ping"}`)
		if f := c.readFrame(); string(f.raw) != `{"type":"pong"}` {
			t.Fatalf("got %s, want a pong", f.raw)
		}
		e.publish(u, "three")
		c.readMessage()
		other.readMessage()
		status, b = e.request(http.MethodPost, "/broadcast", []byte(`{"data":"all"}`))
		if status != http.StatusOK {
			t.Fatalf("broadcast: %d %s", status, b)
		}
		c.readFrame()
		other.readFrame()
		// One more pong on each: the writer counts a frame right after writing it, and writes
		// this pong after the broadcast, so every count is in once the pong arrives.
		for _, conn := range []*client{c, other} {
			conn.sendText(`{"type":"ping"}`)
			if f := conn.readFrame(); string(f.raw) != `{"type":"pong"}` {
				t.Fatalf("got %s, want a pong", f.raw)
			}
		}

		// Both connections: 2 backlog + 1 live + 1 broadcast; the pongs are not counted.
		e.getJSON("/clients/"+u, http.StatusOK, &d)
		if len(d.Connections) != 2 {
			t.Fatalf("%d connections listed, want 2: %+v", len(d.Connections), d)
		}
		ids := map[string]bool{}
		for _, conn := range d.Connections {
			if conn.MessagesSent != 4 {
				t.Fatalf("messagesSent %d, want 4 (pongs are not counted): %+v", conn.MessagesSent, d)
			}
			if conn.ID == "" || ids[conn.ID] {
				t.Fatalf("connection ids must be distinct and non-empty: %+v", d.Connections)
			}
			ids[conn.ID] = true
			if !strings.HasPrefix(conn.RemoteAddr, "127.0.0.1:") {
				t.Fatalf("remoteAddr %q, want the client's 127.0.0.1:port", conn.RemoteAddr)
			}
			at, err := time.Parse(time.RFC3339, conn.ConnectedAt)
			if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
				t.Fatalf("connectedAt %q is not RFC 3339 about now", conn.ConnectedAt)
			}
		}
		waitFor(t, waitTimeout, "pending 0", func() bool { return e.pending(u) == 0 })

		// New messages while connected are written, so they do not stay pending either; while
		// nobody is connected, they do.
		c.conn.Close()
		other.conn.Close()
		e.waitConns(u, 0)
		e.publish(u, "while away")
		if p := e.pending(u); p != 1 {
			t.Fatalf("pending %d, want 1", p)
		}
	})
}

// TestHealthz: 200 with every part ok; once the store is closed, 503 naming it, and publishes
// are 503 with nothing accepted.
func TestHealthz(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		status, b := e.request(http.MethodGet, "/healthz", nil)
		var body map[string]any
		if status != http.StatusOK || json.Unmarshal(b, &body) != nil {
			t.Fatalf("GET /healthz: %d %s", status, b)
		}
		if want := map[string]any{"status": "ok", "store": "ok", "broker": "ok"}; !reflect.DeepEqual(body, want) {
			t.Fatalf("GET /healthz: %s, want %v", b, want)
		}

		if err := e.store.Close(); err != nil {
			t.Fatal(err)
		}
		status, b = e.request(http.MethodGet, "/healthz", nil)
		body = nil
		if status != http.StatusServiceUnavailable || json.Unmarshal(b, &body) != nil {
			t.Fatalf("GET /healthz with the store closed: %d %s, want 503", status, b)
		}
		if s, _ := body["store"].(string); s == "" || s == "ok" || body["broker"] != "ok" {
			t.Fatalf("GET /healthz with the store closed: %s, want the store's error and broker ok", b)
		}
		status, b, h, err := e.do(http.MethodPost, "/pushNews", []byte(`{"userId":"u","data":1}`), nil)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusServiceUnavailable {
			t.Fatalf("publish with the store closed: %d %s, want 503", status, b)
		}
		if err := errorBodyOK(b, h); err != nil {
			t.Fatal(err)
		}
	})
}

// TestBroadcast: every live connection gets {"userId": recipient, "broadcast": true, "data",
// "createdAt"} without an id; the answer counts connections; broadcasts are neither queued for
// offline users nor replayed by since.
func TestBroadcast(t *testing.T) {
	forEachStore(t, func(t *testing.T, driver string) {
		e := newEnv(t, driver, nil)
		requireBroadcast(t, e, `{"data":"nobody"}`, 0)

		a1 := e.dial("bc-a", -1)
		a2 := e.dial("bc-a", -1)
		bb := e.dial("bc-b", -1)
		e.waitConns("bc-a", 2)
		e.waitConns("bc-b", 1)
		data := `{"news":[1,"two",{"three":3}],"u":"\u2028é"}`
		requireBroadcast(t, e, `{"data":`+data+`}`, 3)
		for _, c := range []*client{a1, a2, bb} {
			f := c.readFrame()
			if len(f.fields) != 4 || f.str("userId") != c.user || string(f.fields["broadcast"]) != "true" || f.fields["id"] != nil {
				t.Fatalf("%s got %s, want {userId: %q, broadcast: true, data, createdAt} and no id", c.user, f.raw, c.user)
			}
			if !jsonEqual(t, f.fields["data"], []byte(data)) {
				t.Fatalf("broadcast data %s, want %s", f.fields["data"], data)
			}
			if err := checkCreatedAt(f); err != nil {
				t.Fatal(err)
			}
		}

		// Not stored: neither since=0 nor the unread queue replays it.
		for _, tc := range []struct {
			user  string
			since int64
			conns int // the user's connections while this one is open
		}{{"bc-a", 0, 3}, {"bc-off1", -1, 1}, {"bc-off2", 0, 1}} {
			c := e.dial(tc.user, tc.since)
			e.waitConns(tc.user, tc.conns)
			sentinel := e.publish(tc.user, "sentinel")
			if f := c.readMessage(); f.id() != sentinel {
				t.Fatalf("%s since=%d: got %s, want only the sentinel %d", tc.user, tc.since, f.raw, sentinel)
			}
			c.conn.Close()
			e.waitConns(tc.user, tc.conns-1)
		}
	})
}

// requireBroadcast posts body to /broadcast and requires 200 {"connections": n}.
func requireBroadcast(t *testing.T, e *env, body string, n int) {
	t.Helper()
	status, b := e.request(http.MethodPost, "/broadcast", []byte(body))
	var got map[string]any
	if status != http.StatusOK || json.Unmarshal(b, &got) != nil || !reflect.DeepEqual(got, map[string]any{"connections": float64(n)}) {
		t.Fatalf("broadcast %s: %d %s, want 200 {\"connections\": %d}", body, status, b, n)
	}
}

// TestBroadcastRightAfterOpen: a connection whose handshake has completed is live. A broadcast
// sent the instant the client sees the 101 (before the server has finished its side of the
// connect) still reaches it.
func TestBroadcastRightAfterOpen(t *testing.T) {
	e := newEnv(t, "memory", nil)
	for i := range 100 {
		c := e.dial("bc-open", -1)
		requireBroadcast(t, e, fmt.Sprintf(`{"data":%d}`, i), 1)
		if f := c.readFrame(); string(f.fields["data"]) != fmt.Sprint(i) {
			t.Fatalf("round %d: got %s, want the broadcast %d", i, f.raw, i)
		}
		c.conn.Close()
		e.waitConns("bc-open", 0)
	}
}
