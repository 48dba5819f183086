package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"pushlane/client"
	"pushlane/module"
)

const clientsUsage = `Usage:
  pushlane clients [--limit N] [--offset N]
  pushlane clients USER

Without USER, lists the online users (GET /clients) as a table "USER  CONNECTIONS" in byte
order of user id, then "total: N", the number of online users before paging. With USER, shows
that user's live connections (GET /clients/USER: id, remote address, connected at, messages
sent) and "pending", its unread queue. --json prints the answer as JSON instead.
Exit status: 0 success, 1 the server refused (404: user offline with nothing stored) or could
not be reached, 2 bad command line.
`

const clientsExamples = `  pushlane clients
  pushlane clients --limit 20 --offset 40
  pushlane clients alice
  pushlane clients --json | jq '.users[].userId'
`

func runClients(ctx context.Context, env *runEnv, args []string) int {
	fs := newFlagSet(env)
	var (
		common        commonFlags
		limit, offset optInt
		raw           bool
	)
	common.register(fs)
	fs.Var(&limit, "limit", "list at most `N` users (server default 100, at most 1000)")
	fs.Var(&offset, "offset", "skip the first `N` users")
	fs.BoolVar(&raw, "json", false, "print the server's answer as one line of JSON")
	pos, code, done := parse(env, fs, args, clientsUsage, clientsExamples)
	if done {
		return code
	}
	if len(pos) > 1 {
		return env.usageError("expected at most one USER argument, got %d", len(pos))
	}
	if len(pos) == 1 {
		if limit.set || offset.set {
			return env.usageError("--limit and --offset apply to the list, not to one user")
		}
		if !module.ValidUserID(pos[0]) {
			return env.usageError("USER %q: %v", pos[0], module.ErrBadUserID)
		}
	}
	common.fillFromEnv(env.getenv)
	c, err := newConn(common)
	if err != nil {
		return env.usageError("%v", err)
	}
	defer c.close()
	if len(pos) == 1 {
		return showClient(ctx, env, c, pos[0], raw)
	}

	q := client.ClientsQuery{Offset: offset.n}
	if limit.set {
		q.Limit = limit.n
		if limit.n == 0 {
			q.Limit = client.OnlyTotal
		}
	}
	page, err := c.api.Clients(ctx, q)
	if err != nil {
		return env.report(c, err)
	}
	if raw {
		writeJSON(env.stdout, page)
		return exitOK
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tCONNECTIONS")
	for _, u := range page.Users {
		fmt.Fprintf(tw, "%s\t%d\n", u.UserID, u.Connections)
	}
	_ = tw.Flush()
	fmt.Fprintf(env.stdout, "total: %d\n", page.Total)
	return exitOK
}

// showClient prints GET /clients/USER.
func showClient(ctx context.Context, env *runEnv, c *conn, user string, raw bool) int {
	out, err := c.api.Client(ctx, user)
	if err != nil {
		return env.report(c, err)
	}
	if raw {
		writeJSON(env.stdout, out)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "user: %s\n", out.UserID)
	if len(out.Connections) == 0 {
		fmt.Fprintln(env.stdout, "connections: none (offline)")
	} else {
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CONNECTION\tREMOTE ADDR\tCONNECTED AT\tMESSAGES SENT")
		for _, cn := range out.Connections {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", cn.ID, cn.RemoteAddr, connectedAt(cn.ConnectedAt), cn.MessagesSent)
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(env.stdout, "pending: %d\n", out.Pending)
	return exitOK
}

// connectedAt shows a time in UTC to the second, with how long ago.
func connectedAt(t time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), time.Since(t).Round(time.Second))
}
