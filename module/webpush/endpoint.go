package webpush

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Resolver looks up a host's addresses; *net.Resolver is one. Tests give their own, to change
// what a name resolves to between registration and sending (DNS rebinding).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrEndpointRefused is returned when an endpoint may not be called: not https://, or a host
// that does not resolve to public addresses only, and its origin not listed in
// webpush.allowedEndpointOrigins. A subscription is attacker-controlled input: without this
// check it could make the server call 127.0.0.1:6379 or a cloud metadata address.
var ErrEndpointRefused = errors.New("push endpoint refused")

// EndpointPolicy says which push endpoints may be registered and called (API.md: only https://
// endpoints on hosts that resolve to public addresses, unless the endpoint's origin is listed).
// It is checked at registration and again when sending: the sender dials only addresses that
// Allowed accepts (see api/webpush), so a name re-pointed at a private address after its
// registration (DNS rebinding) is refused at the connection itself. Safe for concurrent use.
type EndpointPolicy struct {
	listed   map[string]struct{} // canonical origins, scheme://host:port
	resolver Resolver
	timeout  time.Duration
}

// NewEndpointPolicy compiles webpush.allowedEndpointOrigins; resolver nil means net.DefaultResolver.
// An entry that is not an http(s) origin is ignored (config validation refuses it first).
func NewEndpointPolicy(allowedOrigins []string, resolver Resolver) *EndpointPolicy {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	p := &EndpointPolicy{listed: make(map[string]struct{}), resolver: resolver, timeout: 5 * time.Second}
	for _, o := range allowedOrigins {
		if u, err := url.Parse(o); err == nil {
			if key, ok := OriginKey(u.Scheme, u.Host); ok {
				p.listed[key] = struct{}{}
			}
		}
	}
	return p
}

// OriginKey normalises an http(s) scheme and host[:port] to "scheme://host:port" in lower case,
// with the scheme's default port when none is given.
func OriginKey(scheme, hostport string) (string, bool) {
	scheme = strings.ToLower(scheme)
	def := ""
	switch scheme {
	case "http":
		def = "80"
	case "https":
		def = "443"
	default:
		return "", false
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, def
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "" || port == "" {
		return "", false
	}
	return scheme + "://" + net.JoinHostPort(host, port), true
}

// Listed reports whether the endpoint's origin is in webpush.allowedEndpointOrigins: such an
// endpoint may use http:// and any address (a private push service, a test's own).
func (p *EndpointPolicy) Listed(u *url.URL) bool {
	key, ok := OriginKey(u.Scheme, u.Host)
	if !ok {
		return false
	}
	_, listed := p.listed[key]
	return listed
}

// Resolver is the resolver the policy checks names with; the sender dials with the same.
func (p *EndpointPolicy) Resolver() Resolver { return p.resolver }

// Check is the registration check of a canonical endpoint: a listed origin passes; otherwise
// the scheme must be https and every address the host resolves to must be public (a name with
// one private address among public ones is refused: which one a connection gets is not ours to
// choose). Errors wrap ErrBadSubscription and ErrEndpointRefused.
func (p *EndpointPolicy) Check(ctx context.Context, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return fmt.Errorf("%w: endpoint is not a URL", ErrBadSubscription)
	}
	if p.Listed(u) {
		return nil
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%w: %w: endpoint must be an https:// URL (or its origin listed in webpush.allowedEndpointOrigins)", ErrBadSubscription, ErrEndpointRefused)
	}
	addrs, err := p.Lookup(ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("%w: %w: endpoint host does not resolve", ErrBadSubscription, ErrEndpointRefused)
	}
	for _, a := range addrs {
		if !PublicAddr(a) {
			return fmt.Errorf("%w: %w: endpoint host resolves to a private, loopback or otherwise non-public address", ErrBadSubscription, ErrEndpointRefused)
		}
	}
	return nil
}

// Lookup resolves host (an IP literal is its own address) within the policy's timeout.
func (p *EndpointPolicy) Lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s: no addresses", host)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// nonPublic are the ranges besides what netip's predicates cover that no public push service
// uses and that lead back into private networks: shared address space (carrier NAT), IETF
// protocol assignments, documentation and benchmarking ranges, the reserved 240/4, NAT64 (which
// maps any IPv4 address, 127.0.0.1 included), 6to4 and Teredo (which embed IPv4 addresses), and
// the IPv6 documentation range.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
}

// PublicAddr reports whether a is a public unicast address: not loopback, private (10/8,
// 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16 with the cloud metadata address,
// fe80::/10), multicast, unspecified, nor one of nonPublic. IPv4-mapped IPv6 addresses are
// judged as the IPv4 address they carry.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() ||
		a.IsMulticast() || a.IsUnspecified() || a.IsInterfaceLocalMulticast() || a.IsLinkLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
