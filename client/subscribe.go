package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes of the server (docs/api.md).
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001 // the server is shutting down
	ClosePolicy       = 1008 // the token expired
	CloseTooBig       = 1009 // a client frame was over websocket.maxMessageBytes
	CloseRemoved      = 4000 // DELETE /deleteClient
	CloseSlowConsumer = 4001 // the connection's send queue overflowed
)

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("pushlane: subscription closed")

// CloseError ends a subscription when reconnecting cannot help: the user was removed (4000), or
// the token expired (1008) and SubscribeOptions.TokenFunc is nil.
type CloseError struct {
	Code int
	Text string
}

func (e *CloseError) Error() string {
	switch e.Code {
	case CloseRemoved:
		return fmt.Sprintf("pushlane: removed by the server (close %d: %s)", e.Code, e.Text)
	case ClosePolicy:
		return fmt.Sprintf("pushlane: closed by the server (close %d: %s); the token may have expired", e.Code, e.Text)
	}
	return fmt.Sprintf("pushlane: closed by the server (close %d: %s)", e.Code, e.Text)
}

// Message is one frame of a subscription: a stored message (ID set) or a broadcast (Broadcast
// set, no ID).
type Message struct {
	ID        string          `json:"id"`
	UserID    string          `json:"userId"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"createdAt"`
	Broadcast bool            `json:"broadcast"`
	// Raw is the frame as the server sent it.
	Raw []byte `json:"-"`
}

// SubscribeOptions configures Subscribe. The zero value subscribes with protocol version 1,
// starting with the user's unread queue.
type SubscribeOptions struct {
	// Since is the last message id the application processed: the server first sends every
	// stored message after it. "0" replays everything stored; "" starts with the unread queue
	// (messages not yet delivered, or with protocol 2 not yet acknowledged). After the first
	// message, reconnects always resume after the last id Next returned.
	Since string
	// Epoch is the epoch Since belongs to (protocol 2): when it is not the server's, the server
	// replays everything and ConnectInfo.Recovered is false.
	Epoch string
	// Token is the subscriber JWT (auth.jwtSecret); TokenFunc, when set, is called before every
	// connect instead, so that an expired token is replaced (then close 1008 reconnects).
	Token     string
	TokenFunc func(ctx context.Context) (string, error)
	// Protocol 2 turns on hello (epoch, recovered) and acknowledgements; 0 or 1: version 1.
	Protocol int
	// AutoAck (protocol 2) acknowledges each message when Next returns it. Without it, call Ack
	// once the message is processed: unacknowledged messages stay in the user's unread queue.
	AutoAck bool
	// Backoff between reconnects; default 500ms doubling to 30s, with jitter. It starts over once
	// a connection delivered a message or stayed up for 10s.
	Backoff Backoff
	// IdleTimeout: reconnect after this long without any frame or ping (default 1m; the server
	// pings every 10s by default); negative: never.
	IdleTimeout time.Duration
	// OnConnect and OnDisconnect, when set, are called from the subscription's goroutine.
	OnConnect    func(ConnectInfo)
	OnDisconnect func(DisconnectInfo)
}

// ConnectInfo describes a connection that was just opened.
type ConnectInfo struct {
	URL   string // without the query
	Since string // the since sent, "" when none
	// Epoch and Recovered come from the server's hello (protocol 2; Hello false otherwise).
	// Recovered false: Since could not be honoured (another epoch, or an id the store never
	// assigned) and the server replays every stored message: re-sync the application's state.
	Hello     bool
	Epoch     string
	Recovered bool
}

// DisconnectInfo describes a connection that ended (or could not be opened) and the retry.
type DisconnectInfo struct {
	Err     error
	RetryIn time.Duration
	Attempt int    // 1 for the first retry after a working connection
	Since   string // what the reconnect will send as since, "" when none
}

// Subscription is a live subscription of one user. One goroutine owns the connection and
// reconnects it; Next hands out its messages. Next is for one goroutine at a time; Ack, LastID,
// Epoch and Close may be called from any goroutine.
type Subscription struct {
	c      *Client
	userID string
	opts   SubscribeOptions
	dialer *websocket.Dialer

	msgs   chan Message
	done   chan struct{} // closed when the goroutine has exited; err is set before
	cancel context.CancelFunc
	err    error

	mu        sync.Mutex
	ws        *websocket.Conn // the current connection, nil between connections
	last      uint64          // highest id handed out (or Since)
	sendSince bool
	epoch     string
	unsent    []uint64   // acks that could not be written yet (bounded by maxUnsentAcks)
	writeMu   sync.Mutex // held by the one data-frame writer (Ack) of ws
}

// maxUnsentAcks bounds the acks kept while disconnected; older ones are dropped (their messages
// come back from the unread queue on a connect without since, which is at least once).
const maxUnsentAcks = 4096

// Subscribe opens a subscription of userID (GET /getPushNews over WebSocket) and keeps it open
// until Close or ctx ends: it reconnects after any failure that a retry can fix, resuming after
// the last message handed out, and drops messages it has already handed out (delivery is at
// least once). It returns at once; the first connection is made in the background.
func (c *Client) Subscribe(ctx context.Context, userID string, opts SubscribeOptions) (*Subscription, error) {
	s := &Subscription{c: c, userID: userID, opts: opts, msgs: make(chan Message), done: make(chan struct{}), epoch: opts.Epoch}
	if opts.Since != "" {
		n, err := parseID(opts.Since, true)
		if err != nil {
			return nil, fmt.Errorf("pushlane: Since: %w", err)
		}
		s.last, s.sendSince = n, true
	}
	if s.opts.Backoff == (Backoff{}) {
		s.opts.Backoff = Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	}
	if s.opts.IdleTimeout == 0 {
		s.opts.IdleTimeout = time.Minute
	}
	s.dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	if c.http.Timeout > 0 {
		s.dialer.HandshakeTimeout = c.http.Timeout
	}
	if tr, ok := c.http.Transport.(*http.Transport); ok {
		s.dialer.TLSClientConfig = tr.TLSClientConfig
		s.dialer.Proxy = tr.Proxy
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go s.run(ctx)
	return s, nil
}

// Next returns the next message, blocking until one arrives, ctx ends, or the subscription ends
// (ErrClosed after Close; a *CloseError or an *Error for a refusal that retrying cannot fix).
func (s *Subscription) Next(ctx context.Context) (Message, error) {
	select {
	case m := <-s.msgs:
		if s.opts.AutoAck && m.ID != "" {
			_ = s.Ack(m.ID)
		}
		return m, nil
	case <-s.done:
		return Message{}, s.err
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Ack acknowledges message id (protocol 2): it leaves the user's unread queue. An ack that
// cannot be written now is sent after the next connect.
func (s *Subscription) Ack(id string) error {
	n, err := parseID(id, false)
	if err != nil {
		return fmt.Errorf("pushlane: Ack: %w", err)
	}
	s.mu.Lock()
	ws := s.ws
	s.mu.Unlock()
	if ws == nil || s.writeAck(ws, n) != nil {
		s.mu.Lock()
		if len(s.unsent) >= maxUnsentAcks {
			s.unsent = s.unsent[1:]
		}
		s.unsent = append(s.unsent, n)
		s.mu.Unlock()
	}
	return nil
}

func (s *Subscription) writeAck(ws *websocket.Conn, id uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"ack","id":"`+strconv.FormatUint(id, 10)+`"}`))
}

// LastID is the id of the last message Next returned (or Since), "" when none.
func (s *Subscription) LastID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sendSince {
		return ""
	}
	return strconv.FormatUint(s.last, 10)
}

// Epoch is the server's epoch from the last hello (protocol 2), or SubscribeOptions.Epoch.
func (s *Subscription) Epoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// Close ends the subscription (close code 1000) and waits for its goroutine to exit.
func (s *Subscription) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Done is closed once the subscription has ended; Err then says why.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is why the subscription ended (nil while it runs).
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// sessionEnd is how one connection ended.
type sessionEnd struct {
	err    error // why; with stop, what Next returns
	stop   bool
	stable bool // it delivered a message or lasted stableAfter: restart the backoff
}

const stableAfter = 10 * time.Second

func (s *Subscription) run(ctx context.Context) {
	defer close(s.done)
	attempt := 0
	for {
		end := s.session(ctx)
		if ctx.Err() != nil {
			s.err = ErrClosed
			return
		}
		if end.stop {
			s.err = end.err
			return
		}
		if end.stable {
			attempt = 0
		}
		delay := s.opts.Backoff.Delay(attempt)
		attempt++
		if s.opts.OnDisconnect != nil {
			s.opts.OnDisconnect(DisconnectInfo{Err: end.err, RetryIn: delay, Attempt: attempt, Since: s.LastID()})
		}
		if sleep(ctx, delay) != nil {
			s.err = ErrClosed
			return
		}
	}
}

// subscribeURL is the WebSocket URL of the next connect.
func (s *Subscription) subscribeURL(token string) (*url.URL, string) {
	u := *s.c.base
	u.Scheme = "ws"
	if s.c.base.Scheme == "https" {
		u.Scheme = "wss"
	}
	u.Path = s.c.base.Path + "/getPushNews"
	q := url.Values{"userId": {s.userID}}
	since := s.LastID()
	if since != "" {
		q.Set("since", since)
	}
	if s.opts.Protocol == 2 {
		q.Set("v", "2")
		if e := s.Epoch(); e != "" {
			q.Set("epoch", e)
		}
	}
	if token != "" {
		q.Set("token", token)
	}
	u.RawQuery = q.Encode()
	return &u, since
}

// session connects once and hands out messages until the connection ends.
func (s *Subscription) session(ctx context.Context) sessionEnd {
	token := s.opts.Token
	if s.opts.TokenFunc != nil {
		t, err := s.opts.TokenFunc(ctx)
		if err != nil {
			return sessionEnd{err: fmt.Errorf("pushlane: token: %w", err)}
		}
		token = t
	}
	u, since := s.subscribeURL(token)
	header := http.Header{"User-Agent": {s.c.userAgent}}
	ws, resp, err := s.dialer.DialContext(ctx, u.String(), header)
	if err != nil {
		return s.dialFailed(err, resp)
	}
	stop, watcherDone := make(chan struct{}), make(chan struct{})
	go func() { // ends a blocked read when ctx ends
		defer close(watcherDone)
		select {
		case <-ctx.Done():
			// WriteControl and Close may run concurrently with the other methods (gorilla).
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseNormal, "client closed"), time.Now().Add(time.Second))
			_ = ws.Close()
		case <-stop:
		}
	}()
	defer func() {
		s.mu.Lock()
		s.ws = nil
		s.mu.Unlock()
		close(stop)
		<-watcherDone
		_ = ws.Close()
	}()

	idle := s.opts.IdleTimeout
	extend := func() {
		if idle > 0 {
			_ = ws.SetReadDeadline(time.Now().Add(idle))
		}
	}
	extend()
	ws.SetPingHandler(func(appData string) error {
		extend()
		err := ws.WriteControl(websocket.PongMessage, []byte(appData), time.Now().Add(time.Second))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})

	shown := *u
	shown.RawQuery = ""
	info := ConnectInfo{URL: shown.String(), Since: since}
	connectedAt := time.Now()
	delivered := false
	first := true
	announce := func() {
		if s.opts.OnConnect != nil {
			s.opts.OnConnect(info)
		}
		s.mu.Lock()
		s.ws = ws
		unsent := s.unsent
		s.unsent = nil
		s.mu.Unlock()
		for _, id := range unsent {
			_ = s.Ack(strconv.FormatUint(id, 10))
		}
	}
	if s.opts.Protocol != 2 {
		announce()
		first = false
	}
	for {
		kind, b, err := ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return sessionEnd{err: ErrClosed, stop: true}
			}
			if first { // protocol 2 connection that ended before any frame
				announce()
			}
			return s.readFailed(err, delivered || time.Since(connectedAt) >= stableAfter)
		}
		extend()
		if kind != websocket.TextMessage {
			continue
		}
		var f struct {
			Message
			Type      string `json:"type"`
			Epoch     string `json:"epoch"`
			Recovered bool   `json:"recovered"`
		}
		if json.Unmarshal(b, &f) != nil {
			continue // not a JSON object: nothing a client can do with it
		}
		if first {
			first = false
			if f.Type == "hello" {
				info.Hello, info.Epoch, info.Recovered = true, f.Epoch, f.Recovered
				s.mu.Lock()
				if f.Epoch != "" {
					s.epoch = f.Epoch
				}
				if !f.Recovered {
					s.last = 0 // the server replays everything: ids of another epoch mean nothing
					s.unsent = nil
				}
				s.mu.Unlock()
				announce()
				continue
			}
			announce() // a server without protocol 2: this is already a message
		}
		if f.Data == nil {
			continue // {"type":"pong"} and other control frames
		}
		m := f.Message
		m.Raw = b
		if m.ID != "" {
			n, err := parseID(m.ID, false)
			if err != nil {
				continue
			}
			s.mu.Lock()
			dup := s.sendSince && n <= s.last
			if !dup {
				// Recorded before the hand-over, so LastID covers a message once Next returned
				// it; if the hand-over is cut by Close, the subscription ends anyway.
				s.last, s.sendSince = n, true
			}
			s.mu.Unlock()
			if dup {
				continue
			}
		}
		select {
		case s.msgs <- m:
		case <-ctx.Done():
			return sessionEnd{err: ErrClosed, stop: true}
		}
		delivered = true
	}
}

// dialFailed sorts a failed handshake: refusals that a retry cannot fix end the subscription.
func (s *Subscription) dialFailed(err error, resp *http.Response) sessionEnd {
	if resp != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		e := newError(http.MethodGet, "/getPushNews", resp, b)
		fatal := resp.StatusCode >= 400 && resp.StatusCode < 500 &&
			resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests
		if resp.StatusCode == http.StatusUnauthorized && s.opts.TokenFunc != nil {
			fatal = false // a fresh token may do
		}
		return sessionEnd{err: e, stop: fatal}
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return sessionEnd{err: err, stop: true}
	}
	return sessionEnd{err: fmt.Errorf("pushlane: cannot connect: %w", err)}
}

// readFailed sorts the end of a connection: removal, and token expiry without TokenFunc, stop.
func (s *Subscription) readFailed(err error, stable bool) sessionEnd {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		text := ce.Text
		if text == "" {
			text = "no reason given"
		}
		e := &CloseError{Code: ce.Code, Text: text}
		stop := ce.Code == CloseRemoved || ce.Code == ClosePolicy && s.opts.TokenFunc == nil
		return sessionEnd{err: e, stop: stop, stable: stable}
	}
	return sessionEnd{err: fmt.Errorf("pushlane: connection lost: %w", err), stable: stable}
}

// parseID parses a message id in canonical form (and "0" when zeroOK).
func parseID(s string, zeroOK bool) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil || strconv.FormatUint(n, 10) != s || n == 0 && !zeroOK {
		return 0, fmt.Errorf("%q is not a message id", s)
	}
	return n, nil
}
