package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"pushlane/client"
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
It subscribes with protocol version 2 and acknowledges each message once it is printed, so a
message leaves the user's unread queue only when this listener has written it out (--ack=false:
version 1, where a message leaves the queue once the server wrote it to the connection).
`

const listenExamples = `  pushlane listen --user alice
  pushlane listen --user alice --pretty
  pushlane listen --user alice --since 41 --count 1 | jq -r .data.title
  pushlane listen --server https://push.example.com --token "$JWT" --user alice
  pushlane listen --user alice --ack=false
`

func runListen(ctx context.Context, env *runEnv, args []string) int {
	fs := newFlagSet(env)
	var (
		common commonFlags
		user   string
		since  string
		pretty bool
		count  int
		idle   time.Duration
		ack    bool
	)
	common.register(fs)
	fs.StringVar(&user, "user", "", "`USER` id to subscribe as (required)")
	fs.StringVar(&since, "since", "", "last message `ID` already seen: replay every stored message after it (0: all stored)")
	fs.BoolVar(&pretty, "pretty", false, `print "#ID  CREATED-AT  DATA" instead of the raw JSON frame`)
	fs.IntVar(&count, "count", 0, "exit 0 after `N` messages (0: run until interrupted)")
	fs.DurationVar(&idle, "idle-timeout", time.Minute, "reconnect after a `DURATION` without any frame or ping from the server (default 1m; 0: never)")
	fs.BoolVar(&ack, "ack", true, "protocol version 2: acknowledge each message once printed (it then leaves the unread queue); false: version 1")
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
	if since != "" {
		if _, err := module.ParseSince(since); err != nil {
			return env.usageError("--since: %v", err)
		}
	}
	common.fillFromEnv(env.getenv)
	c, err := newConn(common)
	if err != nil {
		return env.usageError("%v", err)
	}
	defer c.close()

	opts := client.SubscribeOptions{
		Since: since,
		Token: c.token,
		// Reconnect pauses: 250-500ms, doubling up to 15-30s, with jitter; the backoff starts
		// over once a connection delivered a message or stayed up for 10s.
		Backoff:     client.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second},
		IdleTimeout: idle,
		OnConnect: func(i client.ConnectInfo) {
			at := ""
			if i.Since != "" {
				at = " since=" + i.Since
			}
			env.errorf("connected to %s as %s%s", i.URL, user, at)
			if i.Hello && !i.Recovered {
				env.errorf("the server could not resume after id %s (epoch %s): replaying every stored message", i.Since, i.Epoch)
			}
		},
		OnDisconnect: func(d client.DisconnectInfo) {
			msg := fmt.Sprintf("%s; reconnecting in %v", describeSubscribe(d.Err), d.RetryIn.Round(time.Millisecond))
			if d.Since != "" {
				msg += " with since=" + d.Since
			}
			env.errorf("%s (attempt %d)", msg, d.Attempt)
		},
	}
	if idle == 0 {
		opts.IdleTimeout = -1
	}
	if ack {
		opts.Protocol = 2
	}
	sub, err := c.api.Subscribe(ctx, user, opts)
	if err != nil {
		return env.usageError("%v", err)
	}
	defer sub.Close()

	printed := 0
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, client.ErrClosed) {
				return exitOK
			}
			return listenEnded(env, c, err)
		}
		if err := printMessage(env.stdout, m, pretty); err != nil {
			env.errorf("writing to stdout: %v", err)
			return exitFailed
		}
		if ack && m.ID != "" {
			_ = sub.Ack(m.ID) // after the line is written: at least once to stdout
		}
		printed++
		if count > 0 && printed >= count {
			return exitOK
		}
	}
}

// describeSubscribe is the text of why a connection ended or could not be opened.
func describeSubscribe(err error) string {
	var ce *client.CloseError
	var e *client.Error
	switch {
	case errors.As(err, &ce):
		return fmt.Sprintf("connection closed by the server (close %d: %s)", ce.Code, ce.Text)
	case errors.As(err, &e):
		return "subscribe refused: " + describe(err)
	}
	return describe(err)
}

// listenEnded reports why the subscription ended for good and returns 1.
func listenEnded(env *runEnv, c *conn, err error) int {
	var ce *client.CloseError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ce) && ce.Code == client.CloseRemoved:
		env.errorf("removed by the server (close 4000: %s); not reconnecting", ce.Text)
	case errors.As(err, &ce) && ce.Code == client.ClosePolicy:
		env.errorf("closed by the server (close 1008: %s); the token may have expired, not reconnecting", ce.Text)
	case errors.As(err, &certErr):
		env.errorf("%v", err)
		fmt.Fprintln(env.stderr, "hint: --insecure skips certificate verification (for testing only)")
	default:
		env.errorf("%s", describeSubscribe(err))
		if errors.Is(err, client.ErrUnauthorized) && c.token == "" {
			fmt.Fprintf(env.stderr, "hint: pass the subscriber token with --token or $%s\n", envToken)
		}
	}
	return exitFailed
}

// printMessage writes one message line: the frame's JSON (compacted), or with pretty
// "#ID  CREATED-AT  DATA" ("broadcast  CREATED-AT  DATA" for a broadcast).
func printMessage(w io.Writer, m client.Message, pretty bool) error {
	var line bytes.Buffer
	switch {
	case !pretty:
		writeCompact(&line, m.Raw)
	case m.Broadcast || m.ID == "":
		line.WriteString("broadcast  " + createdAt(m) + "  ")
		writeCompact(&line, m.Data)
	default:
		line.WriteString("#" + m.ID + "  " + createdAt(m) + "  ")
		writeCompact(&line, m.Data)
	}
	line.WriteByte('\n')
	_, err := w.Write(line.Bytes())
	return err
}

// createdAt is the frame's createdAt as the server wrote it.
func createdAt(m client.Message) string {
	var f struct {
		CreatedAt string `json:"createdAt"`
	}
	_ = json.Unmarshal(m.Raw, &f)
	return f.CreatedAt
}

func writeCompact(buf *bytes.Buffer, b []byte) {
	if json.Compact(buf, b) != nil {
		buf.Write(b)
	}
}
