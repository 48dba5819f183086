package bench

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// target is the server under test, resolved once before anything is dialed.
type target struct {
	display     string   // the --server URL as given, for the report
	httpBase    string   // scheme://host[:port][/prefix] without a trailing slash
	publishBase string   // where publishes go: httpBase, or --publish-server's
	wsURL       string   // ws(s)://host[:port][/prefix]/getPushNews
	dialAddr    string   // host:port the subscribers dial ("localhost" pinned to 127.0.0.1)
	loopback    bool     // the target is this machine
	sources     []net.IP // local addresses spread over the subscribers; nil: the kernel picks
}

// newTarget parses --server and refuses a non-loopback host unless allowRemote. It does no DNS
// look-up and opens no connection: a host name other than localhost counts as remote.
func newTarget(raw string, allowRemote, spread bool) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %v", raw, err)
	}
	var wsScheme, defPort string
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		u.Scheme, wsScheme, defPort = "http", "ws", "80"
	case "https", "wss":
		u.Scheme, wsScheme, defPort = "https", "wss", "443"
	default:
		return nil, fmt.Errorf("--server %q: want an http:// or https:// URL", raw)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("--server %q: no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--server %q: give only scheme://host[:port][/path]", raw)
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	ip := net.ParseIP(host)
	isLocalhost := strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost")
	t := &target{display: raw, loopback: isLocalhost || (ip != nil && ip.IsLoopback())}
	if !t.loopback && !allowRemote {
		return nil, errors.New("--server " + raw + " is not a loopback address: pushlane bench is meant for servers you operate; " +
			"pass --allow-remote to load a deployment of your own on another machine")
	}
	dialHost := host
	if isLocalhost {
		dialHost = "127.0.0.1"
		ip = net.IPv4(127, 0, 0, 1)
	}
	t.dialAddr = net.JoinHostPort(dialHost, port)
	prefix := strings.TrimRight(u.Path, "/")
	t.httpBase = u.Scheme + "://" + u.Host + prefix
	t.publishBase = t.httpBase
	t.wsURL = wsScheme + "://" + u.Host + prefix + "/getPushNews"
	if spread && ip != nil && ip.To4() != nil && ip.IsLoopback() && canBind(net.IPv4(127, 0, 0, 2)) {
		for i := 2; i <= 254; i++ {
			t.sources = append(t.sources, net.IPv4(127, 0, 0, byte(i)))
		}
	}
	return t, nil
}

// canBind reports whether a socket can be bound to ip (Linux routes all of 127/8 to lo; macOS
// has only 127.0.0.1 unless aliases are added).
func canBind(ip net.IP) bool {
	c, err := net.ListenPacket("udp4", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// source returns the local address of subscriber i, or nil.
func (t *target) source(i int) *net.TCPAddr {
	if len(t.sources) == 0 {
		return nil
	}
	return &net.TCPAddr{IP: t.sources[i%len(t.sources)]}
}
