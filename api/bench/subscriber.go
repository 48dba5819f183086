package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// subscriber is one WebSocket connection and the state its reader goroutine keeps. It is kept
// small: thousands of them live at once.
type subscriber struct {
	idx  int
	user int
	conn *websocket.Conn

	lastID uint64   // unicast: the last message id seen (ids increase per connection); reader only
	seen   []uint64 // broadcast: bitmap of the broadcasts seen, allocated on the first; reader only

	frames   atomic.Int64 // valid deliveries counted
	lastRecv atomic.Int64 // unix ns of the last valid delivery
}

// readLimit bounds one incoming frame (the server's own limit is websocket.maxMessageBytes).
const readLimit = 1 << 20

// writePool lends the subscribers' write buffers only while a frame is written: they never send
// data frames, so idle connections hold none.
var writePool sync.Pool

// bufPool holds the read buffers of the reader goroutines between frames.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// dialAll opens o.conns subscribers, o.dialConc at a time, each followed by its reader
// goroutine. Failures are tallied by reason; on ctx end the rest are not attempted.
func (b *bench) dialAll(ctx context.Context) {
	n := b.o.conns
	b.subs = make([]*subscriber, n)
	var next atomic.Int64
	var opened atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	go b.progress(done, "connecting", func() string {
		return fmt.Sprintf("%d/%d open, %d failed", opened.Load(), n, b.connErrs.total())
	})
	for range min(b.o.dialConc, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				s, err := b.dialOne(ctx, i)
				if err != nil {
					b.connErrs.add(err.Error())
					continue
				}
				b.subs[i] = s
				opened.Add(1)
				b.readers.Add(1)
				go b.read(s)
			}
		})
	}
	wg.Wait()
	close(done)
	for _, s := range b.subs {
		if s != nil {
			b.userConns[s.user]++
			b.open++
		}
	}
	attempted := min(int(next.Load()), n)
	if missing := n - attempted; missing > 0 {
		for range missing {
			b.connErrs.add("not attempted (time limit or interrupted)")
		}
	}
}

// dialError is a failed subscribe, worded as a tally key.
type dialError struct{ reason string }

func (e *dialError) Error() string { return e.reason }

func (b *bench) dialOne(ctx context.Context, i int) (*subscriber, error) {
	user := i % b.o.users
	name := b.userName(user)
	q := url.Values{"userId": {name}}
	if b.o.ack {
		q.Set("v", "2")
	}
	switch {
	case b.o.token != "":
		q.Set("token", b.o.token)
	case b.o.jwtSecret != "":
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Subject:   name,
			ExpiresAt: jwt.NewNumericDate(b.tokenExp),
		}).SignedString([]byte(b.o.jwtSecret))
		if err != nil {
			return nil, &dialError{"token: " + err.Error()}
		}
		q.Set("token", tok)
	}
	local := b.t.source(i)
	d := websocket.Dialer{
		ReadBufferSize:   1024,
		WriteBufferSize:  256,
		WriteBufferPool:  &writePool,
		HandshakeTimeout: b.o.dialTimeout,
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: local, Timeout: b.o.dialTimeout}
			return nd.DialContext(ctx, "tcp", b.t.dialAddr)
		},
	}
	if b.o.insecure {
		d.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	dctx, cancel := context.WithTimeout(ctx, b.o.dialTimeout)
	defer cancel()
	conn, resp, err := d.DialContext(dctx, b.t.wsURL+"?"+q.Encode(), nil)
	if err != nil {
		if resp != nil {
			return nil, &dialError{httpReason(resp.StatusCode, resp.Body)}
		}
		return nil, &dialError{errReason(err)}
	}
	conn.SetReadLimit(readLimit)
	return &subscriber{idx: i, user: user, conn: conn}, nil
}

// httpReason is "HTTP 429: <the server's error text>", shortened.
func httpReason(status int, body io.ReadCloser) string {
	reason := "HTTP " + strconv.Itoa(status)
	if body == nil {
		return reason
	}
	defer body.Close()
	raw, _ := io.ReadAll(io.LimitReader(body, 4096))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		msg := e.Error
		if len(msg) > 60 {
			msg = msg[:60]
		}
		reason += ": " + msg
	}
	return reason
}

// read is the one goroutine of a subscriber: it reads frames until the connection ends and
// accounts for each. The default ping handler answers the server's pings.
func (b *bench) read(s *subscriber) {
	defer b.readers.Done()
	for {
		typ, r, err := s.conn.NextReader()
		if err != nil {
			if !b.closing.Load() {
				b.dropped.Add(1)
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					b.drops.add("close " + strconv.Itoa(ce.Code))
				} else {
					b.drops.add(errReason(err))
				}
			}
			return
		}
		if typ != websocket.TextMessage {
			b.unexpected.Add(1)
			continue
		}
		bp := bufPool.Get().(*[]byte)
		buf, err := readAll((*bp)[:0], r)
		if err == nil {
			b.handle(s, buf, b.clk.now())
		}
		if cap(buf) <= 64<<10 {
			*bp = buf[:0]
			bufPool.Put(bp)
		}
		// A read error here surfaces again from the next NextReader call.
	}
}

func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// handle accounts for one frame received at now (unix ns).
func (b *bench) handle(s *subscriber, raw []byte, now int64) {
	if b.o.ack && bytes.HasPrefix(raw, helloPrefix) {
		return // version 2: the first frame says hello
	}
	f, ok := parseFrame(raw)
	if !ok || b.perMsg == nil || f.seq < 0 || f.seq >= int64(len(b.perMsg)) {
		b.unexpected.Add(1)
		return
	}
	switch b.o.mode {
	case modeUnicast:
		if f.broadcast || !f.hasID {
			b.unexpected.Add(1)
			return
		}
		if int(f.seq%int64(b.o.users)) != s.user {
			b.misrouted.Add(1)
			return
		}
		if f.id <= s.lastID { // ids increase per connection: this one was already seen
			b.dups.Add(1)
			return
		}
		s.lastID = f.id
		if b.o.ack {
			b.ack(s, f.id)
		}
	case modeBroadcast:
		if !f.broadcast {
			b.unexpected.Add(1)
			return
		}
		if s.seen == nil {
			s.seen = make([]uint64, (len(b.perMsg)+63)/64)
		}
		w, bit := f.seq/64, uint64(1)<<(f.seq%64)
		if s.seen[w]&bit != 0 {
			b.dups.Add(1)
			return
		}
		s.seen[w] |= bit
	default:
		b.unexpected.Add(1)
		return
	}
	b.perMsg[f.seq].Add(1)
	b.hist.record(s.idx, now-f.sent)
	s.frames.Add(1)
	s.lastRecv.Store(now)
}

// helloPrefix starts the hello frame of a version 2 connection.
var helloPrefix = []byte(`{"type":"hello"`)

// ack acknowledges message id on the subscriber's connection. Only the reader goroutine writes
// data frames (gorilla allows one writer; the close in closeAll is a control frame).
func (b *bench) ack(s *subscriber, id uint64) {
	var buf [48]byte
	msg := strconv.AppendUint(append(buf[:0], `{"type":"ack","id":"`...), id, 10)
	msg = append(msg, `"}`...)
	if err := s.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		b.ackErrors.Add(1)
	}
}

// frame is what the tool needs of a received frame.
type frame struct {
	id        uint64
	hasID     bool
	broadcast bool
	sent      int64 // data.t: unix ns when the publisher sent it
	seq       int64 // data.s
}

var (
	dataPrefix      = []byte(`"data":{"t":`)
	idPrefix        = []byte(`{"id":"`)
	broadcastMarker = []byte(`"broadcast":true`)
	seqKey          = []byte(`,"s":`)
)

// parseFrame reads a pushlane frame carrying bench data {"t":<ns>,"s":<seq>}. The fast path knows
// the server's field order; anything else goes through encoding/json.
func parseFrame(raw []byte) (frame, bool) {
	var f frame
	i := bytes.Index(raw, dataPrefix)
	if i >= 0 {
		rest := raw[i+len(dataPrefix):]
		t, n := parseUint(rest)
		if n > 0 && bytes.HasPrefix(rest[n:], seqKey) {
			rest = rest[n+len(seqKey):]
			sq, m := parseUint(rest)
			if m > 0 && len(rest) > m && rest[m] == '}' {
				f.sent, f.seq = int64(t), int64(sq)
				head := raw[:i]
				f.broadcast = bytes.Contains(head, broadcastMarker)
				if bytes.HasPrefix(head, idPrefix) {
					id, k := parseUint(head[len(idPrefix):])
					if k > 0 && len(head) > len(idPrefix)+k && head[len(idPrefix)+k] == '"' {
						f.id, f.hasID = id, true
					}
				}
				if f.hasID || f.broadcast {
					return f, true
				}
			}
		}
	}
	var v struct {
		ID        string `json:"id"`
		Broadcast bool   `json:"broadcast"`
		Data      *struct {
			T *int64 `json:"t"`
			S *int64 `json:"s"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Data == nil || v.Data.T == nil || v.Data.S == nil {
		return f, false
	}
	f = frame{broadcast: v.Broadcast, sent: *v.Data.T, seq: *v.Data.S}
	if v.ID != "" {
		id, err := strconv.ParseUint(v.ID, 10, 64)
		if err != nil {
			return f, false
		}
		f.id, f.hasID = id, true
	}
	return f, true
}

// parseUint reads leading decimal digits (at most 19); n is how many.
func parseUint(b []byte) (v uint64, n int) {
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + uint64(b[n]-'0')
		n++
	}
	return v, n
}

// closeAll closes every subscriber (a close frame, then the socket) and waits, bounded, for the
// readers to end. The close frames share one deadline, so an unresponsive network cannot make
// this take longer than a few seconds whatever the number of connections.
func (b *bench) closeAll() {
	b.closing.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	for _, s := range b.subs {
		if s == nil {
			continue
		}
		if time.Now().Before(deadline) {
			_ = s.conn.WriteControl(websocket.CloseMessage, msg, deadline)
		}
		_ = s.conn.Close()
	}
	done := make(chan struct{})
	go func() {
		b.readers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(b.stderr, "pushlane bench: some readers did not end within 10s of closing")
	}
}
