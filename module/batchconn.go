package module

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// BatchWrites wraps the response writer of a WebSocket upgrade so that the connection gorilla
// hijacks from it lets the write loop hand several queued frames to the kernel in one write.
// Upgrade with it: Connect falls back to a write per frame on connections made without it.
//
// Why: a write costs about the same whatever its size, and it is most of what a delivery costs
// (12 µs of CPU per loopback write spread over 10k sockets on this project's 2-core machine). A
// backlog page, or frames that queued while the socket was busy, go out in one write instead of
// one each.
func BatchWrites(w http.ResponseWriter) http.ResponseWriter { return batchingResponse{w} }

type batchingResponse struct{ http.ResponseWriter }

func (w batchingResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("batch writes: response writer cannot be hijacked")
	}
	conn, rw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return conn, rw, nil // TLS: a frame per write
	}
	return &batchConn{TCPConn: tcp}, rw, nil
}

// maxBatch is where a batch is written out even though more frames are queued: it bounds the
// memory a batch holds and keeps one write within what a socket buffer takes at once.
const maxBatch = 32 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// batchConn is the socket under a client's gorilla connection. Between begin and flush, writes
// (gorilla's frames, whole) are collected instead of sent. Only the write loop begins and
// flushes; the read loop's goroutine may also write through gorilla (the close frame of a
// protocol error), which is why the batch is guarded.
//
// The socket is embedded as the concrete *net.TCPConn, first: its methods are then promoted as
// tail calls, without a frame of their own, and an idle connection's read loop still fits the
// 2 KB stack a goroutine starts with (an embedded net.Conn costs every connection 2 KB more;
// BenchmarkIdleConnStack guards it).
type batchConn struct {
	*net.TCPConn
	mu       sync.Mutex
	batch    *[]byte   // non-nil while collecting
	deadline time.Time // the last write deadline set while collecting, applied at flush
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.batch != nil {
		*b.batch = append(*b.batch, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.TCPConn.Write(p)
}

// SetWriteDeadline is called by gorilla before every frame; while collecting only the last one
// matters, and setting a socket deadline resets a runtime timer each time.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	if b.batch != nil {
		b.deadline = t
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	return b.TCPConn.SetWriteDeadline(t)
}

// begin starts collecting writes; it does nothing when collecting already.
func (b *batchConn) begin() {
	b.mu.Lock()
	if b.batch == nil {
		b.batch = batchPool.Get().(*[]byte)
		b.deadline = time.Time{}
	}
	b.mu.Unlock()
}

// size is how many bytes the open batch holds (0 when none is open).
func (b *batchConn) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batch == nil {
		return 0
	}
	return len(*b.batch)
}

// flush sends the batch in one write and stops collecting.
func (b *batchConn) flush() error {
	b.mu.Lock()
	buf, deadline := b.batch, b.deadline
	b.batch = nil
	b.mu.Unlock()
	if buf == nil {
		return nil
	}
	defer release(buf)
	if len(*buf) == 0 {
		return nil
	}
	if !deadline.IsZero() {
		if err := b.TCPConn.SetWriteDeadline(deadline); err != nil {
			return err
		}
	}
	_, err := b.TCPConn.Write(*buf)
	return err
}

func release(buf *[]byte) {
	if cap(*buf) > 2*maxBatch {
		return // one huge frame: let it go rather than keep it pooled
	}
	*buf = (*buf)[:0]
	batchPool.Put(buf)
}
