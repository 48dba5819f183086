package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"pushlane/module"
)

const listenUsage = `Usage:
  pushlane listen --user U [--since ID] [--pretty] [--count N]

Subscribes to GET /getPushNews as user U and prints every message, one line each: by default the
frame's JSON as received (pipe it into jq), with --pretty "#ID  CREATED-AT  DATA". It keeps the
id of the last message and, when the connection drops, reconnects with since=ID after a growing
pause (up to about 30s), so nothing stored is missed or printed twice. Reconnects are logged on
stderr. Ctrl-C stops it with status 0; --count N stops after N messages. It exits with status 1
instead of retrying when the server removes the user (close 4000), the token expires (close
1008) or the subscription is refused (400, 401, 403 and other 4xx, save 408 and 429).
`

const listenExamples = `  pushlane listen --user alice
  pushlane listen --user alice --pretty
  pushlane listen --user alice --since 41 --count 1 | jq -r .data.title
  pushlane listen --server https://push.example.com --token "$JWT" --user alice
`

// Reconnect pauses: equal jitter over an exponential backoff. The first retry waits 250-500ms,
// then the ceiling doubles up to backoffMax; the jitter spreads the reconnects of many
// listeners after a server restart.
const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
	// stableAfter is how long a connection must last (or deliver a message) to count as
	// working again, which resets the backoff.
	stableAfter = 10 * time.Second
	// closeWait bounds writing our close frame when we leave.
	closeWait = time.Second
)

// Close codes after which reconnecting cannot help (API.md).
const (
	closeRemoved = 4000 // DELETE /deleteClient
)

func runListen(ctx context.Context, env *runEnv, args []string) int {
	fs := newFlagSet(env)
	var (
		common commonFlags
		user   string
		since  string
		pretty bool
		count  int
		idle   time.Duration
	)
	common.register(fs)
	fs.StringVar(&user, "user", "", "`USER` id to subscribe as (required)")
	fs.StringVar(&since, "since", "", "last message `ID` already seen: replay every stored message after it (0: all stored)")
	fs.BoolVar(&pretty, "pretty", false, `print "#ID  CREATED-AT  DATA" instead of the raw JSON frame`)
	fs.IntVar(&count, "count", 0, "exit 0 after `N` messages (0: run until interrupted)")
	fs.DurationVar(&idle, "idle-timeout", time.Minute, "reconnect after a `DURATION` without any frame or ping from the server (default 1m; 0: never)")
	pos, code, done := parse(env, fs, args, listenUsage, listenExamples)
	if done {
		return code
	}
	switch {
	case len(pos) > 0:
		return env.usageError("unexpected argument %q", pos[0])
	case user == "":
		return env.usageError("--user is required")
	case !module.ValidUserID(user):
		return env.usageError("--user %q: %v", user, module.ErrBadUserID)
	case count < 0:
		return env.usageError("--count must not be negative")
	case idle < 0:
		return env.usageError("--idle-timeout must not be negative")
	}
	l := &listener{env: env, user: user, pretty: pretty, count: count, idle: idle}
	if since != "" {
		n, err := module.ParseSince(since)
		if err != nil {
			return env.usageError("--since: %v", err)
		}
		l.last, l.sendSince = n, true
	}
	common.fillFromEnv(env.getenv)
	c, err := newConn(common)
	if err != nil {
		return env.usageError("%v", err)
	}
	defer c.close()
	l.conn = c
	l.dialer = &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: common.timeout,
		TLSClientConfig:  c.tls,
	}
	return l.run(ctx)
}

// listener is one `pushlane listen`: a loop of sessions (one WebSocket connection each), run by one
// goroutine; a second goroutine per session only closes the connection when ctx ends.
type listener struct {
	env       *runEnv
	conn      *conn
	dialer    *websocket.Dialer
	user      string
	pretty    bool
	count     int // stop after this many messages; 0: never
	idle      time.Duration
	printed   int
	last      uint64 // highest message id printed (or --since)
	sendSince bool   // whether reconnects send since=last
}

// outcome is how a session ended: stop with code, or retry after err.
type outcome struct {
	stop   bool
	code   int
	err    error
	stable bool // the connection worked for a while: start the backoff over
}

func (l *listener) run(ctx context.Context) int {
	attempt := 0
	for {
		o := l.session(ctx)
		if o.stop {
			return o.code
		}
		if o.stable {
			attempt = 0
		}
		delay := backoffDelay(attempt)
		attempt++
		msg := fmt.Sprintf("%v; reconnecting in %v", o.err, delay.Round(time.Millisecond))
		if l.sendSince {
			msg += fmt.Sprintf(" with since=%d", l.last)
		}
		l.env.errorf("%s (attempt %d)", msg, attempt)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return exitOK
		case <-t.C:
		}
	}
}

// backoffDelay is the pause before retry number attempt (from 0): a random duration in
// [d/2, d] with d = backoffBase * 2^attempt, at most backoffMax.
func backoffDelay(attempt int) time.Duration {
	d := backoffMax
	if attempt < 16 {
		d = min(backoffMax, backoffBase<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// wsURL is the subscribe URL; since is included once there is a last id.
func (l *listener) wsURL() *url.URL {
	u := *l.conn.base
	u.Scheme = "ws"
	if l.conn.base.Scheme == "https" {
		u.Scheme = "wss"
	}
	u.Path = l.conn.base.Path + "/getPushNews"
	q := url.Values{"userId": {l.user}}
	if l.sendSince {
		q.Set("since", strconv.FormatUint(l.last, 10))
	}
	if l.conn.token != "" {
		q.Set("token", l.conn.token)
	}
	u.RawQuery = q.Encode()
	return &u
}

// session connects once and prints messages until the connection ends.
func (l *listener) session(ctx context.Context) outcome {
	u := l.wsURL()
	shown := *u
	shown.RawQuery = "" // the token stays out of logs
	ws, resp, err := l.dialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		return l.dialFailed(ctx, err, resp)
	}
	since := ""
	if l.sendSince {
		since = fmt.Sprintf(" since=%d", l.last)
	}
	l.env.errorf("connected to %s as %s%s", shown.String(), l.user, since)

	stop, watcherDone := make(chan struct{}), make(chan struct{})
	go func() { // the only other user of ws: it ends a blocked read when ctx ends
		defer close(watcherDone)
		select {
		case <-ctx.Done():
			closeConn(ws, websocket.CloseNormalClosure, "client stopped")
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		<-watcherDone
		ws.Close()
	}()

	if l.idle > 0 {
		_ = ws.SetReadDeadline(time.Now().Add(l.idle))
	}
	// gorilla's default ping handler answers pongs; this one also pushes the idle deadline.
	ws.SetPingHandler(func(appData string) error {
		if l.idle > 0 {
			_ = ws.SetReadDeadline(time.Now().Add(l.idle))
		}
		err := ws.WriteControl(websocket.PongMessage, []byte(appData), time.Now().Add(closeWait))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})

	connectedAt := time.Now()
	got := 0
	for {
		kind, b, err := ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return outcome{stop: true, code: exitOK}
			}
			return l.readFailed(err, got > 0 || time.Since(connectedAt) >= stableAfter)
		}
		if l.idle > 0 {
			_ = ws.SetReadDeadline(time.Now().Add(l.idle))
		}
		if kind != websocket.TextMessage {
			continue
		}
		printed, err := l.print(b)
		if err != nil {
			l.env.errorf("writing to stdout: %v", err)
			closeConn(ws, websocket.CloseNormalClosure, "client stopped")
			return outcome{stop: true, code: exitFailed}
		}
		if !printed {
			continue
		}
		got++
		if l.count > 0 && l.printed >= l.count {
			closeConn(ws, websocket.CloseNormalClosure, "client done")
			return outcome{stop: true, code: exitOK}
		}
	}
}

// dialFailed sorts a failed handshake: refusals that a retry cannot fix stop with 1.
func (l *listener) dialFailed(ctx context.Context, err error, resp *http.Response) outcome {
	if ctx.Err() != nil {
		return outcome{stop: true, code: exitOK}
	}
	if resp != nil {
		// gorilla keeps the start of a refusal's body readable.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		ae := &apiError{status: resp.StatusCode, reason: errorReason(b)}
		if resp.StatusCode >= 400 && resp.StatusCode < 500 &&
			resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			l.env.errorf("subscribe refused: %v", ae)
			if resp.StatusCode == http.StatusUnauthorized && l.conn.token == "" {
				fmt.Fprintf(l.env.stderr, "hint: pass the subscriber token with --token or $%s\n", envToken)
			}
			return outcome{stop: true, code: exitFailed}
		}
		return outcome{err: fmt.Errorf("subscribe refused: %w", ae)}
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		l.env.errorf("%v", err)
		fmt.Fprintln(l.env.stderr, "hint: --insecure skips certificate verification (for testing only)")
		return outcome{stop: true, code: exitFailed}
	}
	return outcome{err: fmt.Errorf("cannot connect: %w", err)}
}

// readFailed sorts the end of a connection: removal and policy closes stop with 1.
func (l *listener) readFailed(err error, stable bool) outcome {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case closeRemoved:
			l.env.errorf("removed by the server (close 4000: %s); not reconnecting", closeText(ce))
			return outcome{stop: true, code: exitFailed}
		case websocket.ClosePolicyViolation:
			l.env.errorf("closed by the server (close 1008: %s); the token may have expired, not reconnecting", closeText(ce))
			return outcome{stop: true, code: exitFailed}
		}
		return outcome{err: fmt.Errorf("connection closed by the server (close %d: %s)", ce.Code, closeText(ce)), stable: stable}
	}
	return outcome{err: fmt.Errorf("connection lost: %w", err), stable: stable}
}

func closeText(ce *websocket.CloseError) string {
	if ce.Text == "" {
		return "no reason given"
	}
	return ce.Text
}

// closeConn sends a close frame (best effort) and closes the socket. Safe to call from any
// goroutine and more than once: WriteControl and Close may run concurrently with a read.
func closeConn(ws *websocket.Conn, code int, text string) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(closeWait))
	_ = ws.Close()
}

// frame is the part of a server frame the listener looks at.
type frame struct {
	ID        string          `json:"id"`
	Broadcast bool            `json:"broadcast"`
	Data      json.RawMessage `json:"data"`
	CreatedAt string          `json:"createdAt"`
	Type      string          `json:"type"`
}

// print writes one message line and records its id; it reports false for frames that are not
// messages and for duplicates (an id not above the last one: delivery is at least once).
func (l *listener) print(b []byte) (bool, error) {
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		l.env.errorf("skipping a frame that is not a JSON object: %.100q", b)
		return false, nil
	}
	if f.Data == nil {
		return false, nil // {"type":"pong"} or anything else without data
	}
	var id uint64
	if f.ID != "" {
		n, err := strconv.ParseUint(f.ID, 10, 64)
		if err != nil {
			l.env.errorf("skipping a frame with a malformed id: %.100q", b)
			return false, nil
		}
		if l.sendSince && n <= l.last {
			return false, nil
		}
		id = n
	}
	var line bytes.Buffer
	switch {
	case !l.pretty:
		if json.Compact(&line, b) != nil {
			line.Write(b)
		}
	case f.Broadcast || f.ID == "":
		line.WriteString("broadcast  " + f.CreatedAt + "  ")
		writeCompact(&line, f.Data)
	default:
		line.WriteString("#" + f.ID + "  " + f.CreatedAt + "  ")
		writeCompact(&line, f.Data)
	}
	line.WriteByte('\n')
	if _, err := l.env.stdout.Write(line.Bytes()); err != nil {
		return false, err
	}
	if id != 0 {
		l.last, l.sendSince = id, true
	}
	l.printed++
	return true, nil
}

func writeCompact(buf *bytes.Buffer, b []byte) {
	if json.Compact(buf, b) != nil {
		buf.Write(b)
	}
}
