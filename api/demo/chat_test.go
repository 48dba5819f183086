package demo

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var chatClock = time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))

func newChatEnv(t *testing.T, mutate func(*Options)) *env {
	return newEnv(t, func(o *Options) {
		o.Now = func() time.Time { return chatClock }
		if mutate != nil {
			mutate(o)
		}
	})
}

// chatFrame is any frame of /chat: a message, an error, or a notice.
type chatFrame struct {
	Username *string `json:"username"`
	Text     *string `json:"text"`
	At       *string `json:"at"`
	Error    *string `json:"error"`
	System   *string `json:"system"`
	Members  int     `json:"members"`
}

func readChatFrame(t *testing.T, c *websocket.Conn) chatFrame {
	t.Helper()
	var f chatFrame
	if err := json.Unmarshal([]byte(readText(t, c)), &f); err != nil {
		t.Fatalf("chat frame is not JSON: %v", err)
	}
	return f
}

// readChat returns the next message or error, skipping join/leave notices.
func readChat(t *testing.T, c *websocket.Conn) chatFrame {
	t.Helper()
	for {
		if f := readChatFrame(t, c); f.System == nil {
			return f
		}
	}
}

// waitMembers reads notices until one says the room holds n members.
func waitMembers(t *testing.T, c *websocket.Conn, n int) {
	t.Helper()
	for {
		f := readChatFrame(t, c)
		if f.System == nil {
			t.Fatalf("got a message while waiting for %d members", n)
		}
		if f.Members == n {
			return
		}
	}
}

func dialMembers(t *testing.T, e *env, n int) []*websocket.Conn {
	t.Helper()
	cs := make([]*websocket.Conn, n)
	for i := range cs {
		cs[i] = e.dial("/chat")
	}
	for _, c := range cs {
		waitMembers(t, c, n)
	}
	return cs
}

func sendJSON(t *testing.T, c *websocket.Conn, s string) {
	t.Helper()
	send(t, c, websocket.TextMessage, []byte(s))
}

func expectMessage(t *testing.T, f chatFrame, user, text string) {
	t.Helper()
	if f.Error != nil {
		t.Fatalf("got error %q, want message %q from %q", *f.Error, text, user)
	}
	if f.Username == nil || *f.Username != user || f.Text == nil || *f.Text != text {
		t.Fatalf("got %+v, want %q from %q", f, text, user)
	}
	if f.At == nil || *f.At != "2024-05-01T10:00:00Z" {
		t.Fatalf("at = %v, want the clock's time in UTC RFC 3339", f.At)
	}
}

func TestChatBroadcastsToEveryMemberIncludingSender(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, nil)
	cs := dialMembers(t, e, 3)
	sendJSON(t, cs[1], `{"username":"bob","text":"hello <all> & \"you\""}`)
	for _, c := range cs {
		expectMessage(t, readChat(t, c), "bob", `hello <all> & "you"`)
	}
	// Order is the same for everyone: two senders, every member sees the same sequence.
	sendJSON(t, cs[0], `{"username":"alice","text":"one"}`)
	sendJSON(t, cs[2], `{"username":"carol","text":"two"}`)
	var first string
	for i, c := range cs {
		a, b := readChat(t, c), readChat(t, c)
		seq := *a.Text + "," + *b.Text
		if i == 0 {
			first = seq
		} else if seq != first {
			t.Fatalf("member %d saw %s, member 0 saw %s", i, seq, first)
		}
	}
}

func TestChatNoticesCountMembers(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, nil)
	cs := dialMembers(t, e, 3)
	_ = cs[2].Close()
	for _, c := range cs[:2] {
		f := readChatFrame(t, c)
		if f.System == nil || *f.System != "member left" || f.Members != 2 {
			t.Fatalf("got %+v, want a 'member left' notice with 2 members", f)
		}
	}
}

func TestChatInvalidMessageAnswersOnlyTheSender(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, nil)
	cs := dialMembers(t, e, 3)
	bad := []string{
		`not json`,
		`{"username":"bob","text":"hi","extra":1}`,
		`{"username":"bob"}`,
		`{"username":"","text":"hi"}`,
		`{"username":42,"text":"hi"}`,
		`["bob","hi"]`,
		`{"username":"bob","text":"hi"} {}`,
	}
	for _, msg := range bad {
		sendJSON(t, cs[0], msg)
		f := readChat(t, cs[0])
		if f.Error == nil || *f.Error == "" || f.Text != nil {
			t.Fatalf("sent %s: got %+v, want an error", msg, f)
		}
	}
	send(t, cs[0], websocket.BinaryMessage, []byte(`{"username":"bob","text":"hi"}`))
	if f := readChat(t, cs[0]); f.Error == nil {
		t.Fatalf("binary frame: got %+v, want an error", f)
	}
	// The others got none of it: their next frame is the next valid message.
	sendJSON(t, cs[2], `{"username":"carol","text":"valid"}`)
	for _, c := range cs {
		expectMessage(t, readChat(t, c), "carol", "valid")
	}
}

func TestParseChatMessage(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 64)
	tests := []struct {
		in      string
		user    string
		wantErr string // substring; "" = valid
	}{
		{`{"username":"alice","text":"hi"}`, "alice", ""},
		{` {"text":"hi","username":"alice"} `, "alice", ""},
		{`{"username":"` + long + `","text":"hi"}`, long, ""},
		{`{"username":"` + long + `x","text":"hi"}`, "", "longer than 64"},
		{`{"username":"alice","text":"` + strings.Repeat("x", 101) + `"}`, "", "longer than 100 bytes"},
		{`{"username":"alice","text":""}`, "", "text is required"},
		{`{"username":"alice"}`, "", "text is required"},
		{`{"text":"hi"}`, "", "username is required"},
		{`{"username":null,"text":"hi"}`, "", "must be a string"},
		{`{"username":"alice","text":7}`, "", "text must be a string"},
		{`{"username":"alice","text":"hi","at":"x"}`, "", `unknown field "at"`},
		{`{"Username":"alice","text":"hi"}`, "", `unknown field "Username"`},
		{`{"username":"alice","username":"eve","text":"hi"}`, "", "twice"},
		{`{"username":"al\u0000ice","text":"hi"}`, "", "control"},
		{`{"username":"alice","text":"hi"}x`, "", "invalid JSON"},
		{"{\"username\":\"al\xffice\",\"text\":\"hi\"}", "", "UTF-8"},
		{`null`, "", "JSON object"},
		{`"hi"`, "", "JSON object"},
		{``, "", "invalid JSON"},
	}
	for _, tc := range tests {
		m, err := ParseChatMessage([]byte(tc.in), 100)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.wantErr == "" && m.Username != tc.user:
			t.Errorf("%s: username %q", tc.in, m.Username)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tc.in, err, tc.wantErr)
		}
	}
}

// A member that does not read is closed with 4001 once its queue is full; the room and the
// other members go on.
func TestChatSlowMemberClosed4001(t *testing.T) {
	// Not parallel: it fills socket buffers and waits on the close handshake, which other tests'
	// load can slow past the grace period.
	e := newChatEnv(t, func(o *Options) {
		o.SendQueue = 4
		o.MaxMessageBytes = 65536
		// The slow member does not read, so it answers no ping: PongWait must outlast filling
		// its socket buffers, or it is cut for silence (no close frame) instead of for slowness.
		// It reads again as soon as it is dropped, well within WriteWait, so the server's last,
		// blocked write completes and the close frame follows it.
		o.PingInterval = 5 * time.Second
		o.PongWait = 20 * time.Second
		o.WriteWait = 10 * time.Second
	})
	cs := dialMembers(t, e, 2)
	fast, slow := cs[0], cs[1]
	text := strings.Repeat("x", 60000)
	msg := `{"username":"fast","text":"` + text + `"}`
	left, sent := false, 0
	for ; !left; sent++ {
		if sent == 5000 {
			t.Fatal("the slow member was never dropped")
		}
		sendJSON(t, fast, msg)
		for { // until our own message comes back; note the slow member leaving on the way
			f := readChatFrame(t, fast)
			if f.System != nil {
				if *f.System != "member left" || f.Members != 1 {
					t.Fatalf("unexpected notice %+v", f)
				}
				left = true
				continue
			}
			if f.Text == nil || len(*f.Text) != len(text) {
				t.Fatalf("unexpected frame %+v", f)
			}
			break
		}
	}
	if code := expectClose(t, slow); code != CloseSlowConsumer {
		t.Fatalf("slow member closed with %d, want 4001", code)
	}
	sendJSON(t, fast, `{"username":"fast","text":"still works"}`)
	expectMessage(t, readChat(t, fast), "fast", "still works")
}
