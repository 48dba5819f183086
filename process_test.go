package main

// Tests of the built binary as a child process: what only a real process shows (kill -9, the
// SIGTERM drain, a restart on the same store). The binary is built once per test run.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var (
	binDir    string // made by TestMain, removed after the run
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// pushlaneBinary builds the program once (`go build -o <tmp>/pushlane .`) for every test that needs it.
// It is built on first use rather than up front in TestMain so that `go test -list`, `-bench`
// and `-fuzz` runs of this package do not pay for a build they do not use.
func pushlaneBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out := filepath.Join(binDir, "pushlane")
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Env = os.Environ()
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, msg)
			return
		}
		binPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr finds a free loopback port by listening on port 0 and closing the listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// process is one running pushlane binary.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited and its output is copied
	addr   string
	base   string
	client *http.Client
}

// startProcess runs the binary with --config cfgPath and waits until it is healthy on addr. The
// process is killed in cleanup if a test leaves it running.
func startProcess(t *testing.T, bin, cfgPath, addr string) *process {
	t.Helper()
	p := &process{
		t:      t,
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
		addr:   addr,
		base:   "http://" + addr,
		// A transport of its own: no keep-alive connection outlives this process.
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}},
	}
	p.cmd = exec.Command(bin, "--config", cfgPath)
	p.cmd.Dir = filepath.Dir(cfgPath)
	p.cmd.Env = environWithoutPush()
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("pushlane (pid %d) stderr:\n%s", p.cmd.Process.Pid, p.stderr.String())
		}
	})
	waitFor(t, 30*time.Second, "the listening line on stdout", func() bool {
		if p.exited() {
			t.Fatalf("pushlane exited (%v) before listening; stderr:\n%s", p.cmd.ProcessState, p.stderr.String())
		}
		return strings.Contains(p.stdout.String(), "pushlane listening on http://"+addr+"\n")
	})
	waitHealthy(t, p.client, p.base)
	return p
}

// environWithoutPush is the test's environment minus PUSH_*, so the host cannot change the config.
func environWithoutPush() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSH_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("send %v: %v", sig, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when killed by a signal).
func (p *process) wait(timeout time.Duration) int {
	p.t.Helper()
	if p.exited() {
		return p.cmd.ProcessState.ExitCode()
	}
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("pushlane did not exit within %s; stderr:\n%s", timeout, p.stderr.String())
		return 0
	}
}

// TestProcessKill9KeepsEveryAcceptedMessage: a 200 means stored durably. Publish to several users
// concurrently, SIGKILL right after the last answer, restart on the same store: each user's
// pending queue holds every answered message exactly once, in increasing id order, and since=0
// replays them all.
func TestProcessKill9KeepsEveryAcceptedMessage(t *testing.T) {
	t.Parallel()
	// store.sync normal leaves fsync to checkpoints: the OS still has every commit, so a killed
	// process loses nothing either (only a machine crash could).
	for _, storeSync := range []string{"full", "normal"} {
		t.Run("sync="+storeSync, func(t *testing.T) {
			t.Parallel()
			testKill9KeepsEveryAcceptedMessage(t, storeSync)
		})
	}
}

func testKill9KeepsEveryAcceptedMessage(t *testing.T, storeSync string) {
	bin := pushlaneBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath, _ := testConfigSync(t, dir, addr, storeSync)
	p := startProcess(t, bin, cfgPath, addr)

	users := []string{"kill-a", "kill_b", "kill.c@example.com", "kill:d", "KILL-E"}
	const perUser = 40 // 200 messages in all
	wants := make([][]want, len(users))
	var wg sync.WaitGroup
	for i, user := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for seq := range perUser {
				data := map[string]any{"user": user, "seq": seq, "text": "message \u00e9\u2603 \"quoted\""}
				res, status, err := publish(p.client, p.base, user, data)
				if err != nil || status != http.StatusOK {
					t.Errorf("publish %s #%d: status %d, %v", user, seq, status, err)
					return
				}
				n, _ := parseID(res.ID)
				if n <= last {
					t.Errorf("publish %s #%d: id %d after %d: ids must increase in the order accepted", user, seq, n, last)
				}
				last = n
				wants[i] = append(wants[i], want{res.ID, data})
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	p.signal(syscall.SIGKILL)
	if code := p.wait(10 * time.Second); code != -1 {
		t.Fatalf("exit code after SIGKILL: %d", code)
	}

	p = startProcess(t, bin, cfgPath, addr)
	for i, user := range users {
		conn := subscribe(t, addr, user, "")
		expectMessages(t, conn, user, wants[i])
		conn.Close()
	}
	for i, user := range users {
		conn := subscribe(t, addr, user, "0")
		expectMessages(t, conn, user, wants[i])
		conn.Close()
	}
	// since=<an id> replays exactly the later ones.
	mid := wants[0][perUser/2-1].id
	conn := subscribe(t, addr, users[0], mid)
	expectMessages(t, conn, users[0], wants[0][perUser/2:])
}

// lateOutcome is what a subscribe attempt during the drain got.
type lateOutcome int

const (
	lateRefused503  lateOutcome = iota + 1 // 503 with a JSON error body
	lateRefusedConn                        // the connection was refused or closed
	lateAccepted                           // 101: only legitimate if it raced the signal
)

// lateSubscribe tries to subscribe during the drain, over conn when given (a connection opened
// before the signal) or a new one.
func lateSubscribe(t *testing.T, addr string, conn net.Conn) (lateOutcome, *websocket.Conn) {
	t.Helper()
	d := dialer
	if conn != nil {
		d.NetDialContext = func(context.Context, string, string) (net.Conn, error) { return conn, nil }
	}
	ws, resp, err := d.Dial(subscribeURL(addr, "late-user", ""), nil)
	if err == nil {
		return lateAccepted, ws
	}
	if resp != nil {
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("subscribe during the drain: status %d, want 503 or a refused connection", resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("503 during the drain: Content-Type %q, want application/json", ct)
		}
		raw, _ := io.ReadAll(resp.Body)
		var body struct{ Error string }
		if err := json.Unmarshal(raw, &body); err != nil || body.Error == "" {
			t.Errorf("503 during the drain: body %q is not {\"error\": \"...\"}", raw)
		}
		return lateRefused503, nil
	}
	var netErr *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		t.Logf("late subscribe: %v", err)
		return lateRefusedConn, nil
	case errors.As(err, &netErr) && !netErr.Timeout():
		t.Logf("late subscribe: %v", err)
		return lateRefusedConn, nil
	}
	t.Fatalf("subscribe during the drain: unexpected error %v", err)
	return 0, nil
}

// TestProcessSIGTERMDrains: on SIGTERM every client gets 1001, a new subscribe is refused while
// the drain runs (503 JSON or a refused connection), and the process exits 0 within
// server.shutdownTimeout plus slack.
func TestProcessSIGTERMDrains(t *testing.T) {
	t.Parallel()
	bin := pushlaneBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath, _ := testConfig(t, dir, addr) // shutdownTimeout 5s, writeWait 2s
	const shutdownTimeout, slack = 5 * time.Second, 5 * time.Second
	p := startProcess(t, bin, cfgPath, addr)

	// A connection that has not sent its request yet: during the drain the server still reads it
	// and must answer its upgrade with 503 (or close it).
	pre, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pre.Close() })

	users := []string{"drain-1", "drain-2", "drain-3"}
	conns := make([]*websocket.Conn, len(users))
	for i, user := range users {
		conns[i] = subscribe(t, addr, user, "")
		res := mustPublish(t, p.client, p.base, user, "hello "+user)
		expectMessages(t, conns[i], user, []want{{res.ID, "hello " + user}})
	}

	// Two clients read (and so answer the close frame at once); the third reads nothing until
	// later, which holds the drain open for min(writeWait, 2s) and gives the late subscribe a window.
	codes := make(chan int, len(users))
	for _, c := range conns[:2] {
		go func() {
			code, err := closeCode(c, 30*time.Second)
			if err != nil {
				t.Errorf("reading until close: %v", err)
			}
			codes <- code
		}()
	}

	start := time.Now()
	p.signal(syscall.SIGTERM)
	waitFor(t, 10*time.Second, `"shutting down" in the log`, func() bool {
		return strings.Contains(p.stderr.String(), "shutting down")
	})

	var accepted []*websocket.Conn
	refused := false
	check := func(outcome lateOutcome, ws *websocket.Conn, how string) {
		switch outcome {
		case lateAccepted:
			// Only possible if the attempt overtook the signal handling; it must then be drained too.
			t.Logf("%s: subscribe accepted right after the signal; it must get 1001 like the others", how)
			accepted = append(accepted, ws)
		case lateRefused503, lateRefusedConn:
			if p.exited() {
				t.Fatalf("%s: pushlane had already exited, so the refusal does not show the drain", how)
			}
			refused = true
			t.Logf("%s: refused during the drain (%s)", how, map[lateOutcome]string{lateRefused503: "503 JSON", lateRefusedConn: "connection refused/closed"}[outcome])
		}
	}
	outcome, ws := lateSubscribe(t, addr, pre)
	check(outcome, ws, "connection opened before the signal")
	deadline := time.Now().Add(10 * time.Second)
	for !refused {
		if time.Now().After(deadline) {
			t.Fatal("no subscribe was refused during the drain")
		}
		outcome, ws := lateSubscribe(t, addr, nil)
		check(outcome, ws, "new connection")
	}

	// The lazy client reads now: its close frame has been waiting for it.
	code, err := closeCode(conns[2], 10*time.Second)
	if err != nil || code != websocket.CloseGoingAway {
		t.Errorf("%s: close code %d (%v), want 1001", users[2], code, err)
	}
	for range conns[:2] {
		select {
		case code := <-codes:
			if code != websocket.CloseGoingAway {
				t.Errorf("close code %d, want 1001", code)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a client saw no close frame")
		}
	}
	for _, ws := range accepted {
		if code, err := closeCode(ws, 10*time.Second); code != websocket.CloseGoingAway {
			t.Errorf("subscriber accepted at the signal: close code %d (%v), want 1001", code, err)
		}
	}

	if code := p.wait(shutdownTimeout + slack - time.Since(start)); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr.String())
	}
	t.Logf("exited 0 %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if strings.Contains(p.stderr.String(), "panic") {
		t.Errorf("stderr mentions a panic:\n%s", p.stderr.String())
	}
}

// TestProcessSIGTERMKeepsPending: messages answered 200 up to and during SIGTERM, for a user with
// no connection, are in that user's pending queue after a restart.
func TestProcessSIGTERMKeepsPending(t *testing.T) {
	t.Parallel()
	bin := pushlaneBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath, _ := testConfig(t, dir, addr)
	p := startProcess(t, bin, cfgPath, addr)

	const user = "pending-user"
	var (
		mu       sync.Mutex
		answered []want
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(answered)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for seq := 0; ; seq++ {
			data := map[string]any{"seq": seq}
			res, status, err := publish(p.client, p.base, user, data)
			switch {
			case err == nil && status == http.StatusOK:
				mu.Lock()
				answered = append(answered, want{res.ID, data})
				mu.Unlock()
				continue
			case status != 0 && status != http.StatusServiceUnavailable:
				t.Errorf("publish #%d during shutdown: status %d, want 200 or 503: %v", seq, status, err)
				return
			}
			// Refused (503 or no connection): expected once the drain began; stop when it exited.
			select {
			case <-p.done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()

	waitFor(t, 20*time.Second, "20 answered publishes", func() bool { return count() >= 20 })
	p.signal(syscall.SIGTERM)
	if code := p.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("publisher did not stop after the process exited")
	}
	mu.Lock()
	got := append([]want(nil), answered...)
	mu.Unlock()
	t.Logf("%d publishes answered 200 before the process exited", len(got))

	startProcess(t, bin, cfgPath, addr)
	conn := subscribe(t, addr, user, "")
	expectMessages(t, conn, user, got)
}

// TestProcessSIGTERMEndsEventStreams: on SIGTERM an event stream gets `event: close` with code
// 1001 and then ends, and the drain finishes cleanly: an event stream never finishes by itself
// (and over HTTP/1.1 its connection is no longer net/http's), so the server must end it as part
// of the drain rather than wait for it (or cut it) while shutting the HTTP server down.
func TestProcessSIGTERMEndsEventStreams(t *testing.T) {
	t.Parallel()
	bin := pushlaneBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath, _ := testConfig(t, dir, addr)
	p := startProcess(t, bin, cfgPath, addr)

	req, err := http.NewRequest(http.MethodGet, p.base+"/getPushNews?userId=sse-drain", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: status %d", resp.StatusCode)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	waitFor(t, 10*time.Second, "the stream to be registered", func() bool {
		res, err := p.client.Get(p.base + "/clients/sse-drain")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})

	p.signal(syscall.SIGTERM)
	var got []string
	timeout := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case line, ok := <-lines:
			if !ok {
				done = true
				break
			}
			if line != "" && !strings.HasPrefix(line, ":") {
				got = append(got, line)
			}
		case <-timeout:
			t.Fatalf("the stream did not end within 20s of SIGTERM; lines %q", got)
		}
	}
	if want := []string{"event: close", `data: {"code":1001}`}; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the stream ended with %q, want %q", got, want)
	}
	if code := p.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if log := p.stderr.String(); !strings.Contains(log, "pushlane stopped cleanly") {
		t.Fatalf("the drain did not finish cleanly; stderr:\n%s", log)
	}
}
