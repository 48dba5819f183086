package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"pushlane/config"
)

const healthcheckUsage = `Usage:
  pushlane healthcheck [--config FILE] [--url URL] [--timeout DURATION]

Asks the local server's GET /healthz and exits 0 when it answers 200, 1 otherwise (printing the
status and body on stderr). Without --url it reads the configuration as the server does (the
config file and PUSH_* variables) and asks server.addr on the loopback interface, over HTTPS
when server.tls is set (without verifying the certificate: it is issued for the public name).
It exists for container health checks in images that have no shell, curl or wget:

  HEALTHCHECK CMD ["/pushlane", "healthcheck"]

Flags:
`

// healthcheck is `pushlane healthcheck`.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pushlane healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default "+config.DefaultPath+" when present)")
	rawURL := fs.String("url", "", "health `URL` to ask instead of the one server.addr gives")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this `DURATION`")
	fs.Usage = func() {
		fmt.Fprint(stdout, healthcheckUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pushlane healthcheck: unexpected argument %q\n", fs.Arg(0))
		return exitConfig
	}
	target := *rawURL
	tlsOn := strings.HasPrefix(target, "https://")
	if target == "" {
		loaded, err := config.Load(*configPath, getenv)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitConfig
		}
		target, err = healthURL(loaded.Config.Server)
		if err != nil {
			fmt.Fprintf(stderr, "pushlane healthcheck: %v\n", err)
			return exitConfig
		}
		tlsOn = loaded.Config.Server.TLS.Enabled()
	}
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if tlsOn {
		// A loopback probe of our own listener: the certificate names the public host.
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true} //nolint:gosec // see above
	}
	client := &http.Client{Transport: tr, Timeout: *timeout}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "pushlane healthcheck: %v\n", err)
		return exitConfig
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "pushlane healthcheck: %v\n", err)
		return exitFailed
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	line := fmt.Sprintf("%s %d %s", target, resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "pushlane healthcheck: "+line)
		return exitFailed
	}
	fmt.Fprintln(stdout, line)
	return exitOK
}

// healthURL is the /healthz URL of a server listening on s.Addr, seen from the same machine: an
// unspecified or empty host (":8080", "0.0.0.0:8080", "[::]:8080") is asked on 127.0.0.1.
func healthURL(s config.Server) (string, error) {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return "", fmt.Errorf("server.addr %q: %w", s.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if s.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/healthz", nil
}
