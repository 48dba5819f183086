package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/api/webpush/webpushtest"
	"pushlane/config"
	"pushlane/module/store/redis/redistest"
)

// TestWebPushToAnOfflineUser: a message nobody reads within webpush.delay is pushed once to each
// of the user's subscriptions, as a request a push service accepts (decrypted with the browser's
// keys: the plaintext is the message's WebSocket frame; VAPID checked), with TTL the seconds left
// of the message's ttl; its status gains pushedAt; nothing is pushed before the delay or twice.
func TestWebPushToAnOfflineUser(t *testing.T) {
	for _, driver := range []string{"sqlite", "memory", "redis"} {
		t.Run(driver, func(t *testing.T) {
			w := newWPWorld(t)
			n := w.driverNode(driver)
			laptop, phone := w.svc.Browser("laptop"), w.svc.Browser("phone")
			first := n.mustRegister("alice", laptop)
			if status, again := n.register("alice", laptop); status != http.StatusOK || again != first {
				t.Fatalf("registering the same endpoint again: %d %q, want 200 %q", status, again, first)
			}
			n.mustRegister("alice", phone)
			n.mustRegister("bob", w.svc.Browser("bob-laptop")) // bob gets nothing: nothing published to him

			id := n.publish("alice", `{"title":"Invoice paid","body":"#42","url":"/invoices/42"}`, "3h")
			if d := n.due(); d != 1 {
				t.Fatalf("due pushes after the publish: %d, want 1 (written with the message)", d)
			}
			w.clock.Advance(wpDelay - time.Minute)
			n.publish("carol", `"no subscription"`, "") // a poll happens meanwhile
			if d := n.due(); d != 1 || len(w.svc.Pushes()) != 0 {
				t.Fatalf("before the delay: %d due, %d pushed", d, len(w.svc.Pushes()))
			}
			w.clock.Advance(time.Minute)
			w.svc.WaitPushes(t, 2, 20*time.Second)
			n.waitNoDue()
			pushes := w.svc.Pushes()
			if len(pushes) != 2 {
				t.Fatalf("%d pushes, want one per subscription (2)", len(pushes))
			}
			frame := n.frame("alice", id)
			got := map[string]bool{}
			for _, p := range pushes {
				checkPush(t, p)
				got[p.Browser] = true
				if string(p.Plaintext) != frame {
					t.Errorf("plaintext %s, want the WebSocket frame %s", p.Plaintext, frame)
				}
				// 3h ttl, pushed 1h after it was accepted: about 7200 seconds left.
				if ttl := p.Header.Get("TTL"); ttl > "7200" || ttl < "7190" {
					t.Errorf("TTL %s, want the seconds left of the message's ttl (about 7200)", ttl)
				}
			}
			if !got["laptop"] || !got["phone"] {
				t.Fatalf("pushed to %v, want laptop and phone", got)
			}
			waitFor(t, 20*time.Second, "pushedAt in the status", func() bool { return n.status("alice", id)["pushedAt"] != nil })
			if st := n.status("alice", id); st["status"] != "pending" {
				t.Errorf("status %v, want pending (a push is not a delivery to a connection)", st["status"])
			}
			if v := n.metric("pushlane_webpush_sent_total"); v != 2 {
				t.Errorf("pushlane_webpush_sent_total %v, want 2", v)
			}
			w.clock.Advance(time.Hour) // nothing left to push, however long it waits
			n.publish("carol", `"poll"`, "")
			if d := n.due(); d != 0 || len(w.svc.Pushes()) != 2 {
				t.Fatalf("later: %d due, %d pushes; want 0 and still 2", d, len(w.svc.Pushes()))
			}
		})
	}
}

// TestWebPushNotForWhatATabReceived (version 1): a message written to a connection before the
// delay ran out left the unread queue: it is not pushed. One published while the tab was gone
// is.
func TestWebPushNotForWhatATabReceived(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	n.mustRegister("alice", w.svc.Browser("laptop"))
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(n.url)+"/getPushNews?userId=alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	read := n.publish("alice", `{"title":"seen in the tab"}`, "")
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, frame, err := ws.ReadMessage(); err != nil || !strings.Contains(string(frame), "seen in the tab") {
		t.Fatalf("tab read %s, %v", frame, err)
	}
	waitFor(t, 20*time.Second, "the message marked sent", func() bool { return n.status("alice", read)["status"] == "sent" })
	ws.Close()
	waitFor(t, 20*time.Second, "the tab gone", func() bool { return n.node.Hub().Count("alice") == 0 })
	unread := n.publish("alice", `{"title":"tab closed"}`, "")
	w.clock.Advance(wpDelay)
	n.waitNoDue()
	pushes := w.svc.Pushes()
	if len(pushes) != 1 {
		t.Fatalf("%d pushes, want 1 (only the message no tab received)", len(pushes))
	}
	checkPush(t, pushes[0])
	if want := n.frame("alice", unread); string(pushes[0].Plaintext) != want {
		t.Fatalf("pushed %s, want %s", pushes[0].Plaintext, want)
	}
	if v := n.metric(`pushlane_webpush_dropped_total{reason="read"}`); v != 1 {
		t.Errorf(`dropped{reason="read"} = %v, want 1`, v)
	}
}

// TestWebPushNotAfterAnAck (version 2): writing a message to a version 2 connection does not
// take it out of the unread queue, an ack does: the acknowledged message is not pushed, the one
// that was only written is.
func TestWebPushNotAfterAnAck(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	n.mustRegister("alice", w.svc.Browser("phone"))
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(n.url)+"/getPushNews?userId=alice&v=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	acked := n.publish("alice", `"acked"`, "")
	written := n.publish("alice", `"written, not acked"`, "")
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for range 3 { // hello, then the two messages
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","id":"`+acked+`"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the ack recorded", func() bool { return n.status("alice", acked)["status"] == "acked" })
	waitFor(t, 20*time.Second, "the other marked sent", func() bool { return n.status("alice", written)["status"] == "sent" })
	w.clock.Advance(wpDelay)
	n.waitNoDue()
	pushes := w.svc.Pushes()
	if len(pushes) != 1 || string(pushes[0].Plaintext) != n.frame("alice", written) {
		t.Fatalf("pushes %d (%q), want only the unacknowledged message %s", len(pushes), plaintexts(pushes), written)
	}
}

func plaintexts(ps []webpushtest.Push) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Plaintext)
	}
	return out
}

// TestWebPushGoneSubscriptionIsDeleted: a 410 (or 404) from the push service deletes the
// subscription; the user's other subscription still gets the push.
func TestWebPushGoneSubscriptionIsDeleted(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	gone := n.mustRegister("alice", w.svc.Browser("old"))
	n.mustRegister("alice", w.svc.Browser("new"))
	w.svc.Answer("old", webpushtest.Answer{Status: http.StatusGone})
	n.publish("alice", `"hi"`, "")
	w.clock.Advance(wpDelay)
	n.waitNoDue()
	n.waitMetric(`pushlane_webpush_subscriptions_removed_total{reason="gone"}`, 1)
	subs := n.listSubs("alice")
	if len(subs) != 1 || subs[0].ID == gone {
		t.Fatalf("subscriptions after a 410: %+v, want only the other one", subs)
	}
	if status, _ := n.do(http.MethodDelete, "/webpush/subscriptions/"+gone+"?userId=alice", nil, ""); status != http.StatusNotFound {
		t.Fatalf("DELETE of the removed subscription: %d, want 404", status)
	}
	if v := n.metric("pushlane_webpush_sent_total"); v != 1 {
		t.Errorf("sent %v, want 1 (to the other subscription)", v)
	}
}

// listSubs is GET /webpush/subscriptions.
func (n *wpNode) listSubs(user string) []struct{ ID, Origin, CreatedAt string } {
	n.t.Helper()
	status, b := n.do(http.MethodGet, "/webpush/subscriptions?userId="+user, nil, "")
	var out struct {
		Subscriptions []struct{ ID, Origin, CreatedAt string }
	}
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil {
		n.t.Fatalf("list: %d %s", status, b)
	}
	return out.Subscriptions
}

// TestWebPushRetriesUntilSuccess: a 500 and a 429 are retried, the 429 not before its
// Retry-After, until the push service takes the push; then it is sent (pushedAt) and done.
func TestWebPushRetriesUntilSuccess(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	n.mustRegister("alice", w.svc.Browser("b"))
	w.svc.Answer("b", webpushtest.Answer{Status: 500}, webpushtest.Answer{Status: 429, RetryAfter: "120"})
	id := n.publish("alice", `"again"`, "")
	w.clock.Advance(wpDelay)
	w.svc.WaitPushes(t, 1, 20*time.Second)
	n.waitMetric("pushlane_webpush_retried_total", 1)
	w.clock.Advance(10 * time.Second) // webpush MaxBackoff of the tests
	w.svc.WaitPushes(t, 2, 20*time.Second)
	n.waitMetric("pushlane_webpush_retried_total", 2)
	w.clock.Advance(120 * time.Second)
	w.svc.WaitPushes(t, 3, 20*time.Second)
	n.waitNoDue()
	waitFor(t, 20*time.Second, "pushedAt", func() bool { return n.status("alice", id)["pushedAt"] != nil })
	pushes := w.svc.Pushes()
	if len(pushes) != 3 {
		t.Fatalf("%d requests, want 3 (500, 429, 201)", len(pushes))
	}
	for _, p := range pushes {
		checkPush(t, p)
	}
	if gap := pushes[2].At.Sub(pushes[1].At); gap < 120*time.Second {
		t.Fatalf("retried %v after a 429 with Retry-After: 120", gap)
	}
	for sample, want := range map[string]float64{`pushlane_webpush_failed_total{class="5xx"}`: 1, `pushlane_webpush_failed_total{class="4xx"}`: 1, "pushlane_webpush_sent_total": 1} {
		if v := n.metric(sample); v != want {
			t.Errorf("%s = %v, want %v", sample, v, want)
		}
	}
}

// TestWebPushExpiryStopsRetries: a push service that keeps failing is retried until the message
// expires, then never again.
func TestWebPushExpiryStopsRetries(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	n.mustRegister("alice", w.svc.Browser("b"))
	for range 100 {
		w.svc.Answer("b", webpushtest.Answer{Status: http.StatusServiceUnavailable})
	}
	n.publish("alice", `"short-lived"`, "90m") // due after 1h, expires 30 minutes later
	w.clock.Advance(wpDelay)
	w.svc.WaitPushes(t, 1, 20*time.Second)
	n.waitMetric("pushlane_webpush_retried_total", 1)
	w.clock.Advance(10 * time.Second)
	w.svc.WaitPushes(t, 2, 20*time.Second)
	n.waitMetric("pushlane_webpush_retried_total", 2)
	w.clock.Advance(time.Hour) // past the message's expiry
	n.waitNoDue()
	if v := n.metric(`pushlane_webpush_dropped_total{reason="expired"}`); v != 1 {
		t.Errorf(`dropped{reason="expired"} = %v, want 1`, v)
	}
	if got := len(w.svc.Pushes()); got != 2 {
		t.Fatalf("%d requests, want 2: none after the message expired", got)
	}
}

// TestWebPushResumesAfterRestart (sqlite): a push that was due when the server stopped (it had
// not come due yet) is sent by the server started on the same file, once.
func TestWebPushResumesAfterRestart(t *testing.T) {
	w := newWPWorld(t)
	path := t.TempDir() + "/push.db"
	onFile := func(c *config.Config) { c.Store.Path = path }
	first := w.node(onFile)
	first.mustRegister("alice", w.svc.Browser("b"))
	id := first.publish("alice", `{"title":"while we restart"}`, "")
	first.close()

	second := w.node(onFile)
	w.clock.Advance(wpDelay)
	w.svc.WaitPushes(t, 1, 20*time.Second)
	second.waitNoDue()
	pushes := w.svc.Pushes()
	if len(pushes) != 1 || string(pushes[0].Plaintext) != second.frame("alice", id) {
		t.Fatalf("pushes after the restart: %q, want the message once", plaintexts(pushes))
	}
	checkPush(t, pushes[0])
}

// TestWebPushClusterPushesOnce: three nodes on one Redis each poll for due pushes; every
// message reaches every subscription exactly once (one node claims each push).
func TestWebPushClusterPushesOnce(t *testing.T) {
	w := newWPWorld(t)
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	nodes := []*wpNode{w.node(redisCluster(prefix)), w.node(redisCluster(prefix)), w.node(redisCluster(prefix))}
	nodes[0].mustRegister("alice", w.svc.Browser("laptop"))
	nodes[1].mustRegister("alice", w.svc.Browser("phone"))
	const messages = 20
	ids := map[string]bool{}
	for i := range messages {
		ids[nodes[i%3].publish("alice", fmt.Sprintf(`{"n":%d}`, i), "")] = true
	}
	w.clock.Advance(wpDelay)
	w.svc.WaitPushes(t, 2*messages, 30*time.Second)
	nodes[2].waitNoDue()
	seen := map[string]int{}
	for _, p := range w.svc.Pushes() {
		checkPush(t, p)
		var frame struct{ ID string }
		if err := json.Unmarshal(p.Plaintext, &frame); err != nil || !ids[frame.ID] {
			t.Fatalf("pushed %s", p.Plaintext)
		}
		seen[p.Browser+"/"+frame.ID]++
	}
	if len(seen) != 2*messages {
		t.Fatalf("%d distinct pushes, want %d", len(seen), 2*messages)
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("%s pushed %d times", k, c)
		}
	}
	total := 0.0
	for _, n := range nodes {
		total += n.metric("pushlane_webpush_sent_total")
	}
	if total != 2*messages {
		t.Errorf("the nodes counted %v pushes sent, want %d", total, 2*messages)
	}
}

// TestWebPushRedirectsAreNotFollowed: a 3xx is the push service's answer: its Location is never
// requested, the push is not retried, and the message gains no pushedAt.
func TestWebPushRedirectsAreNotFollowed(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	n.mustRegister("alice", w.svc.Browser("b"))
	w.svc.Answer("b", webpushtest.Answer{Status: http.StatusTemporaryRedirect, Location: w.svc.URL() + "/moved"})
	id := n.publish("alice", `"x"`, "")
	w.clock.Advance(wpDelay)
	w.svc.WaitPushes(t, 1, 20*time.Second)
	n.waitNoDue()
	if r := w.svc.Redirected(); r != 0 {
		t.Fatalf("the redirect was followed %d times", r)
	}
	if v := n.metric(`pushlane_webpush_failed_total{class="3xx"}`); v != 1 {
		t.Errorf(`failed{class="3xx"} = %v, want 1`, v)
	}
	if st := n.status("alice", id); st["pushedAt"] != nil || len(w.svc.Pushes()) != 1 {
		t.Fatalf("after a redirect: pushedAt %v, %d requests", st["pushedAt"], len(w.svc.Pushes()))
	}
}

// TestWebPushLargeMessageIsTruncated: a message whose frame is over 3,000 bytes is pushed as
// {"id","userId","createdAt","truncated":true}.
func TestWebPushLargeMessageIsTruncated(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	n.mustRegister("alice", w.svc.Browser("b"))
	id := n.publish("alice", `"`+strings.Repeat("x", 3000)+`"`, "")
	w.clock.Advance(wpDelay)
	p := w.svc.WaitPushes(t, 1, 20*time.Second)[0]
	checkPush(t, p)
	var created struct{ CreatedAt string }
	st, _ := json.Marshal(n.status("alice", id))
	_ = json.Unmarshal(st, &created)
	if want := `{"id":"` + id + `","userId":"alice","createdAt":"` + created.CreatedAt + `","truncated":true}`; string(p.Plaintext) != want {
		t.Fatalf("plaintext %s, want %s", p.Plaintext, want)
	}
}

// TestWebPushSlowPushServiceDelaysNothing: while the push service answers nothing at all,
// publishing and WebSocket delivery go on.
func TestWebPushSlowPushServiceDelaysNothing(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(nil)
	for i := range 3 {
		name := fmt.Sprint("hung-", i)
		n.mustRegister("alice", w.svc.Browser(name))
		for range 50 {
			w.svc.Answer(name, webpushtest.Answer{Hang: true})
		}
	}
	for range 10 {
		n.publish("alice", `"to a hung push service"`, "")
	}
	w.clock.Advance(wpDelay)
	w.svc.WaitPushes(t, 16, 30*time.Second) // Concurrency requests hang; the rest wait for a slot
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(n.url)+"/getPushNews?userId=bob&since=0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i := range 20 {
		n.publish("bob", fmt.Sprintf(`{"n":%d}`, i), "")
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, frame, err := ws.ReadMessage(); err != nil || !strings.Contains(string(frame), fmt.Sprintf(`"n":%d`, i)) {
			t.Fatalf("bob's message %d: %s, %v", i, frame, err)
		}
	}
	if got := len(w.svc.Pushes()); got != 16 {
		t.Fatalf("%d requests reached the hung push service, want 16 (webpush concurrency)", got)
	}
}

// TestWebPushRegistration: the answers of the subscription routes, and what they refuse.
func TestWebPushRegistration(t *testing.T) {
	w := newWPWorld(t)
	n := w.node(func(c *config.Config) { c.WebPush.MaxPerUser = 2 })
	b := w.svc.Browser("b")
	status, body := n.do(http.MethodGet, "/webpush/vapidPublicKey", nil, "")
	if status != http.StatusOK || string(body) != `{"publicKey":"`+w.pair.Public+`"}`+"\n" {
		t.Fatalf("vapidPublicKey: %d %s", status, body)
	}
	valid := func(endpoint string) string {
		var sub map[string]any
		_ = json.Unmarshal([]byte(b.SubscriptionJSON()), &sub)
		sub["endpoint"] = endpoint
		out, _ := json.Marshal(sub)
		return string(out)
	}
	keys := `"keys":{"p256dh":"` + strings.Split(strings.Split(b.SubscriptionJSON(), `"p256dh":"`)[1], `"`)[0] + `","auth":"AAAAAAAAAAAAAAAAAAAAAA"}`
	for name, bodyText := range map[string]string{
		"not JSON":              `endpoint=x`,
		"trailing data":         b.SubscriptionJSON() + `{}`,
		"no keys":               `{"endpoint":"` + b.Endpoint + `"}`,
		"relative URL":          valid("/push/b"),
		"not a URL":             valid("https://exa mple.com/x"),
		"ftp":                   valid("ftp://push.example.com/x"),
		"http not listed":       valid("http://push.example.com/x"),
		"user info":             valid("https://user:pw@push.example.com/x"),
		"loopback":              valid("https://127.0.0.1:6379/"),
		"private":               valid("https://10.0.0.1/x"),
		"metadata":              valid("https://169.254.169.254/latest/meta-data/"),
		"unique local IPv6":     valid("https://[fd00::1]/x"),
		"localhost":             valid("https://localhost/x"),
		"IPv4-mapped loopback":  valid("https://[::ffff:127.0.0.1]/x"),
		"short auth":            `{"endpoint":"` + b.Endpoint + `","keys":{"p256dh":"BAAA","auth":"AAAA"}}`,
		"p256dh not a point":    `{"endpoint":"` + b.Endpoint + `","keys":{"p256dh":"` + strings.Repeat("A", 87) + `","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}`,
		"auth of 15 bytes":      `{"endpoint":"` + b.Endpoint + `",` + strings.Replace(keys, "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAA", 1) + `}`,
		"endpoint not a string": `{"endpoint":42,` + keys + `}`,
	} {
		if status, body := n.do(http.MethodPost, "/webpush/subscriptions?userId=alice", nil, bodyText); status != http.StatusBadRequest || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s, want 400", name, status, body)
		}
	}
	if status, _ := n.do(http.MethodPost, "/webpush/subscriptions?userId=alice", nil, `{"endpoint":"`+b.Endpoint+`",`+keys+`,"expirationTime":null,"other":1}`); status != http.StatusCreated {
		t.Fatalf("a valid subscription with extra fields: %d, want 201", status)
	}
	if subs := n.listSubs("alice"); len(subs) != 1 || subs[0].Origin != w.svc.URL() {
		t.Fatalf("after the refusals: %+v, want one subscription at %s", subs, w.svc.URL())
	}
	if status, _ := n.do(http.MethodPost, "/webpush/subscriptions?userId=a%20b", nil, b.SubscriptionJSON()); status != http.StatusBadRequest {
		t.Errorf("bad userId: %d, want 400", status)
	}
	if status, _ := n.do(http.MethodPost, "/webpush/subscriptions", nil, b.SubscriptionJSON()); status != http.StatusBadRequest {
		t.Errorf("no userId: %d, want 400", status)
	}
	// maxPerUser 2: a third replaces the oldest.
	second := n.mustRegister("alice", w.svc.Browser("c"))
	third := n.mustRegister("alice", w.svc.Browser("d"))
	if subs := n.listSubs("alice"); len(subs) != 2 || subs[0].ID != second || subs[1].ID != third {
		t.Fatalf("after a third: %+v, want [%s %s]", subs, second, third)
	}
	if v := n.metric(`pushlane_webpush_subscriptions_removed_total{reason="replaced"}`); v != 1 {
		t.Errorf(`removed{reason="replaced"} = %v, want 1`, v)
	}
	// DELETE: another user's id is not found; the owner's is removed once.
	for _, path := range []string{"/webpush/subscriptions/" + second + "?userId=bob", "/webpush/subscriptions/nope?userId=alice", "/webpush/subscriptions/%23seq?userId=alice"} {
		if status, _ := n.do(http.MethodDelete, path, nil, ""); status != http.StatusNotFound {
			t.Errorf("DELETE %s: %d, want 404", path, status)
		}
	}
	if status, body := n.do(http.MethodDelete, "/webpush/subscriptions/"+second+"?userId=alice", nil, ""); status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("DELETE: %d %q, want 204 without a body", status, body)
	}
	if status, _ := n.do(http.MethodDelete, "/webpush/subscriptions/"+second+"?userId=alice", nil, ""); status != http.StatusNotFound {
		t.Fatalf("DELETE again: %d, want 404", status)
	}
	if subs := n.listSubs("alice"); len(subs) != 1 || subs[0].ID != third {
		t.Fatalf("after DELETE: %+v", subs)
	}
}

// TestWebPushRoutesAreChecked: the subscription routes take the subscriber's checks: a token
// when auth.jwtSecret is set (401), the origin (403, and POST/DELETE from a foreign origin are
// refused by the cross-site rule), and are 404 while Web Push is off.
func TestWebPushRoutesAreChecked(t *testing.T) {
	w := newWPWorld(t)
	const secret = "webpush-test-secret-0123456789abcdef"
	n := w.node(func(c *config.Config) {
		c.Auth.JWTSecret = secret
		c.WebSocket.AllowedOrigins = []string{"https://app.example"}
	})
	b := w.svc.Browser("b")
	tok := signToken(t, secret, "alice")
	for _, tc := range []struct {
		method, path string
		header       http.Header
		want         int
	}{
		{http.MethodPost, "/webpush/subscriptions?userId=alice", nil, 401},
		{http.MethodPost, "/webpush/subscriptions?userId=alice&token=" + signToken(t, secret, "bob"), nil, 401},
		{http.MethodGet, "/webpush/subscriptions?userId=alice", nil, 401},
		{http.MethodDelete, "/webpush/subscriptions/x?userId=alice", nil, 401},
		{http.MethodPost, "/webpush/subscriptions?userId=alice&token=" + tok, http.Header{"Origin": {"https://evil.example"}}, 403},
		{http.MethodGet, "/webpush/subscriptions?userId=alice&token=" + tok, http.Header{"Origin": {"https://evil.example"}}, 403},
		{http.MethodPost, "/webpush/subscriptions?userId=alice&token=" + tok, http.Header{"Origin": {"https://app.example"}}, 201},
		{http.MethodGet, "/webpush/subscriptions?userId=alice&token=" + tok, nil, 200},
	} {
		if status, body := n.do(tc.method, tc.path, tc.header, b.SubscriptionJSON()); status != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, status, body, tc.want)
		}
	}
	// CORS for the listed origin: the preflight and the answer name it; a foreign one gets none.
	req, _ := http.NewRequest(http.MethodOptions, n.url+"/webpush/subscriptions?userId=alice", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight of a foreign origin allowed: %v", resp.Header)
	}

	off := w.node(func(c *config.Config) { c.WebPush.Enabled = false })
	for _, r := range [][2]string{{"GET", "/webpush/vapidPublicKey"}, {"POST", "/webpush/subscriptions?userId=alice"}, {"GET", "/webpush/subscriptions?userId=alice"}, {"DELETE", "/webpush/subscriptions/x?userId=alice"}} {
		if status, body := off.do(r[0], r[1], nil, b.SubscriptionJSON()); status != http.StatusNotFound || !strings.Contains(string(body), "Web Push is off") {
			t.Errorf("%s %s with Web Push off: %d %s", r[0], r[1], status, body)
		}
	}
	if status, _ := off.do(http.MethodGet, "/pushlane-sw.js", nil, ""); status != http.StatusOK {
		t.Errorf("the service worker with Web Push off: %d, want 200", status)
	}
}

// TestWebPushRefusedAfterDNSChange: an endpoint whose name resolved to a public address when it
// was registered, and to 127.0.0.1 when the push is sent (DNS rebinding), is not called.
func TestWebPushRefusedAfterDNSChange(t *testing.T) {
	w := newWPWorld(t)
	res := &switchResolver{addr: netip.MustParseAddr("93.184.216.34")} // resolution only: never dialled
	w.resolver = res
	n := w.node(nil)
	b := w.svc.Browser("b")
	u, _ := url.Parse(w.svc.URL())
	rebound := strings.Replace(b.SubscriptionJSON(), w.svc.URL(), "https://push.test:"+u.Port(), 1)
	if status, body := n.do(http.MethodPost, "/webpush/subscriptions?userId=alice", nil, rebound); status != http.StatusCreated {
		t.Fatalf("register push.test (public): %d %s", status, body)
	}
	res.set(netip.MustParseAddr("127.0.0.1"))
	n.publish("alice", `"x"`, "")
	w.clock.Advance(wpDelay)
	n.waitMetric(`pushlane_webpush_failed_total{class="refused"}`, 1)
	n.waitNoDue()
	if got := len(w.svc.Pushes()); got != 0 {
		t.Fatalf("the push service on 127.0.0.1 received %d requests", got)
	}
	// Registered now, the same name is refused at once.
	if status, _ := n.do(http.MethodPost, "/webpush/subscriptions?userId=bob", nil, rebound); status != http.StatusBadRequest {
		t.Fatalf("register push.test (now 127.0.0.1): %d, want 400", status)
	}
}

// switchResolver resolves push.test to one address, which the test changes.
type switchResolver struct {
	mu   sync.Mutex
	addr netip.Addr
}

func (r *switchResolver) set(a netip.Addr) {
	r.mu.Lock()
	r.addr = a
	r.mu.Unlock()
}

func (r *switchResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if host != "push.test" {
		return nil, fmt.Errorf("no such host %s", host)
	}
	return []netip.Addr{r.addr}, nil
}

// TestWebPushStopHandsBackInFlightPushes (sqlite): a server stopped while a push request hangs
// cancels it and hands the push back to the store as due now, so the next server sends it at
// once, not after the claim's lease.
func TestWebPushStopHandsBackInFlightPushes(t *testing.T) {
	w := newWPWorld(t)
	path := t.TempDir() + "/push.db"
	onFile := func(c *config.Config) { c.Store.Path = path }
	first := w.node(onFile)
	first.mustRegister("alice", w.svc.Browser("b"))
	w.svc.Answer("b", webpushtest.Answer{Hang: true})
	id := first.publish("alice", `"in flight at shutdown"`, "")
	w.clock.Advance(wpDelay)
	w.svc.WaitPushes(t, 1, 20*time.Second)
	first.close()

	second := w.node(onFile) // the clock does not move: only a push due now can go out
	pushes := w.svc.WaitPushes(t, 2, 20*time.Second)
	second.waitNoDue()
	checkPush(t, pushes[1])
	if string(pushes[1].Plaintext) != second.frame("alice", id) || pushes[1].Status != http.StatusCreated {
		t.Fatalf("after the restart: %s answered %d", pushes[1].Plaintext, pushes[1].Status)
	}
}
