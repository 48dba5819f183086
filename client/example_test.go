package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"pushlane/api/server"
	"pushlane/client"
	"pushlane/config"
)

// exampleServer starts a pushlane node for the examples and returns its URL and a stop function.
func exampleServer() (string, func()) {
	dir, err := os.MkdirTemp("", "pushlane-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg := config.Default()
	cfg.Store.Path = filepath.Join(dir, "push.db")
	node, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(node.Handler())
	return srv.URL, func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Close(ctx)
		os.RemoveAll(dir)
	}
}

// A backend publishes a message to a user, and a subscriber of that user receives it.
func Example() {
	serverURL, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, err := client.New(serverURL) // client.WithAPIKey(key) when auth.apiKeys is set
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseIdleConnections()

	res, err := c.Publish(ctx, "alice", map[string]string{"title": "Order #1042 shipped"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored for", res.UserID, "online:", res.Online)

	sub, err := c.Subscribe(ctx, "alice", client.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	msg, err := sub.Next(ctx) // alice was offline: the message waited in her unread queue
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg.ID == res.ID, string(msg.Data))
	// Output:
	// stored for alice online: false
	// true {"title":"Order #1042 shipped"}
}

// Publish retries by itself after a 503 or a network error, with the same Idempotency-Key; give
// your own key to make your own retries (after a crash, say) safe too.
func ExampleClient_Publish() {
	c, _ := client.New("http://127.0.0.1:8080", client.WithAPIKey(os.Getenv("PUSH_API_KEY")))
	ctx := context.Background()
	res, err := c.Publish(ctx, "alice", map[string]any{"title": "hi"},
		client.WithTTL(24*time.Hour),
		client.WithIdempotencyKey("order-1042-shipped"))
	var e *client.Error
	switch {
	case errors.Is(err, client.ErrUnauthorized):
		log.Fatal("set PUSH_API_KEY")
	case errors.As(err, &e):
		log.Fatalf("refused: %d %s", e.StatusCode, e.Message)
	case err != nil:
		log.Fatal(err) // network error after every retry
	}
	fmt.Println(res.ID, res.Online)
}

// A subscriber that resumes where it left off, acknowledges what it processed (protocol
// version 2), and re-syncs when the server could not honour its position.
func ExampleClient_Subscribe() {
	c, _ := client.New("http://127.0.0.1:8080")
	ctx := context.Background()
	lastID, epoch := loadPosition() // what the application stored, "" the first time
	sub, err := c.Subscribe(ctx, "alice", client.SubscribeOptions{
		Since:    lastID,
		Epoch:    epoch,
		Protocol: 2,
		OnConnect: func(i client.ConnectInfo) {
			if i.Hello && !i.Recovered {
				log.Print("the server replays everything it stores: re-sync")
			}
		},
		OnDisconnect: func(d client.DisconnectInfo) {
			log.Printf("%v; reconnecting in %v", d.Err, d.RetryIn)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			log.Fatal(err) // kicked (4000), token refused, or closed
		}
		fmt.Printf("%s %s\n", msg.ID, msg.Data)
		if msg.ID != "" {
			_ = sub.Ack(msg.ID)
			savePosition(msg.ID, sub.Epoch())
		}
	}
}

func loadPosition() (string, string) { return "", "" }
func savePosition(string, string)    {}

// Message status: was it delivered, was it acknowledged?
func ExampleClient_Status() {
	c, _ := client.New("http://127.0.0.1:8080")
	st, err := c.Status(context.Background(), "alice", "42")
	if errors.Is(err, client.ErrNotFound) {
		fmt.Println("not stored (expired, trimmed, purged, or never was)")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Status, st.SentAt, st.AckedAt)
}
