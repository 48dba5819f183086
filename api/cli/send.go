package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"pushlane/client"
	"pushlane/module"
)

const sendUsage = `Usage:
  pushlane send --user U [--user U2 ...] [--ttl DURATION] DATA
  pushlane send --broadcast DATA

Publishes DATA, any JSON value but null, to every connection of each user (POST /pushNews; the
message is stored for --ttl and replayed to users who are offline), or with --broadcast to every
live connection of every user (POST /broadcast; not stored). DATA "-" reads it from stdin.
Prints one line per user: "USER  id=ID  online=BOOL", or "connections=N" for a broadcast.
Exit status: 0 accepted, 1 the server refused or could not be reached, 2 bad command line.
`

const sendExamples = `  pushlane send --user alice '{"title":"hi"}'
  pushlane send --user alice --user bob --ttl 1h '"plain string"'
  echo '{"n":1}' | pushlane send --user alice -
  pushlane send --broadcast '{"maintenance":"in 5 minutes"}'
  PUSH_SERVER=https://push.example.com PUSH_API_KEY=secret pushlane send --user alice '[1,2]'
  pushlane send --user alice -- -1            (DATA that starts with "-" follows --)
`

// maxDataBytes bounds DATA read from stdin; the server's own limit is usually far lower.
const maxDataBytes = 16 << 20

func runSend(ctx context.Context, env *runEnv, args []string) int {
	fs := newFlagSet(env)
	var (
		common    commonFlags
		users     stringList
		ttl       string
		broadcast bool
		raw       bool
	)
	common.register(fs)
	fs.Var(&users, "user", "recipient `USER` id; repeat for several users")
	fs.StringVar(&ttl, "ttl", "", "keep the message for a `DURATION` such as 90s or 24h (default: the server's store.ttl)")
	fs.BoolVar(&broadcast, "broadcast", false, "send to every live connection of every user instead of --user")
	fs.BoolVar(&raw, "json", false, "print the server's answer as one line of JSON")
	pos, code, done := parse(env, fs, args, sendUsage, sendExamples)
	if done {
		return code
	}

	switch {
	case broadcast && len(users) > 0:
		return env.usageError("--broadcast and --user exclude each other")
	case !broadcast && len(users) == 0:
		return env.usageError("--user (or --broadcast) is required")
	case broadcast && ttl != "":
		return env.usageError("--ttl does not apply to --broadcast (broadcasts are not stored)")
	case len(pos) != 1:
		return env.usageError("expected exactly one DATA argument (a JSON value; quote it for the shell), got %d", len(pos))
	}
	for _, u := range users {
		if !module.ValidUserID(u) {
			return env.usageError("--user %q: %v", u, module.ErrBadUserID)
		}
	}
	var opts []client.PublishOption
	if ttl != "" {
		d, err := time.ParseDuration(ttl)
		if err != nil || d <= 0 {
			return env.usageError("--ttl %q must be a Go duration above zero, such as 90s or 24h", ttl)
		}
		opts = append(opts, client.WithTTL(d))
	}
	data, msg := readData(pos[0], env.stdin)
	if msg != "" {
		return env.usageError("%s", msg)
	}

	common.fillFromEnv(env.getenv)
	c, err := newConn(common)
	if err != nil {
		return env.usageError("%v", err)
	}
	defer c.close()

	if broadcast {
		return sendBroadcast(ctx, env, c, data, raw)
	}
	// One publish, retried by the client with the same Idempotency-Key after a 503 or a
	// network error, so the message is stored once.
	var results []client.Result
	if len(users) == 1 {
		var r client.Result
		r, err = c.api.Publish(ctx, users[0], data, opts...)
		results = []client.Result{r}
	} else {
		results, err = c.api.PublishMany(ctx, users, data, opts...)
	}
	if err != nil {
		return env.report(c, err)
	}
	if raw {
		writeJSON(env.stdout, map[string]any{"results": results})
		return exitOK
	}
	for _, r := range results {
		fmt.Fprintf(env.stdout, "%s  id=%s  online=%t\n", r.UserID, r.ID, r.Online)
	}
	return exitOK
}

func sendBroadcast(ctx context.Context, env *runEnv, c *conn, data json.RawMessage, raw bool) int {
	n, err := c.api.Broadcast(ctx, data)
	if err != nil {
		return env.report(c, err)
	}
	if raw {
		writeJSON(env.stdout, map[string]int{"connections": n})
		return exitOK
	}
	fmt.Fprintf(env.stdout, "connections=%d\n", n)
	return exitOK
}

// readData returns DATA (from stdin when arg is "-") once it is one JSON value other than null,
// or the reason it is not.
func readData(arg string, stdin io.Reader) (json.RawMessage, string) {
	b := []byte(arg)
	if arg == "-" {
		var err error
		b, err = io.ReadAll(io.LimitReader(stdin, maxDataBytes+1))
		if err != nil {
			return nil, "reading DATA from stdin: " + err.Error()
		}
		if len(b) > maxDataBytes {
			return nil, fmt.Sprintf("DATA on stdin is larger than %d bytes", maxDataBytes)
		}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, "DATA is empty: give a JSON value such as '{\"title\":\"hi\"}'"
	}
	if !json.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, fmt.Sprintf("DATA is not valid JSON (%v); a string needs JSON quotes: '\"hello\"'", err)
	}
	if string(b) == "null" {
		return nil, "DATA must not be null"
	}
	return json.RawMessage(b), ""
}
