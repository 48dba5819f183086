package module

import (
	"time"
)

// Transport is one subscriber connection as the core sees it: a WebSocket or a Server-Sent Events
// stream. The core never sees the socket; the adapters that implement Transport live in api/.
// The shape follows centrifuge's transport.go: write several encoded frames at once, close with
// a code and a reason, say what it is.
//
// Concurrency contract: WriteFrames and WriteClose are called by one goroutine at a time (the
// client's write loop), never concurrently with each other. SetWriteDeadline and Abort may be
// called from any goroutine at any time, also while a write is in progress.
type Transport interface {
	// Kind says which transport this is.
	Kind() TransportKind
	// WriteFrames writes the frames in order, each as one message of the transport (one
	// WebSocket text or control frame, one SSE event), before deadline. Frames handed over in
	// one call go to the socket together, in as few system calls as the transport can manage;
	// when it returns nil every byte was handed to the operating system. After an error the
	// transport is broken and the client stops using it.
	WriteFrames(frames []Frame, deadline time.Time) error
	// WriteClose tells the peer that the server ends the connection, with an API.md close code
	// and a short reason: a WebSocket close frame, or an SSE "close" event. It does not cut the
	// connection: Abort does.
	WriteClose(code int, reason string, deadline time.Time) error
	// SetWriteDeadline moves the deadline of the write in progress and of later ones, with
	// net.Conn's semantics. The core uses it to give a write that started long ago a fresh
	// writeWait when it decides to close the connection (slow consumer).
	SetWriteDeadline(t time.Time) error
	// Abort cuts the connection at once: writes in progress fail, the adapter's reader ends.
	// Idempotent.
	Abort()
}

// TransportKind names a transport.
type TransportKind uint8

const (
	// TransportWebSocket is GET /getPushNews upgraded to a WebSocket. Its peer answers pings
	// with pongs and may send frames (application pings, acks).
	TransportWebSocket TransportKind = iota + 1
	// TransportSSE is GET /getPushNews as a text/event-stream. Its peer sends nothing after the
	// request: liveness comes only from writes succeeding.
	TransportSSE
)

func (k TransportKind) String() string {
	switch k {
	case TransportWebSocket:
		return "websocket"
	case TransportSSE:
		return "sse"
	}
	return "unknown"
}

// peerSpeaks reports whether the peer can show life by itself (pongs, frames); when it cannot,
// the heartbeat does not drop the connection for silence.
func (k TransportKind) peerSpeaks() bool { return k == TransportWebSocket }

// FrameKind says what a Frame is, which decides how a transport encodes it.
type FrameKind uint8

const (
	// FrameMessage is a stored message (ID set): a WebSocket text frame, or an SSE event with
	// "id: ID".
	FrameMessage FrameKind = iota + 1
	// FrameBroadcast is a broadcast: a text frame, or an SSE event without id.
	FrameBroadcast
	// FrameControl is a protocol message of the service itself ({"type":"pong"}, the version 2
	// hello): a WebSocket text frame. SSE connections never get one.
	FrameControl
	// FramePing keeps the connection alive: a WebSocket ping, or an SSE comment line.
	FramePing
	// FramePong answers the peer's WebSocket ping; the payload is Body.
	FramePong
)

// Frame is one message to write. Its text is Head followed by Body: Body may be shared by many
// connections (a broadcast's data is encoded once for all of them), Head is the part that
// differs per recipient (may be empty). Frames are read-only once queued.
type Frame struct {
	Kind FrameKind
	ID   uint64 // FrameMessage only
	Head []byte
	Body []byte
}

// Size is the number of bytes the frame's text holds.
func (f *Frame) Size() int { return len(f.Head) + len(f.Body) }

// AppendText appends the frame's text (Head then Body) to dst.
func (f *Frame) AppendText(dst []byte) []byte {
	return append(append(dst, f.Head...), f.Body...)
}
