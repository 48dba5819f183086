package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"pushlane/config"
)

var resultLine = regexp.MustCompile(`^([A-Za-z0-9._:@-]+)  id=([0-9]+)  online=(true|false)$`)

// parseResults checks that stdout is only result lines and returns them as user -> id.
func parseResults(t *testing.T, stdout string) (users []string, ids []string, online []string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		m := resultLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("stdout line %q is not USER  id=ID  online=BOOL (stdout %q)", l, stdout)
		}
		users, ids, online = append(users, m[1]), append(ids, m[2]), append(online, m[3])
	}
	return users, ids, online
}

func TestSendToOneUser(t *testing.T) {
	t.Parallel()
	for _, driver := range []string{"memory", "sqlite"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			n := newNode(t, nodeOptions{driver: driver})
			r := n.run("send", "--user", "alice", `{"title":"hi <b>&</b>", "n": [1, 2]}`)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			users, ids, online := parseResults(t, r.stdout)
			if len(users) != 1 || users[0] != "alice" || online[0] != "false" {
				t.Fatalf("stdout %q", r.stdout)
			}
			// The stored message is exactly the DATA given, replayed to a later subscriber.
			f := readFrame(t, n.dial("alice", "since=0"))
			if f.ID != ids[0] || !sameJSON(f.Data, []byte(`{"title":"hi <b>&</b>","n":[1,2]}`)) {
				t.Fatalf("frame %+v, want id %s and the data sent", f, ids[0])
			}
			if strings.Contains(string(f.Data), `\u003c`) {
				t.Fatalf("data %s was HTML-escaped on the way", f.Data)
			}
		})
	}
}

func TestSendOnlineAndTTL(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	conn := n.dial("bob", "")
	n.waitConns("bob", 1)
	r := n.run("send", "--ttl", "1h", "--user", "bob", `"plain string"`)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	_, ids, online := parseResults(t, r.stdout)
	if online[0] != "true" {
		t.Fatalf("online=%s for a connected user; stdout %q", online[0], r.stdout)
	}
	if f := readFrame(t, conn); f.ID != ids[0] || string(f.Data) != `"plain string"` {
		t.Fatalf("frame %+v", f)
	}
}

func TestSendToSeveralUsers(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	r := n.run("send", "--user", "u1", "--user", "u2", "--user", "u3", "[1,2,3]")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	users, ids, _ := parseResults(t, r.stdout)
	if strings.Join(users, ",") != "u1,u2,u3" {
		t.Fatalf("users %v, want u1,u2,u3 (stdout %q)", users, r.stdout)
	}
	for i, u := range users {
		if f := readFrame(t, n.dial(u, "since=0")); f.ID != ids[i] || string(f.Data) != "[1,2,3]" {
			t.Fatalf("%s: frame %+v, want id %s", u, f, ids[i])
		}
	}
}

func TestSendJSONOutput(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	r := n.run("send", "--json", "--user", "u1", "--user", "u2", "true")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	var out struct {
		Results []struct {
			UserID string `json:"userId"`
			ID     string `json:"id"`
			Online *bool  `json:"online"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Results) != 2 || out.Results[0].Online == nil {
		t.Fatalf("stdout %q is not the publish response: %v", r.stdout, err)
	}
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") {
		t.Fatalf("stdout %q: want one line", r.stdout)
	}
}

func TestSendFromStdin(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	r := n.runWith(nil, "{\n  \"from\": \"stdin\"\n}\n", n.withServer([]string{"send", "--user", "carol", "-"})...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	_, ids, _ := parseResults(t, r.stdout)
	if f := readFrame(t, n.dial("carol", "since=0")); f.ID != ids[0] || !sameJSON(f.Data, []byte(`{"from":"stdin"}`)) {
		t.Fatalf("frame %+v", f)
	}
}

func TestSendBroadcast(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	a1, a2, b := n.dial("a", ""), n.dial("a", ""), n.dial("b", "")
	n.waitConns("a", 2)
	n.waitConns("b", 1)
	before := n.heads("a", "b")
	r := n.run("send", "--broadcast", `{"maintenance":true}`)
	if r.code != 0 || r.stdout != "connections=3\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want connections=3", r.code, r.stdout, r.stderr)
	}
	for i, ws := range []*websocket.Conn{a1, a2, b} {
		f := readFrame(t, ws)
		want := []string{"a", "a", "b"}[i]
		if !f.Broadcast || f.ID != "" || f.UserID != want || string(f.Data) != `{"maintenance":true}` {
			t.Fatalf("frame %+v, want a broadcast to %s", f, want)
		}
	}
	if after := n.heads("a", "b"); !slices.Equal(after, before) {
		t.Fatalf("a broadcast was stored: newest ids of a, b went from %v to %v", before, after)
	}
}

// TestSendUsageErrors covers command lines refused before any request: exit 2, a reason on
// stderr, nothing on stdout, nothing stored.
func TestSendUsageErrors(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	cases := []struct {
		name  string
		args  []string
		stdin string
		want  string // on stderr
	}{
		{"not JSON", []string{"--user", "u", "hello"}, "", "not valid JSON"},
		{"truncated JSON", []string{"--user", "u", `{"a":`}, "", "not valid JSON"},
		{"two values", []string{"--user", "u", `{} {}`}, "", "not valid JSON"},
		{"empty", []string{"--user", "u", ""}, "", "DATA is empty"},
		{"null", []string{"--user", "u", "null"}, "", "must not be null"},
		{"bad stdin", []string{"--user", "u", "-"}, "{oops", "not valid JSON"},
		{"empty stdin", []string{"--user", "u", "-"}, "", "DATA is empty"},
		{"no DATA", []string{"--user", "u"}, "", "exactly one DATA"},
		{"two DATA", []string{"--user", "u", "1", "2"}, "", "exactly one DATA"},
		{"no user", []string{"{}"}, "", "--user (or --broadcast) is required"},
		{"bad user", []string{"--user", "a b", "{}"}, "", "--user \"a b\""},
		{"user and broadcast", []string{"--user", "u", "--broadcast", "{}"}, "", "exclude each other"},
		{"broadcast ttl", []string{"--broadcast", "--ttl", "1h", "{}"}, "", "--ttl does not apply"},
		{"bad ttl", []string{"--user", "u", "--ttl", "soon", "{}"}, "", "--ttl \"soon\""},
		{"zero ttl", []string{"--user", "u", "--ttl", "0s", "{}"}, "", "above zero"},
		{"unknown flag", []string{"--nope", "{}"}, "", "flag provided but not defined"},
		{"bad server", []string{"--server", "ftp://x", "--user", "u", "{}"}, "", "scheme must be http or https"},
	}
	// Every case names user u or no user at all (the broadcast ones have no recipient).
	before := n.heads("u")
	for _, tc := range cases {
		r := n.runWith(nil, tc.stdin, n.withServer(append([]string{"send"}, tc.args...))...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.name, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	if after := n.heads("u"); !slices.Equal(after, before) {
		t.Fatalf("a refused command line stored a message: newest id of u went from %v to %v", before, after)
	}
}

func TestSendDataAfterDoubleDash(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{})
	r := n.run("send", "--user", "u", "--", "-1")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if f := readFrame(t, n.dial("u", "since=0")); string(f.Data) != "-1" {
		t.Fatalf("frame %+v", f)
	}
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{tune: func(c *config.Config) { c.Auth.APIKeys = []string{"k1", "k2"} }})
	srv := []string{"--server", n.srv.URL}

	r := n.run("send", "--user", "u", "{}")
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "401") ||
		!strings.Contains(r.stderr, "missing API key") || !strings.Contains(r.stderr, "--key") {
		t.Fatalf("no key: exit %d, stdout %q, stderr %q; want exit 1 with the server's 401 reason and a hint", r.code, r.stdout, r.stderr)
	}
	r = n.run("send", "--key", "wrong", "--user", "u", "{}")
	if r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "invalid API key") {
		t.Fatalf("wrong key: exit %d, stderr %q", r.code, r.stderr)
	}
	r = n.run("clients")
	if r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("clients without key: exit %d, stderr %q", r.code, r.stderr)
	}

	if r = n.run("send", "--key", "k2", "--user", "u", "{}"); r.code != 0 {
		t.Fatalf("--key k2: exit %d, stderr %q", r.code, r.stderr)
	}
	env := map[string]string{envKey: "k1", envServer: n.srv.URL}
	if r = n.runWith(env, "", "send", "--broadcast", "{}"); r.code != 0 || r.stdout != "connections=0\n" {
		t.Fatalf("$%s: exit %d, stdout %q, stderr %q", envKey, r.code, r.stdout, r.stderr)
	}
	if r = n.runWith(env, "", "clients"); r.code != 0 {
		t.Fatalf("clients with $%s: exit %d, stderr %q", envKey, r.code, r.stderr)
	}
	// A flag wins over the environment.
	if r = n.runWith(env, "", append([]string{"send", "--key", "wrong", "--user", "u", "{}"}, srv...)...); r.code != 1 {
		t.Fatalf("--key wrong over $%s: exit %d", envKey, r.code)
	}
}

func TestServerErrorAndUnreachable(t *testing.T) {
	t.Parallel()
	n := newNode(t, nodeOptions{tune: func(c *config.Config) { c.WebSocket.MaxMessageBytes = 64 }})
	r := n.run("send", "--user", "u", fmt.Sprintf("%q", strings.Repeat("x", 200)))
	if r.code != 1 || !strings.Contains(r.stderr, "413") {
		t.Fatalf("too big: exit %d, stderr %q; want exit 1 naming 413", r.code, r.stderr)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r = n.runWith(nil, "", "send", "--server", addr, "--user", "u", "{}")
	if r.code != 1 || r.stderr == "" {
		t.Fatalf("unreachable: exit %d, stderr %q", r.code, r.stderr)
	}
}
