// Package demo serves the classic WebSocket examples as real endpoints: GET /echo, GET /chat and
// GET /tail?file=NAME. It does not touch the push core; one Demos value owns every demo
// connection and every goroutine they use, and Close ends them all.
package demo

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"pushlane/module"
)

// Defaults for zero-valued Options fields.
const (
	DefaultMaxMessageBytes = 65536
	DefaultWriteWait       = 10 * time.Second
	DefaultPingInterval    = 10 * time.Second
	DefaultPongWait        = 30 * time.Second
	DefaultSendQueue       = 64
	DefaultSendQueueBytes  = 1 << 20
	DefaultTailLines       = 10
	DefaultTailPoll        = 250 * time.Millisecond
)

// Options are the dependencies and tunables of the demos. Zero values take the defaults above.
type Options struct {
	// TailFiles are the files GET /tail may stream (config key tail.files). A client names a file
	// by its base name ("app.log" for "/var/log/pushlane/app.log"); when two entries share a base
	// name the first wins and the other is ignored with a warning.
	TailFiles []string
	// MaxMessageBytes is the read limit of every demo connection (a bigger frame closes it with
	// 1009), the longest chat text, and the cap of one streamed log line. Default 65536.
	MaxMessageBytes int
	WriteWait       time.Duration // bound of one write, and of the close handshake (≤2 s). Default 10 s.
	PingInterval    time.Duration // server pings this often. Default 10 s.
	PongWait        time.Duration // a peer silent this long (no pong, no frame) is cut. Default 30 s; must exceed PingInterval.
	// CheckOrigin decides which browser origins may connect; the request is refused with 403
	// before the upgrade otherwise. nil allows requests without an Origin header and same-host
	// origins only.
	CheckOrigin func(*http.Request) bool
	Log         *slog.Logger // nil discards

	SendQueue int // frames queued per connection; a chat member whose queue is full is closed with 4001. Default 64.
	// SendQueueBytes bounds the bytes of frames queued per connection as well
	// (websocket.sendQueueBytes): echo and tail wait for room, chat closes the member with 4001.
	// Default 1 MiB.
	SendQueueBytes int
	// Admit takes one of the node's connection slots (websocket.maxConns) for a demo connection
	// about to be upgraded; release gives it back when the connection ends. An error refuses the
	// connection before the upgrade: 429 for module.ErrTooManyConns, 503 otherwise. nil: no
	// limit.
	Admit     func() (release func(), err error)
	TailLines int              // lines of history GET /tail sends on connect; negative sends none. Default 10.
	TailPoll  time.Duration    // how often GET /tail looks at the file. Default 250 ms.
	Now       func() time.Time // clock of the chat "at" field. Default time.Now.
}

// Demos serves GET /echo, GET /chat and GET /tail.
//
// Concurrency: safe for concurrent use. Each connection has exactly one writer goroutine and one
// reader goroutine (and, for /tail, one file follower); all are counted in wg and end after Close.
type Demos struct {
	opts     Options
	log      *slog.Logger
	upgrader websocket.Upgrader
	files    map[string]string // tail name (base name) -> configured path; read-only after New
	room     *room

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	wg     sync.WaitGroup // every goroutine of every connection; Add only under mu while !closed
}

// New builds the demos from their options, filling zero values with the defaults.
func New(o Options) *Demos {
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.WriteWait <= 0 {
		o.WriteWait = DefaultWriteWait
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongWait <= 0 {
		o.PongWait = DefaultPongWait
	}
	if o.PongWait <= o.PingInterval {
		// config.Validate refuses this; keep a hand-built Options from cutting every peer.
		o.PongWait = 3 * o.PingInterval
	}
	if o.SendQueue <= 0 {
		o.SendQueue = DefaultSendQueue
	}
	if o.SendQueueBytes <= 0 {
		o.SendQueueBytes = DefaultSendQueueBytes
	}
	if o.Admit == nil {
		o.Admit = func() (func(), error) { return func() {}, nil }
	}
	if o.TailLines == 0 {
		o.TailLines = DefaultTailLines
	} else if o.TailLines < 0 {
		o.TailLines = 0
	}
	if o.TailPoll <= 0 {
		o.TailPoll = DefaultTailPoll
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CheckOrigin == nil {
		o.CheckOrigin = sameHost
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	d := &Demos{
		opts:  o,
		log:   o.Log,
		files: tailNames(o.TailFiles, o.Log),
		room:  &room{members: make(map[*conn]struct{})},
		conns: make(map[*conn]struct{}),
	}
	d.upgrader = websocket.Upgrader{
		ReadBufferSize:   1024,
		WriteBufferPool:  &sync.Pool{}, // idle connections hold no write buffer
		HandshakeTimeout: o.WriteWait,
		CheckOrigin:      o.CheckOrigin, // checked before the upgrade too, to answer 403 JSON
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeJSONError(w, status, reason.Error())
		},
	}
	return d
}

// Register adds GET /echo, GET /chat and GET /tail to r.
func (d *Demos) Register(r gin.IRoutes) {
	r.GET("/echo", d.echo)
	r.GET("/chat", d.chat)
	r.GET("/tail", d.tail)
}

// Close refuses new demo connections, closes every open one with 1001, and returns once all
// their goroutines have ended: at most about WriteWait plus the 2 s close handshake. Call it on
// shutdown, after http.Server.Shutdown (which leaves upgraded connections alone). Idempotent.
func (d *Demos) Close() {
	d.mu.Lock()
	d.closed = true
	open := make([]*conn, 0, len(d.conns))
	for c := range d.conns {
		open = append(open, c)
	}
	d.mu.Unlock()
	for _, c := range open {
		c.stop(websocket.CloseGoingAway, "server shutting down")
	}
	d.wg.Wait()
}

// handler is what one endpoint adds to the shared connection machinery.
type handler struct {
	name      string
	onMessage func(c *conn, kind int, data []byte) // runs on the reader; nil reads and drops
	onStart   func(c *conn)                        // before the loops start (chat: join the room)
	onStop    func(c *conn)                        // once, when the connection stops (chat: leave)
	follow    func(c *conn)                        // an extra goroutine; must return once c.done is closed
}

// precheck refuses, as plain HTTP before any upgrade, what the three endpoints all refuse. The
// connection slot it takes is given back by serve (or by the connection's stop).
func (d *Demos) precheck(c *gin.Context) bool {
	r := c.Request
	if !websocket.IsWebSocketUpgrade(r) {
		fail(c, http.StatusBadRequest, "this route is a WebSocket endpoint: send a GET with Upgrade: websocket")
		return false
	}
	if !d.opts.CheckOrigin(r) {
		fail(c, http.StatusForbidden, "origin not allowed (websocket.allowedOrigins)")
		return false
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		fail(c, http.StatusServiceUnavailable, "server shutting down")
		return false
	}
	release, err := d.opts.Admit()
	switch {
	case errors.Is(err, module.ErrTooManyConns):
		fail(c, http.StatusTooManyRequests, err.Error())
		return false
	case err != nil:
		fail(c, http.StatusServiceUnavailable, "server shutting down")
		return false
	}
	c.Set(ctxRelease, release)
	return true
}

// ctxRelease holds the connection slot precheck took, for serve.
const ctxRelease = "pushlane.demo.release"

// serve upgrades the request and hands the connection to its goroutines; the HTTP handler then
// returns, so net/http frees its per-request state.
func (d *Demos) serve(c *gin.Context, h handler) {
	release := func() {}
	if r, ok := c.Get(ctxRelease); ok {
		release = r.(func())
	}
	ws, err := d.upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		release()
		return // the upgrader has answered already
	}
	cn := &conn{
		d:          d,
		ws:         ws,
		name:       h.name,
		send:       make(chan outFrame, d.opts.SendQueue),
		room:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
		onStop:     h.onStop,
		release:    release,
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		release()
		_ = ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(d.opts.WriteWait))
		_ = ws.Close()
		return
	}
	d.conns[cn] = struct{}{}
	n := 2
	if h.follow != nil {
		n++
	}
	d.wg.Add(n)
	d.mu.Unlock()
	d.log.Debug("demo connection open", "route", h.name, "remote", c.Request.RemoteAddr)
	if h.onStart != nil {
		h.onStart(cn)
	}
	go cn.writeLoop()
	go cn.readLoop(h.onMessage)
	if h.follow != nil {
		go func() {
			defer d.wg.Done()
			h.follow(cn)
		}()
	}
}

// forget drops a stopped connection from the set Close walks.
func (d *Demos) forget(c *conn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
}

// errorBody is the one error shape: {"error": "<reason>"}, over HTTP and in chat frames.
type errorBody struct {
	Error string `json:"error"`
}

func fail(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, errorBody{Error: msg})
}

// writeJSONError writes {"error": msg} outside Gin (the upgrader's error hook).
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

// sameHost is the CheckOrigin used when none is given: no Origin (not a browser) or an Origin
// naming the request's own host.
func sameHost(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
