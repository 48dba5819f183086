// Command pushlane is a real-time push server: backend services POST a notification for a user and
// every WebSocket connection of that user receives it at once, or on its next connect.
//
//	pushlane [--config FILE]          serve (the default; also `go run .`)
//	pushlane send|listen|clients ...  client commands against a running server
//	pushlane bench conns|unicast|broadcast ...  load test a server you operate
//	pushlane version                  version and commit (also --version)
//	pushlane healthcheck              exit 0 when the local server's /healthz answers 200
//	pushlane -h                       help
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"pushlane/api/bench"
	"pushlane/api/cli"
	"pushlane/api/server"
	"pushlane/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes of run.
const (
	exitOK     = 0
	exitFailed = 1
	exitConfig = 2
)

// run is the whole program. It returns the exit code and never calls os.Exit, so tests run it
// in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch name := args[0]; {
		case cli.IsCommand(name):
			return cli.Run(ctx, args, getenv, stdin, stdout, stderr)
		case name == "bench":
			return bench.Run(ctx, args[1:], stdout, stderr)
		case name == "version" || name == "--version" || name == "-version":
			return printVersion(stdout)
		case name == "healthcheck":
			return healthcheck(ctx, args[1:], getenv, stdout, stderr)
		case name == "help" || name == "-h" || name == "--help" || name == "-help":
			cli.Usage(stdout)
			return exitOK
		case name == "serve":
			args = args[1:]
		}
	}
	return serve(ctx, args, getenv, stdout, stderr)
}

// serve loads the configuration and serves until ctx ends.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pushlane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { cli.Usage(stderr) }
	configPath := fs.String("config", "", "config file (default "+config.DefaultPath+" when present)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pushlane: unknown command %q (see pushlane -h)\n", fs.Arg(0))
		return exitConfig
	}
	loaded, err := config.Load(*configPath, getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	log := newLogger(loaded.Config.Log, stderr)
	if err := server.Serve(ctx, loaded.Config, log, stdout); err != nil {
		// A value that only fails when used (a store.path that cannot be written) is a
		// configuration error too: one line naming the key, exit 2.
		var cfgErr *config.Error
		if errors.As(err, &cfgErr) {
			fmt.Fprintln(stderr, cfgErr)
			return exitConfig
		}
		log.Error("pushlane stopped", "err", err)
		return exitFailed
	}
	return exitOK
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
