package main

// Root-level tests of the whole program. This file holds the in-process tests, which call run()
// exactly as main does, and the helpers they share with process_test.go, which runs the built
// binary as a child process (kill -9, SIGTERM).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pushlane-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create temp dir for the pushlane binary:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		// In-process runs of the server (run) must leave no goroutine behind.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// syncBuffer is an io.Writer that tests may read while the program writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// noEnv is the getenv of in-process runs: the host's PUSH_* variables must not change the test.
func noEnv(string) string { return "" }

// waitFor polls cond until it holds or the deadline passes, then fails the test naming what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testConfig writes a config file into dir for a node listening on addr, with its SQLite file
// in dir too, and returns both paths. The timeouts are short so that shutdown tests stay fast:
// a client that does not answer the close frame is cut after min(writeWait, 2s).
func testConfig(t *testing.T, dir, addr string) (cfgPath, dbPath string) {
	t.Helper()
	return testConfigSync(t, dir, addr, "full")
}

// testConfigSync is testConfig with store.sync set.
func testConfigSync(t *testing.T, dir, addr, storeSync string) (cfgPath, dbPath string) {
	t.Helper()
	dbPath = filepath.Join(dir, "data", "push.db")
	yaml := fmt.Sprintf(`server:
  addr: %q
  shutdownTimeout: 5s
websocket:
  writeWait: 2s
store:
  driver: sqlite
  path: %q
  sync: %s
broker:
  driver: local
log:
  level: info
`, addr, dbPath, storeSync)
	cfgPath = filepath.Join(dir, "pushlane.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, dbPath
}

var listeningLine = regexp.MustCompile(`pushlane listening on http://(\S+)`)

// waitHealthy polls GET /healthz until it answers 200 with status ok.
func waitHealthy(t *testing.T, client *http.Client, base string) {
	t.Helper()
	waitFor(t, 20*time.Second, "GET "+base+"/healthz to answer 200", func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var body struct{ Status, Store string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode == http.StatusOK && body.Status == "ok" && body.Store == "ok"
	})
}

// publishResult is one entry of a POST /pushNews answer.
type publishResult struct {
	UserID string `json:"userId"`
	ID     string `json:"id"`
	Online bool   `json:"online"`
}

// publish posts data for one user. err is a transport error; any HTTP answer is returned as is.
func publish(client *http.Client, base, userID string, data any) (res publishResult, status int, err error) {
	body, err := json.Marshal(map[string]any{"userId": userID, "data": data})
	if err != nil {
		return res, 0, err
	}
	resp, err := client.Post(base+"/pushNews", "application/json", bytes.NewReader(body))
	if err != nil {
		return res, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return res, resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return res, resp.StatusCode, fmt.Errorf("POST /pushNews: %d %s", resp.StatusCode, raw)
	}
	var out struct{ Results []publishResult }
	if err := json.Unmarshal(raw, &out); err != nil {
		return res, resp.StatusCode, fmt.Errorf("POST /pushNews: bad body %s: %w", raw, err)
	}
	if len(out.Results) != 1 || out.Results[0].UserID != userID {
		return res, resp.StatusCode, fmt.Errorf("POST /pushNews: want one result for %s, got %s", userID, raw)
	}
	if _, err := parseID(out.Results[0].ID); err != nil {
		return res, resp.StatusCode, fmt.Errorf("POST /pushNews: %w", err)
	}
	return out.Results[0], resp.StatusCode, nil
}

func mustPublish(t *testing.T, client *http.Client, base, userID string, data any) publishResult {
	t.Helper()
	res, status, err := publish(client, base, userID, data)
	if err != nil || status != http.StatusOK {
		t.Fatalf("publish to %s: status %d, %v", userID, status, err)
	}
	return res
}

// parseID checks that id is a canonical message id and returns its value.
func parseID(id string) (uint64, error) {
	n, err := strconv.ParseUint(id, 10, 63)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != id {
		return 0, fmt.Errorf("%q is not a canonical message id", id)
	}
	return n, nil
}

// frame is any server-to-client text frame: a message, a broadcast or an app-level pong.
type frame struct {
	ID        string          `json:"id"`
	UserID    string          `json:"userId"`
	Data      json.RawMessage `json:"data"`
	CreatedAt string          `json:"createdAt"`
	Broadcast bool            `json:"broadcast"`
	Type      string          `json:"type"`
}

var dialer = websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// subscribe opens GET /getPushNews for userID; since is added when not empty.
func subscribe(t *testing.T, addr, userID, since string) *websocket.Conn {
	t.Helper()
	conn, resp, err := dialer.Dial(subscribeURL(addr, userID, since), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("subscribe %s (since %q): status %d: %v", userID, since, status, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func subscribeURL(addr, userID, since string) string {
	q := url.Values{"userId": {userID}}
	if since != "" {
		q.Set("since", since)
	}
	return "ws://" + addr + "/getPushNews?" + q.Encode()
}

func readFrame(t *testing.T, conn *websocket.Conn, timeout time.Duration) frame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	kind, raw, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("frame type %d, want a text frame: %q", kind, raw)
	}
	var f frame
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("frame is not JSON: %q: %v", raw, err)
	}
	return f
}

// want is one message a subscriber must receive.
type want struct {
	id   string
	data any // compared with the frame's data after JSON decoding
}

// expectMessages reads exactly the messages in wants, in order, then proves that nothing else
// was queued behind them: it sends {"type":"ping"} and the very next frame must be the pong.
// The server writes the backlog before anything queued later, so a duplicate or a stray message
// would show up before the pong.
func expectMessages(t *testing.T, conn *websocket.Conn, userID string, wants []want) {
	t.Helper()
	var last uint64
	for i, w := range wants {
		f := readFrame(t, conn, 10*time.Second)
		if f.ID != w.id {
			t.Fatalf("%s: message %d of %d: got id %q (data %s), want id %q", userID, i+1, len(wants), f.ID, f.Data, w.id)
		}
		n, err := parseID(f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if n <= last {
			t.Fatalf("%s: id %d after %d: not increasing", userID, n, last)
		}
		last = n
		if f.UserID != userID || f.Broadcast {
			t.Fatalf("%s: frame for userId %q (broadcast %v)", userID, f.UserID, f.Broadcast)
		}
		if _, err := time.Parse(time.RFC3339Nano, f.CreatedAt); err != nil {
			t.Fatalf("%s: createdAt %q: %v", userID, f.CreatedAt, err)
		}
		assertSameJSON(t, f.Data, w.data)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatalf("%s: send app ping: %v", userID, err)
	}
	if f := readFrame(t, conn, 10*time.Second); f.Type != "pong" {
		t.Fatalf("%s: after the %d expected messages got an unexpected frame (id %q, data %s) instead of the pong", userID, len(wants), f.ID, f.Data)
	}
}

func assertSameJSON(t *testing.T, got json.RawMessage, want any) {
	t.Helper()
	wantRaw, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("data %q is not JSON: %v", got, err)
	}
	_ = json.Unmarshal(wantRaw, &w)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("data %s, want %s", got, wantRaw)
	}
}

// closeCode waits for conn to end and returns its close code (-1 when it ended without one).
func closeCode(conn *websocket.Conn, timeout time.Duration) (int, error) {
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, nil
		}
		return -1, err
	}
}

// inProcess is one run() call serving in a goroutine of the test.
type inProcess struct {
	cancel context.CancelFunc
	exit   chan int
	stdout *syncBuffer
	stderr *syncBuffer
	addr   string
	base   string
	client *http.Client
}

func startInProcess(t *testing.T, cfgPath string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{
		cancel: cancel,
		exit:   make(chan int, 1),
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
	}
	go func() { p.exit <- run(ctx, []string{"--config", cfgPath}, noEnv, nil, p.stdout, p.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.exit:
		case <-time.After(20 * time.Second):
			t.Errorf("run did not return within 20s of its context ending")
		}
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("pushlane stderr:\n%s", p.stderr.String())
		}
	})
	waitFor(t, 20*time.Second, "the listening line on stdout", func() bool {
		if m := listeningLine.FindStringSubmatch(p.stdout.String()); m != nil {
			p.addr = m[1]
			return true
		}
		select {
		case code := <-p.exit:
			t.Fatalf("run returned %d before listening; stderr:\n%s", code, p.stderr.String())
		default:
		}
		return false
	})
	p.base = "http://" + p.addr
	waitHealthy(t, p.client, p.base)
	return p
}

// TestRunServesAndShutsDown drives the real program through run: listen, publish, subscribe,
// then end ctx as SIGTERM does and check the drain.
func TestRunServesAndShutsDown(t *testing.T) {
	dir := t.TempDir()
	cfgPath, dbPath := testConfig(t, dir, "127.0.0.1:0")
	p := startInProcess(t, cfgPath)

	// Published while alice is offline: pending, sent first on her next connect.
	first := mustPublish(t, p.client, p.base, "alice", map[string]any{"title": "offline"})
	if first.Online {
		t.Errorf("first publish: online = true with no connection")
	}
	conn := subscribe(t, p.addr, "alice", "")
	expectMessages(t, conn, "alice", []want{{first.ID, map[string]any{"title": "offline"}}})

	// Live: the connection is registered (it answered the pong), so this one is online.
	live := mustPublish(t, p.client, p.base, "alice", []any{"live", 2.0, true})
	if !live.Online {
		t.Errorf("live publish: online = false with a registered connection")
	}
	expectMessages(t, conn, "alice", []want{{live.ID, []any{"live", 2.0, true}}})

	codes := make(chan int, 1)
	go func() {
		code, err := closeCode(conn, 20*time.Second)
		if err != nil {
			t.Errorf("reading until close: %v", err)
		}
		codes <- code
	}()

	start := time.Now()
	p.cancel()
	select {
	case code := <-p.exit:
		p.exit <- code // for the cleanup
		if code != 0 {
			t.Fatalf("run returned %d, want 0; stderr:\n%s", code, p.stderr.String())
		}
	case <-time.After(5*time.Second + 10*time.Second):
		t.Fatalf("run did not return within server.shutdownTimeout + 10s")
	}
	t.Logf("run returned 0 %s after its context ended", time.Since(start).Round(time.Millisecond))
	select {
	case code := <-codes:
		if code != websocket.CloseGoingAway {
			t.Errorf("subscriber close code %d, want 1001 (going away)", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber saw no close frame")
	}
	if st, err := os.Stat(dbPath); err != nil || st.Size() == 0 {
		t.Fatalf("sqlite file %s: %v (size %v)", dbPath, err, st)
	}
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("stderr mentions a panic:\n%s", p.stderr.String())
	}
}

// TestRunConfigErrors: a bad configuration stops start-up with exit code 2 and one line that
// names the file or the key.
func TestRunConfigErrors(t *testing.T) {
	dir := t.TempDir()
	good, _ := testConfig(t, dir, "127.0.0.1:0")
	missing := filepath.Join(dir, "no-such-dir", "missing.yaml")
	badDuration := filepath.Join(dir, "bad-duration.yaml")
	if err := os.WriteFile(badDuration, []byte("websocket:\n  pingInterval: abc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		env    map[string]string
		naming string
	}{
		{"missing file", []string{"--config", missing}, nil, missing},
		{"bad duration", []string{"--config", badDuration}, nil, "websocket.pingInterval"},
		{"bad driver from env", []string{"--config", good}, map[string]string{"PUSH_STORE_DRIVER": "bogus"}, "store.driver"},
		{"bad duration from env", []string{"--config", good}, map[string]string{"PUSH_SERVER_SHUTDOWNTIMEOUT": "soon"}, "server.shutdownTimeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			var stdout, stderr syncBuffer
			// Bounded: if the error went unnoticed, run would serve until ctx ends.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code := run(ctx, tc.args, getenv, nil, &stdout, &stderr)
			if code != exitConfig {
				t.Fatalf("exit code %d, want 2; stderr:\n%s", code, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if !strings.Contains(msg, tc.naming) {
				t.Errorf("stderr does not name %q:\n%s", tc.naming, msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("stderr is more than one line:\n%s", msg)
			}
			if out := stdout.String(); out != "" {
				t.Errorf("stdout should be empty, got %q", out)
			}
		})
	}
}
