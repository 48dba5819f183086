package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"pushlane/config"

	"pushlane/client"
)

// frameIDs decodes stdout lines of a raw listen: one JSON frame each; it returns their ids.
func frameIDs(t *testing.T, lines []string) []string {
	t.Helper()
	var ids []string
	for _, l := range lines {
		var f wireFrame
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("line %q is not one JSON frame: %v", l, err)
		}
		ids = append(ids, f.ID)
	}
	return ids
}

func fmtIDs(ids ...uint64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatUint(id, 10)
	}
	return out
}

func TestListenCount(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	l := n.start(nil, "listen", "--user", "alice", "--count", "2")
	n.waitConns("alice", 1)
	id1 := n.publish("alice", `{"title": "one"}`)
	id2 := n.publish("alice", `{"title":"two","nested":{"a":[1,2]}}`)
	if code := l.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, l.stderr)
	}
	lines := l.stdout.lines()
	if got, want := frameIDs(t, lines), fmtIDs(id1, id2); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ids %v, want %v (stdout %q)", got, want, l.stdout)
	}
	var f wireFrame
	_ = json.Unmarshal([]byte(lines[0]), &f)
	if f.UserID != "alice" || !sameJSON(f.Data, []byte(`{"title":"one"}`)) || f.CreatedAt == "" {
		t.Fatalf("first line %q", lines[0])
	}
	if strings.Contains(l.stdout.String(), " ") {
		t.Fatalf("stdout %q: frames should be printed compact, one per line", l.stdout)
	}
	n.waitConns("alice", 0) // the listener closed its connection
}

func TestListenPretty(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	l := n.start(nil, "listen", "--user", "bob", "--pretty", "--count", "2")
	n.waitConns("bob", 1)
	id := n.publish("bob", `{"a": 1}`)
	if r := n.run("send", "--broadcast", `"all"`); r.code != 0 {
		t.Fatalf("broadcast: exit %d, stderr %q", r.code, r.stderr)
	}
	if code := l.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, l.stderr)
	}
	lines := l.stdout.lines()
	msg := regexp.MustCompile(`^#` + strconv.FormatUint(id, 10) + `  \d{4}-\d\d-\d\dT[0-9:.]+Z  \{"a":1\}$`)
	bc := regexp.MustCompile(`^broadcast  \d{4}-\d\d-\d\dT[0-9:.]+Z  "all"$`)
	if len(lines) != 2 || !msg.MatchString(lines[0]) || !bc.MatchString(lines[1]) {
		t.Fatalf("stdout %q, want a message line and a broadcast line", l.stdout)
	}
}

func TestListenSince(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{driver: "sqlite"})
	id1 := n.publish("carol", `1`)
	id2 := n.publish("carol", `2`)
	id3 := n.publish("carol", `3`)
	r := n.run("listen", "--user", "carol", "--since", strconv.FormatUint(id1, 10), "--count", "2")
	if r.code != 0 {
		t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if got, want := frameIDs(t, lines), fmtIDs(id2, id3); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ids %v, want %v", got, want)
	}
	// since=0 replays everything stored, delivered or not.
	r = n.run("listen", "--user", "carol", "--since", "0", "--count", "3")
	lines = strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if got, want := frameIDs(t, lines), fmtIDs(id1, id2, id3); r.code != 0 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("exit %d, ids %v, want %v", r.code, got, want)
	}
}

// TestListenReconnectsWithSince drops the listener's connection server-side (close 1001), holds
// its reconnects off with 503s while a message is published and written to another connection
// of the same user, then lets it back in: it must reconnect with since=<last id> and print the
// missed message, then live ones, each exactly once.
func TestListenReconnectsWithSince(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	l := n.start(nil, "listen", "--user", "r", "--count", "3")
	n.waitConns("r", 1)
	id1 := n.publish("r", `"one"`)
	l.waitLines(t, 1)

	n.refuse.Store(true)
	if kicked := n.hub.Kick("r", websocket.CloseGoingAway, "restarting"); kicked != 1 {
		t.Fatalf("kicked %d connections, want 1", kicked)
	}
	n.waitConns("r", 0)
	other := n.dial("r", "bypass=1") // not held off; makes id2 "written", so only since brings it back
	n.waitConns("r", 1)
	id2 := n.publish("r", `"two"`)
	if f := readFrame(t, other); f.ID != strconv.FormatUint(id2, 10) {
		t.Fatalf("other connection got %+v, want id %d", f, id2)
	}
	waitFor(t, "a refused reconnect", func() bool { return n.refusedCount() >= 1 })
	n.refuse.Store(false)

	n.waitConns("r", 2) // the listener is back
	l.waitLines(t, 2)
	id3 := n.publish("r", `"three"`)
	if code := l.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr %q", code, l.stderr)
	}
	if got, want := frameIDs(t, l.stdout.lines()), fmtIDs(id1, id2, id3); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ids %v, want %v (stderr %q)", got, want, l.stderr)
	}

	var listenerQueries []string
	for _, q := range n.subscribeQueries() {
		if !strings.Contains(q, "bypass") {
			listenerQueries = append(listenerQueries, q)
		}
	}
	if len(listenerQueries) < 3 || strings.Contains(listenerQueries[0], "since") {
		t.Fatalf("subscribe queries %v: want a first one without since, a refused one and the reconnect", listenerQueries)
	}
	for _, q := range listenerQueries[1:] {
		if !strings.Contains(q, fmt.Sprintf("since=%d", id1)) {
			t.Fatalf("reconnect query %q lacks since=%d (all: %v)", q, id1, listenerQueries)
		}
	}
	for _, want := range []string{"close 1001", "reconnecting in", "503", fmt.Sprintf("since=%d", id1)} {
		if !strings.Contains(l.stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", l.stderr, want)
		}
	}
}

func TestListenRemovedExits1(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	l := n.start(nil, "listen", "--user", "gone")
	n.waitConns("gone", 1)
	req, _ := http.NewRequest(http.MethodDelete, n.srv.URL+"/deleteClient/gone", nil)
	resp, err := n.srv.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	resp.Body.Close()
	if code := l.wait(t); code != 1 || !strings.Contains(l.stderr.String(), "removed") {
		t.Fatalf("exit %d, stderr %q; want 1 and a removal message", code, l.stderr)
	}
	if q := n.subscribeQueries(); len(q) != 1 {
		t.Fatalf("subscribe requests %v: a removed listener must not reconnect", q)
	}
}

func TestListenTokenExpiredExits1(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	n := newNode(t, nodeOptions{tune: func(c *config.Config) {
		c.Auth.JWTSecret = secret
		c.WebSocket.PingInterval = 100 * time.Millisecond // the expiry check runs with the heartbeat
	}})
	tok := token(t, secret, "exp", time.Now().Add(2500*time.Millisecond))
	l := n.start(nil, "listen", "--user", "exp", "--token", tok)
	n.waitConns("exp", 1)
	if code := l.wait(t); code != 1 || !strings.Contains(l.stderr.String(), "1008") {
		t.Fatalf("exit %d, stderr %q; want 1 naming close 1008", code, l.stderr)
	}
}

func TestListenRefusedExits1(t *testing.T) {
	t.Parallel()
	const secret = "s3cret"
	n := newNode(t, nodeOptions{tune: func(c *config.Config) { c.Auth.JWTSecret = secret }})

	r := n.run("listen", "--user", "dave")
	if r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "--token") {
		t.Fatalf("no token: exit %d, stderr %q; want 1, the 401 and a hint", r.code, r.stderr)
	}
	r = n.run("listen", "--user", "dave", "--token", token(t, secret, "someone-else", time.Now().Add(time.Hour)))
	if r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "sub") {
		t.Fatalf("wrong sub: exit %d, stderr %q", r.code, r.stderr)
	}

	// A valid token, from $PUSH_TOKEN.
	env := map[string]string{envToken: token(t, secret, "dave", time.Now().Add(time.Hour))}
	l := n.start(env, "listen", "--user", "dave", "--count", "1")
	n.waitConns("dave", 1)
	id := n.publish("dave", `{}`)
	if code := l.wait(t); code != 0 || strings.Join(frameIDs(t, l.stdout.lines()), ",") != strconv.FormatUint(id, 10) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, l.stdout, l.stderr)
	}
	if strings.Contains(l.stderr.String(), env[envToken]) {
		t.Fatal("the token was logged")
	}
}

func TestListenUsageErrors(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"listen"}, "--user is required"},
		{[]string{"listen", "--user", "a/b"}, "--user \"a/b\""},
		{[]string{"listen", "--user", "u", "--since", "007"}, "--since"},
		{[]string{"listen", "--user", "u", "--since", "-1"}, "--since"},
		{[]string{"listen", "--user", "u", "--count", "-1"}, "--count"},
		{[]string{"listen", "--user", "u", "extra"}, "unexpected argument"},
	}
	for _, tc := range cases {
		r := n.run(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	if q := n.subscribeQueries(); len(q) != 0 {
		t.Fatalf("usage errors subscribed: %v", q)
	}
}

func TestListenStopsOnCancel(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	l := n.start(nil, "listen", "--user", "eve")
	n.waitConns("eve", 1)
	l.cancel()
	if code := l.wait(t); code != 0 {
		t.Fatalf("exit %d after cancel; stderr %q", code, l.stderr)
	}
	n.waitConns("eve", 0)
}

// TestListenStopsWhileRetrying cancels a listener that cannot connect (the node refuses it) in
// the middle of its backoff.
func TestListenStopsWhileRetrying(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	n.refuse.Store(true)
	l := n.start(nil, "listen", "--user", "frank")
	waitFor(t, "a refused attempt", func() bool { return n.refusedCount() >= 1 })
	waitFor(t, "the retry message", func() bool { return strings.Contains(l.stderr.String(), "reconnecting in") })
	l.cancel()
	if code := l.wait(t); code != 0 {
		t.Fatalf("exit %d after cancel; stderr %q", code, l.stderr)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{tls: true})
	if !strings.HasPrefix(n.srv.URL, "https://") {
		t.Fatalf("server URL %s", n.srv.URL)
	}
	r := n.run("send", "--user", "tls", "{}")
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("send without --insecure: exit %d, stderr %q; want 1 and a certificate error", r.code, r.stderr)
	}
	r = n.run("listen", "--user", "tls", "--count", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "--insecure") {
		t.Fatalf("listen without --insecure: exit %d, stderr %q; want 1 and a hint", r.code, r.stderr)
	}

	l := n.start(nil, "listen", "--insecure", "--user", "tls", "--count", "1")
	n.waitConns("tls", 1)
	waitFor(t, "the wss:// URL it connected to on stderr", func() bool { return strings.Contains(l.stderr.String(), "connected to wss://") })
	if r = n.run("send", "--insecure", "--user", "tls", `"secure"`); r.code != 0 {
		t.Fatalf("send --insecure: exit %d, stderr %q", r.code, r.stderr)
	}
	if code := l.wait(t); code != 0 || !strings.Contains(l.stdout.String(), `"secure"`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, l.stdout, l.stderr)
	}
}

// token signs an HS256 subscriber token.
func token(t *testing.T, secret, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestListenAck: by default the listener subscribes with v=2 and, once it has printed a message,
// acknowledges it; --ack=false subscribes with version 1.
func TestListenAck(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	id := n.publish("ack-user", `{"n":1}`)
	r := n.run("listen", "--user", "ack-user", "--count", "1")
	if r.code != 0 || frameIDs(t, strings.Split(strings.TrimSpace(r.stdout), "\n"))[0] != strconv.FormatUint(id, 10) {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	qs := n.subscribeQueries()
	if len(qs) != 1 || !strings.Contains(qs[0], "v=2") {
		t.Fatalf("subscribe queries %q, want one with v=2", qs)
	}
	c, _ := client.New(n.srv.URL)
	defer c.CloseIdleConnections()
	waitFor(t, "the message acked", func() bool {
		st, err := c.Status(t.Context(), "ack-user", strconv.FormatUint(id, 10))
		return err == nil && st.Status == client.StatusAcked
	})

	// --ack=false: version 1, no acknowledgement.
	id1 := n.publish("v1-user", `{"n":2}`)
	if r := n.run("listen", "--ack=false", "--user", "v1-user", "--count", "1"); r.code != 0 {
		t.Fatalf("--ack=false: exit %d, stderr %q", r.code, r.stderr)
	}
	if qs := n.subscribeQueries(); qs[len(qs)-1] != "userId=v1-user" {
		t.Fatalf("subscribe queries %q, want the last one without v=2", qs)
	}
	if st, err := c.Status(t.Context(), "v1-user", strconv.FormatUint(id1, 10)); err != nil || st.Status == client.StatusAcked {
		t.Fatalf("status of a message printed by a version 1 listener: %+v, %v; want not acked", st, err)
	}
}
