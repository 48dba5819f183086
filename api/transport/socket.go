package transport

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// batchingResponse wraps the response writer of a WebSocket upgrade so that the connection gorilla
// hijacks from it is a *socket: the WebSocket transport can then collect several frames and
// hand them to the kernel in one write.
type batchingResponse struct {
	http.ResponseWriter
	sock *socket // where Hijack puts the connection
}

func (w *batchingResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("websocket upgrade: the response writer cannot be hijacked")
	}
	conn, rw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.sock.Conn = conn
	return w.sock, rw, nil
}

// socket is the network connection under a gorilla connection. Between begin and flush, every
// byte written to it is collected, in order, and flush hands the whole batch to the operating
// system in one Write.
//
// It relies on one documented fact only: gorilla writes a connection's frames to the net.Conn
// it was given. How gorilla splits a frame into calls does not matter: socket has no write
// method besides Write (the net.Conn is embedded as an interface, so helpers such as
// net.Buffers.WriteTo, which look for a concrete connection's private fast path, fall back to
// Write), and each call appends whole to the batch under mu.
//
// Concurrency: the transport's write loop begins and flushes; gorilla may also write from the
// reader's goroutine (the close frame it sends for a frame over the read limit) — such a write
// joins the open batch in order, or goes straight out when none is open; mu keeps bytes of two
// writes from ever interleaving.
type socket struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	batch    *[]byte
}

// maxPooledBatch is the largest batch buffer kept for reuse: a batch holds at most the write
// loop's bound (64 KB) plus one frame; a buffer grown for one huge frame is let go.
const maxPooledBatch = 256 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (s *socket) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.batching {
		*s.batch = append(*s.batch, p...)
		return len(p), nil
	}
	return s.Conn.Write(p)
}

// SetWriteDeadline is called by gorilla before each frame it writes; while a batch collects,
// the batch's own deadline (set at flush) is what counts.
func (s *socket) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.batching {
		return nil
	}
	return s.Conn.SetWriteDeadline(t)
}

// begin starts collecting writes.
func (s *socket) begin() {
	s.mu.Lock()
	s.batching = true
	s.batch = batchPool.Get().(*[]byte)
	s.mu.Unlock()
}

// flush writes the collected bytes in one Write before deadline and stops collecting.
func (s *socket) flush(deadline time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := s.batch
	s.batching, s.batch = false, nil
	defer release(buf)
	if len(*buf) == 0 {
		return nil
	}
	if err := s.Conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := s.Conn.Write(*buf)
	return err
}

func release(buf *[]byte) {
	if buf == nil || cap(*buf) > maxPooledBatch {
		return
	}
	*buf = (*buf)[:0]
	batchPool.Put(buf)
}

// DiscardInput reads and drops what the peer sends until it falls quiet for 100 ms (its close
// frame has then arrived) or grace ends. Use it before cutting a connection that still has
// unread input, such as the rest of a frame over the read limit: closing a socket with unread
// input makes the kernel send a reset that can destroy the close frame in flight.
func DiscardInput(nc net.Conn, grace time.Duration) {
	end := time.Now().Add(grace)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		next := time.Now().Add(100 * time.Millisecond)
		if next.After(end) {
			next = end
		}
		_ = nc.SetReadDeadline(next)
		if _, err := nc.Read(buf); err != nil {
			return
		}
	}
}
