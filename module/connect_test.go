package module_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"pushlane/api/transport"
	"pushlane/module"
	"pushlane/module/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A connection is registered from Hub.Reserve on, before the 101 is written. These tests make
// something happen in that window (the handler runs it between Reserve and the upgrade) and
// check what the client, which has seen its socket open, then gets.

// handshakeHub serves subscribers on a real listener; between Reserve and the upgrade it runs
// inWindow.
type handshakeHub struct {
	hub   *module.Hub
	store *memory.Store
	srv   *httptest.Server
	url   string
}

func newHandshakeHub(t *testing.T, inWindow func(h *module.Hub, user string)) *handshakeHub {
	t.Helper()
	return newHandshakeHubWith(t, module.HubConfig{}, inWindow)
}

func newHandshakeHubWith(t *testing.T, cfg module.HubConfig, inWindow func(h *module.Hub, user string)) *handshakeHub {
	t.Helper()
	return newHandshakeHubWrapped(t, cfg, inWindow, func(w http.ResponseWriter) http.ResponseWriter { return w })
}

// newHandshakeHubWrapped upgrades through wrap(w), so a test can reach the accepted sockets.
func newHandshakeHubWrapped(t *testing.T, cfg module.HubConfig, inWindow func(h *module.Hub, user string), wrap func(http.ResponseWriter) http.ResponseWriter) *handshakeHub {
	t.Helper()
	hh := &handshakeHub{}
	var broker *module.LocalBroker
	hh.store = memory.New(module.StoreOptions{OnCommit: func(m []module.Message) { broker.Deliver(m) }})
	hh.hub = module.NewHub(cfg, hh.store, nil, nil)
	broker = module.NewLocalBroker(hh.hub)
	up := websocket.Upgrader{}
	hh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts := module.ConnectOptions{UserID: r.URL.Query().Get("userId"), RemoteAddr: r.RemoteAddr}
		ticket, err := hh.hub.Reserve(r.Context(), opts)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		inWindow(hh.hub, opts.UserID)
		transport.ServeWebSocket(hh.hub, ticket, &up, transport.WebSocketOptions{MaxMessageBytes: 65536, CloseGrace: time.Second}, wrap(w), r)
	}))
	hh.url = "ws" + strings.TrimPrefix(hh.srv.URL, "http") + "/?userId="
	t.Cleanup(func() {
		hh.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hh.hub.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		hh.hub.Close()
		_ = hh.store.Close()
	})
	return hh
}

func (hh *handshakeHub) dial(t *testing.T, user string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(hh.url+user, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// expectClose reads the next frame and requires it to be a close frame with the code.
func expectClose(t *testing.T, conn *websocket.Conn, code int) {
	t.Helper()
	_, b, err := conn.ReadMessage()
	if err == nil {
		t.Fatalf("got frame %s, want close %d", b, code)
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("read: %v, want close %d", err, code)
	}
}

func TestBroadcastDuringHandshakeArrives(t *testing.T) {
	hh := newHandshakeHub(t, func(h *module.Hub, _ string) {
		h.Broadcast(json.RawMessage(`"in the window"`), time.Now())
	})
	conn := hh.dial(t, "alice")
	_, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f struct {
		UserID    string          `json:"userId"`
		Broadcast bool            `json:"broadcast"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &f); err != nil || f.UserID != "alice" || !f.Broadcast || string(f.Data) != `"in the window"` {
		t.Fatalf("got %s, want the broadcast sent during the handshake", b)
	}
}

func TestPublishDuringHandshakeArrivesOnce(t *testing.T) {
	var hh *handshakeHub
	hh = newHandshakeHub(t, func(_ *module.Hub, user string) {
		if _, err := hh.store.Append(context.Background(), []module.Draft{{UserID: user, Data: json.RawMessage(`1`), TTL: time.Hour}}); err != nil {
			t.Errorf("append: %v", err)
		}
	})
	conn := hh.dial(t, "bob")
	if _, b, err := conn.ReadMessage(); err != nil || !strings.Contains(string(b), `"data":1`) {
		t.Fatalf("got %s, %v; want the message published during the handshake", b, err)
	}
	// Nothing else (no second copy from the backlog): the next frame is this sentinel.
	if _, err := hh.store.Append(context.Background(), []module.Draft{{UserID: "bob", Data: json.RawMessage(`2`), TTL: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if _, b, err := conn.ReadMessage(); err != nil || !strings.Contains(string(b), `"data":2`) {
		t.Fatalf("got %s, %v; want only the sentinel after the first message", b, err)
	}
}

func TestKickDuringHandshakeCloses4000(t *testing.T) {
	hh := newHandshakeHub(t, func(h *module.Hub, user string) {
		if n := h.Kick(user, module.CloseRemoved, "removed"); n != 1 {
			t.Errorf("Kick during the handshake closed %d connections, want 1", n)
		}
	})
	conn := hh.dial(t, "carol")
	expectClose(t, conn, module.CloseRemoved)
	if n := hh.hub.Count("carol"); n != 0 {
		t.Fatalf("%d connections of a kicked user still registered", n)
	}
}

func TestShutdownDuringHandshakeCloses1001(t *testing.T) {
	// Shutdown starts while a connection is between Reserve and Connect: it waits for that
	// connection too (it has registered already), which gets 1001 once connected, and the drain
	// finishes in time.
	var once sync.Once
	shutdownErr := make(chan error, 1)
	hh := newHandshakeHub(t, func(h *module.Hub, _ string) {
		once.Do(func() {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shutdownErr <- h.Shutdown(ctx)
			}()
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				release, err := h.Admit()
				if errors.Is(err, module.ErrShuttingDown) {
					// The shutdown has begun. It must not finish while this connection, already
					// registered, has not been connected and closed (it used to: nothing of this
					// connection was counted before Connect).
					select {
					case err := <-shutdownErr:
						shutdownErr <- err
						t.Error("Shutdown returned while a registered connection was still in its handshake")
					case <-time.After(time.Second):
					}
					return // let the upgrade go on
				}
				if err == nil {
					release()
				}
				time.Sleep(time.Millisecond)
			}
			t.Error("the shutdown did not begin")
		})
	})
	conn := hh.dial(t, "dave")
	expectClose(t, conn, websocket.CloseGoingAway)
	select {
	case err := <-shutdownErr:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown did not return")
	}
	if _, resp, err := websocket.DefaultDialer.Dial(hh.url+"erin", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("subscribe after shutdown: %v, want 503", err)
	}
}
