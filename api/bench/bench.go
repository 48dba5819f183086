// Package bench is pushlane's load tool ("pushlane bench"): it opens many WebSocket subscribers against a
// pushlane deployment, publishes or broadcasts to them, and reports connect rate, throughput,
// publish-to-receive latency, losses and (for a server on the same machine) its memory and CPU.
//
// It is meant for servers you operate yourself. Only loopback targets are accepted unless
// --allow-remote is given.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Exit codes of Run.
const (
	exitOK     = 0 // the run completed: every subscriber connected, nothing lost or duplicated
	exitFailed = 1 // the run completed (or timed out) with failures; the report says which
	exitUsage  = 2 // bad arguments or an unusable target; nothing was attempted
)

// Modes.
const (
	modeConns     = "conns"
	modeUnicast   = "unicast"
	modeBroadcast = "broadcast"
)

// Upper bounds of the counts, so that every loop and every per-message table is bounded.
const (
	maxConns      = 1_000_000
	maxMessages   = 10_000_000
	maxBroadcasts = 100_000
	maxPublishers = 1024
)

type options struct {
	mode string

	server      string
	publishTo   string // another node of the same cluster that takes the publishes
	key         string
	jwtSecret   string
	token       string
	allowRemote bool
	insecure    bool

	conns        int
	users        int
	dialConc     int
	dialTimeout  time.Duration
	hold         time.Duration
	settle       time.Duration
	pid          int
	run          string
	timeout      time.Duration
	reqTimeout   time.Duration
	messages     int
	publishers   int
	rate         float64
	drain        time.Duration
	broadcasts   int
	spreadSource bool
	ack          bool // subscribers speak protocol version 2 and acknowledge every message
}

const usageHead = `pushlane bench: load-test a pushlane deployment you operate.

Usage:
  pushlane bench conns|unicast|broadcast [flags]

Modes:
  conns      open --conns subscribers, hold them for --hold, report connect rate and
             (with --pid) the server's memory per connection, then close them
  unicast    open the subscribers, then POST /pushNews --messages times from --publishers
             concurrent loops (round-robin over the users); report publish rate,
             deliveries/s, publish-to-receive latency, lost and duplicate messages; the
             latency is split into the publish's round trip and the server's own part
             (stored to written, from its /metrics)
  broadcast  open the subscribers, then POST /broadcast --broadcasts times back to back;
             report deliveries/s, latency and lost deliveries (expected broadcasts x conns)

It is meant for your own servers. The target must be loopback (127.0.0.0/8, ::1,
localhost) unless --allow-remote is given: thousands of connections and messages
against someone else's service is an attack, not a benchmark. For loopback targets the
subscribers' source addresses are spread over 127.0.0.2-127.0.0.254, so one client
can open far more connections than one address has ephemeral ports.

Each subscriber is user bench-<run>-<i> (shared round-robin when --users is smaller).
With auth.jwtSecret set on the server pass the same --jwt-secret (a token is minted
per user) and with auth.apiKeys pass --key. With --users smaller than --conns, the
server's websocket.maxConnsPerUser must allow conns/users connections per user.
Each process needs one file descriptor per connection: check ulimit -n (and the
server's), and the server's websocket.maxConns.

Examples:
  # server on this machine: memory and connect rate of 10k connections
  pushlane bench conns --conns 10000 --pid $(pidof pushlane)
  # 100k messages from 16 publishers to 10k users, with server CPU per message
  pushlane bench unicast --conns 10000 --messages 100000 --publishers 16 --pid $(pidof pushlane)
  # latency at a fixed load of 5000 messages/s
  pushlane bench unicast --conns 10000 --messages 50000 --rate 5000
  # fan-out: 100 broadcasts to 10k connections
  pushlane bench broadcast --conns 10000 --broadcasts 100
  # your staging deployment, with its credentials
  pushlane bench unicast --server https://push.staging.example.com --allow-remote \
      --key "$PUSH_API_KEY" --jwt-secret "$PUSH_AUTH_JWTSECRET" --conns 2000

The last line of the output is one JSON object with every figure (null when not
measured). Exit code: 0 clean run, 1 failures/losses/timeout, 2 usage error.

Flags:
`

func newFlagSet(o *options, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pushlane bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.server, "server", "http://127.0.0.1:8080", "base URL of the pushlane server (http:// or https://)")
	fs.StringVar(&o.publishTo, "publish-server", "", "publish to this node instead of --server (cross-node delivery in a cluster)")
	fs.StringVar(&o.key, "key", "", "API key, sent as Authorization: Bearer <key> (auth.apiKeys)")
	fs.StringVar(&o.jwtSecret, "jwt-secret", "", "the server's auth.jwtSecret: mint an HS256 token per user")
	fs.StringVar(&o.token, "token", "", "a fixed subscriber token sent by every subscriber (instead of --jwt-secret)")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a non-loopback --server (only servers you operate)")
	fs.BoolVar(&o.insecure, "insecure", false, "skip TLS certificate verification (self-signed test servers)")
	fs.IntVar(&o.conns, "conns", 1000, "number of subscriber connections")
	fs.IntVar(&o.users, "users", 0, "number of distinct users (0 = one per connection); connections share users round-robin")
	fs.IntVar(&o.dialConc, "dial-concurrency", 200, "connections being opened at once")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 30*time.Second, "time limit of one connection's TCP+TLS+WebSocket handshake")
	fs.DurationVar(&o.hold, "hold", 10*time.Second, "conns: how long to hold the open connections")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "with --pid: wait this long after the last connect before reading the server's RSS")
	fs.IntVar(&o.pid, "pid", 0, "process id of the server (same machine): report its RSS and CPU from /proc")
	fs.StringVar(&o.run, "run", "", "run id used in user names bench-<run>-<i> (default: random)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "overall time limit of the run")
	fs.DurationVar(&o.reqTimeout, "request-timeout", 30*time.Second, "time limit of one publish request")
	fs.IntVar(&o.messages, "messages", 100000, "unicast: messages to publish (one POST /pushNews each)")
	fs.IntVar(&o.publishers, "publishers", 16, "unicast: concurrent publishing loops (keep-alive HTTP connections)")
	fs.Float64Var(&o.rate, "rate", 0, "messages (unicast) or broadcasts per second in total; 0 = as fast as answered")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "how long to wait for deliveries after the last publish is answered")
	fs.IntVar(&o.broadcasts, "broadcasts", 100, "broadcast: number of POST /broadcast")
	fs.BoolVar(&o.spreadSource, "spread-sources", true, "loopback targets: spread source addresses over 127.0.0.2-254")
	fs.BoolVar(&o.ack, "ack", false, "subscribers connect with protocol version 2 (v=2) and acknowledge every message, as an application that must not miss one does")
	return fs
}

// Usage writes the help text to w.
func Usage(w io.Writer) {
	var o options
	fs := newFlagSet(&o, w)
	fmt.Fprint(w, usageHead)
	fs.PrintDefaults()
}

// Run is "pushlane bench": args[0] is the mode (conns, unicast or broadcast), the rest are flags.
// It prints a human summary to stdout, then one JSON line with every figure, and returns the
// exit code (0 clean, 1 failures or timeout, 2 usage). It never calls os.Exit.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "pushlane bench: missing mode: conns, unicast or broadcast (pushlane bench -h for help)")
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		Usage(stdout)
		return exitOK
	}
	o := options{mode: args[0]}
	fs := newFlagSet(&o, stderr)
	fs.Usage = func() {} // -h is answered below on stdout; a bad flag is named on stderr by flag
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(stdout)
			return exitOK
		}
		fmt.Fprintln(stderr, "pushlane bench: see pushlane bench -h")
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pushlane bench: unexpected argument %q (flags go after the mode)\n", fs.Arg(0))
		return exitUsage
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, "pushlane bench:", err)
		return exitUsage
	}
	tgt, err := newTarget(o.server, o.allowRemote, o.spreadSource)
	if err != nil {
		fmt.Fprintln(stderr, "pushlane bench:", err)
		return exitUsage
	}
	if o.publishTo != "" {
		pub, err := newTarget(o.publishTo, o.allowRemote, false)
		if err != nil {
			fmt.Fprintln(stderr, "pushlane bench: --publish-server:", strings.TrimPrefix(err.Error(), "--server "))
			return exitUsage
		}
		tgt.publishBase = pub.httpBase
	}
	if o.pid > 0 {
		if _, err := readProc(o.pid); err != nil {
			fmt.Fprintf(stderr, "pushlane bench: --pid %d: %v\n", o.pid, err)
			return exitUsage
		}
	}
	if o.run == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		o.run = hex.EncodeToString(b[:])
	}
	if w := fdWarning(o.conns); w != "" {
		fmt.Fprintln(stderr, "pushlane bench: warning:", w)
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	b, err := newBench(o, tgt, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "pushlane bench:", err)
		return exitUsage
	}
	rep := b.run(ctx)
	printReport(stdout, rep)
	if rep.OK {
		return exitOK
	}
	return exitFailed
}

func (o *options) validate() error {
	switch o.mode {
	case modeConns, modeUnicast, modeBroadcast:
	default:
		return fmt.Errorf("unknown mode %q: want conns, unicast or broadcast", o.mode)
	}
	switch {
	case o.conns < 1 || o.conns > maxConns:
		return fmt.Errorf("--conns must be 1..%d", maxConns)
	case o.users < 0:
		return errors.New("--users must be >= 0")
	case o.dialConc < 1 || o.dialConc > 10000:
		return errors.New("--dial-concurrency must be 1..10000")
	case o.dialTimeout <= 0:
		return errors.New("--dial-timeout must be > 0")
	case o.hold < 0 || o.settle < 0 || o.drain < 0:
		return errors.New("--hold, --settle and --drain must be >= 0")
	case o.timeout <= 0:
		return errors.New("--timeout must be > 0")
	case o.reqTimeout <= 0:
		return errors.New("--request-timeout must be > 0")
	case o.pid < 0:
		return errors.New("--pid must be a process id")
	case o.messages < 1 || o.messages > maxMessages:
		return fmt.Errorf("--messages must be 1..%d", maxMessages)
	case o.publishers < 1 || o.publishers > maxPublishers:
		return fmt.Errorf("--publishers must be 1..%d", maxPublishers)
	case o.rate < 0:
		return errors.New("--rate must be >= 0")
	case o.broadcasts < 1 || o.broadcasts > maxBroadcasts:
		return fmt.Errorf("--broadcasts must be 1..%d", maxBroadcasts)
	case o.token != "" && o.jwtSecret != "":
		return errors.New("give --token or --jwt-secret, not both")
	}
	if o.run != "" {
		for _, r := range o.run {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:@-", r)) {
				return errors.New("--run may hold only [A-Za-z0-9._:@-]")
			}
		}
		if len(o.run) > 64 {
			return errors.New("--run is at most 64 characters")
		}
	}
	if o.users == 0 || o.users > o.conns {
		o.users = o.conns
	}
	return nil
}
