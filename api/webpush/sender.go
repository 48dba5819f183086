// Package webpush is the HTTP side of Web Push: the Sender that makes one push request (RFC 8030)
// with github.com/SherClockHolmes/webpush-go doing the encryption (RFC 8291, aes128gcm) and the
// VAPID header (RFC 8292), on an HTTP client of its own that never follows a redirect and dials
// only addresses the endpoint policy allows. The core (module/webpush) decides what to send and
// what an answer means.
//
// What the library does, checked by this package's tests against the RFCs' own examples (see
// rfc_test.go): a fresh ECDH key pair and salt per request; one record, padded to 4096 bytes (so
// a push service cannot learn the message's length; every push service takes 4096 bytes);
// "Authorization: vapid t=<ES256 JWT>, k=<public key>" with aud the endpoint's origin, exp 12
// hours ahead, sub the subject. Its v1.4.0 prefixes every subject that does not start with
// "https:" with "mailto:", so the Sender hands it a mailto: subject without its scheme.
package webpush

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	lib "github.com/SherClockHolmes/webpush-go"

	"pushlane/module/webpush"
)

// Options configure a Sender.
type Options struct {
	PublicKey  string // webpush.vapidPublicKey
	PrivateKey string // webpush.vapidPrivateKey
	Subject    string // webpush.subject: mailto: or https:
	// Policy decides which addresses may be dialled (webpush.allowedEndpointOrigins, public
	// addresses otherwise); its resolver is the one the dialer uses.
	Policy *webpush.EndpointPolicy
	// RootCAs verifies push services' certificates; nil: the system's roots. Tests give the
	// certificate of their own push service.
	RootCAs *x509.CertPool
	// ConnectTimeout bounds the TCP connection and the TLS handshake; 10s. The request as a
	// whole is bounded by its context (module/webpush Options.RequestTimeout).
	ConnectTimeout time.Duration
	// MaxConnsPerHost bounds the connections to one push service; 16.
	MaxConnsPerHost int
}

// Sender implements module/webpush.Sender. Safe for concurrent use.
type Sender struct {
	opts       Options
	subscriber string
	client     *http.Client
	transport  *http.Transport
}

// listedKey marks a request whose endpoint origin is in webpush.allowedEndpointOrigins: its
// dial skips the public-address check.
type listedKey struct{}

// New builds a Sender.
func New(o Options) *Sender {
	if o.Policy == nil {
		o.Policy = webpush.NewEndpointPolicy(nil, nil)
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.MaxConnsPerHost <= 0 {
		o.MaxConnsPerHost = 16
	}
	s := &Sender{opts: o, subscriber: strings.TrimPrefix(o.Subject, "mailto:")}
	s.transport = &http.Transport{
		Proxy:                 nil, // a proxy would connect to addresses this package never checked
		DialContext:           s.dial,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs},
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   o.MaxConnsPerHost,
		MaxConnsPerHost:       o.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
	}
	s.client = &http.Client{
		Transport: s.transport,
		// Never follow a redirect: the Location is the push service's to choose, and it could
		// point anywhere. The 3xx itself is the answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// Close drops the idle connections.
func (s *Sender) Close() { s.transport.CloseIdleConnections() }

// dial connects to addr's host only at an address the policy allows: for an endpoint of a listed
// origin any address; otherwise it resolves the name itself and dials the public addresses it
// got, so the address connected to is the address checked (a name re-pointed at 127.0.0.1
// between the check and the connection, DNS rebinding, finds nothing to connect to). Connections
// are pooled per scheme and host:port, so a pooled connection is reused only by requests that
// took the same decision.
func (s *Sender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: s.opts.ConnectTimeout}
	if listed, _ := ctx.Value(listedKey{}).(bool); listed {
		return d.DialContext(ctx, network, addr)
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portText, err)
	}
	addrs, err := s.opts.Policy.Lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, a := range addrs {
		if !webpush.PublicAddr(a) {
			lastErr = fmt.Errorf("%w: %s resolves to the non-public address %s", webpush.ErrEndpointRefused, host, a)
			continue
		}
		conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// Send implements module/webpush.Sender.
func (s *Sender) Send(ctx context.Context, sub webpush.Subscription, payload []byte, ttl time.Duration) (webpush.Response, error) {
	u, err := url.Parse(sub.Endpoint)
	if err != nil {
		return webpush.Response{}, fmt.Errorf("%w: endpoint %q is not a URL", webpush.ErrEndpointRefused, sub.Endpoint)
	}
	switch {
	case s.opts.Policy.Listed(u):
		ctx = context.WithValue(ctx, listedKey{}, true)
	case u.Scheme != "https":
		return webpush.Response{}, fmt.Errorf("%w: %s is not https:// and its origin is not listed", webpush.ErrEndpointRefused, u.Scheme)
	}
	resp, err := lib.SendNotificationWithContext(ctx, payload,
		&lib.Subscription{Endpoint: sub.Endpoint, Keys: lib.Keys{P256dh: sub.P256dh, Auth: sub.Auth}},
		&lib.Options{
			HTTPClient:      s.client,
			Subscriber:      s.subscriber,
			TTL:             int(max(ttl, 0) / time.Second),
			Urgency:         lib.UrgencyNormal,
			VAPIDPublicKey:  s.opts.PublicKey,
			VAPIDPrivateKey: s.opts.PrivateKey,
		})
	if err != nil {
		return webpush.Response{}, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // lets the connection be reused
	out := webpush.Response{Status: resp.StatusCode}
	out.RetryAfter, out.HasRetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	return out, nil
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date (RFC 9110).
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
