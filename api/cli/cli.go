// Package cli is pushlane's command-line client: `pushlane send`, `pushlane listen` and `pushlane clients`
// talk to a running server over the routes of API.md. It keeps no package-level state: every
// call of Run builds its own HTTP client and dialer, so tests run it in-process and in parallel.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Exit codes of Run, the same as the server's: 0 success, 1 the operation failed (server error
// response, unreachable server, listener removed), 2 the command line is wrong.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// Defaults of the connection flags.
const (
	defaultServer  = "http://127.0.0.1:8080"
	defaultTimeout = 10 * time.Second
)

// Environment variables that give the connection flags their defaults.
const (
	envServer = "PUSH_SERVER"
	envKey    = "PUSH_API_KEY"
	envToken  = "PUSH_TOKEN"
)

// command is one subcommand: run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, env *runEnv, args []string) int
}

var commands = map[string]command{
	"send":    {"publish a message to users, or broadcast it", runSend},
	"listen":  {"subscribe as a user and print every message", runListen},
	"clients": {"list online users, or one user's connections", runClients},
	"webpush": {"print a new VAPID key pair for Web Push (webpush keys)", runWebPush},
}

// IsCommand reports whether name is a subcommand Run handles (send, listen, clients, webpush).
func IsCommand(name string) bool {
	_, ok := commands[name]
	return ok
}

// Run executes one client subcommand. args starts with the subcommand name, e.g.
// ["send", "--user", "U", `{"title":"hi"}`]. getenv supplies PUSH_SERVER, PUSH_API_KEY and
// PUSH_TOKEN; stdin is read by `send -` only. Run returns the exit code and never calls
// os.Exit; `listen` returns 0 when ctx ends.
func Run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		Usage(stderr)
		return exitUsage
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pushlane: unknown command %q\n\n", args[0])
		Usage(stderr)
		return exitUsage
	}
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	env := &runEnv{name: "pushlane " + args[0], getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	return cmd.run(ctx, env, args[1:])
}

// Usage prints the top-level help of the pushlane binary: serving and every subcommand.
func Usage(w io.Writer) {
	fmt.Fprint(w, `pushlane is a real-time push server and its command-line client.

Usage:
  pushlane [--config FILE]           serve (no subcommand; config.yaml when present)
  pushlane send [flags] DATA         publish a JSON message to users, or broadcast it
  pushlane listen --user U [flags]   subscribe as a user and print every message
  pushlane clients [flags] [USER]    list online users, or one user's connections
  pushlane webpush keys [--env]      print a new VAPID key pair for webpush.* (no server needed)
  pushlane bench [flags]             load test, see pushlane bench -h
  pushlane version                   print the version and commit (also --version)
  pushlane healthcheck [flags]       exit 0 when the local server's /healthz answers 200

Client flags (send, listen, clients):
`)
	printFlags(w, commonFlagSet(), commonFlagNames)
	fmt.Fprint(w, `
Examples:
  pushlane --config /etc/pushlane/config.yaml
  pushlane send --user alice '{"title":"hi"}'
  pushlane listen --user alice | jq .data
  pushlane clients

Run 'pushlane COMMAND -h' for the flags and examples of a command.
`)
}

// runEnv is what one Run call may touch.
type runEnv struct {
	name   string // "pushlane send", the prefix of every message
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// errorf prints one "pushlane CMD: ..." line to stderr.
func (e *runEnv) errorf(format string, args ...any) {
	fmt.Fprintf(e.stderr, e.name+": "+format+"\n", args...)
}

// usageError reports a wrong command line and how to get help; it returns exitUsage.
func (e *runEnv) usageError(format string, args ...any) int {
	e.errorf(format, args...)
	fmt.Fprintf(e.stderr, "Run '%s -h' for usage.\n", e.name)
	return exitUsage
}

// commonFlags are the connection flags of every subcommand.
type commonFlags struct {
	server   string
	key      string
	token    string
	timeout  time.Duration
	insecure bool
}

// commonFlagNames lists the flags register adds, in the order help shows them.
var commonFlagNames = []string{"server", "key", "token", "timeout", "insecure"}

func isCommonFlag(name string) bool {
	for _, n := range commonFlagNames {
		if n == name {
			return true
		}
	}
	return false
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "`URL` of the pushlane server (default $"+envServer+", else "+defaultServer+")")
	fs.StringVar(&c.key, "key", "", "API key, sent as Authorization: Bearer `KEY` (default $"+envKey+")")
	fs.StringVar(&c.token, "token", "", "subscriber JWT for listen, sent as ?token=`TOKEN` (default $"+envToken+")")
	fs.DurationVar(&c.timeout, "timeout", defaultTimeout, "limit of one HTTP request or WebSocket handshake, a `DURATION` (default "+defaultTimeout.String()+")")
	fs.BoolVar(&c.insecure, "insecure", false, "skip TLS certificate verification (for testing only)")
}

// fillFromEnv applies the environment defaults to flags left empty.
func (c *commonFlags) fillFromEnv(getenv func(string) string) {
	if c.server == "" {
		c.server = getenv(envServer)
	}
	if c.server == "" {
		c.server = defaultServer
	}
	if c.key == "" {
		c.key = getenv(envKey)
	}
	if c.token == "" {
		c.token = getenv(envToken)
	}
}

func commonFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("pushlane", flag.ContinueOnError)
	new(commonFlags).register(fs)
	return fs
}

// newFlagSet returns a flag set that reports errors on stderr and prints nothing by itself:
// parse decides what to show.
func newFlagSet(env *runEnv) *flag.FlagSet {
	fs := flag.NewFlagSet(env.name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {}
	return fs
}

// parse parses args with flags allowed before and after the positional arguments ("--" ends the
// flags). It returns the positional arguments, or done with the exit code when parsing ends the
// command: -h prints help (usage, then the flags, then examples) to stdout and exits 0; a bad
// flag exits 2.
func parse(env *runEnv, fs *flag.FlagSet, args []string, usage, examples string) (pos []string, code int, done bool) {
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(env.stdout, usage)
			fmt.Fprintln(env.stdout, "\nFlags:")
			var own []string
			fs.VisitAll(func(f *flag.Flag) {
				if !isCommonFlag(f.Name) {
					own = append(own, f.Name)
				}
			})
			printFlags(env.stdout, fs, own)
			fmt.Fprintln(env.stdout, "\nConnection flags:")
			printFlags(env.stdout, fs, commonFlagNames)
			fmt.Fprint(env.stdout, "\nExamples:\n"+examples)
			return nil, exitOK, true
		}
		if err != nil {
			fmt.Fprintf(env.stderr, "Run '%s -h' for usage.\n", env.name)
			return nil, exitUsage, true
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, false
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, false
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printFlags lists the named flags of fs, in that order, one per line.
func printFlags(w io.Writer, fs *flag.FlagSet, names []string) {
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		arg, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		if len(line) > 24 {
			fmt.Fprintf(w, "%s\n%26s%s\n", line, "", usage)
			continue
		}
		fmt.Fprintf(w, "%-26s%s\n", line, usage)
	}
}

// stringList is a flag that may be repeated: --user a --user b.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// optInt is an integer flag that remembers whether it was given.
type optInt struct {
	n   int
	set bool
}

func (o *optInt) String() string {
	if !o.set {
		return ""
	}
	return strconv.Itoa(o.n)
}

func (o *optInt) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return errors.New("must be a non-negative integer")
	}
	o.n, o.set = n, true
	return nil
}
