// Package webpush is the core of Web Push to closed tabs (API.md "Web Push to closed tabs", RFC 8030,
// 8291, 8292): browser push subscriptions per user, the pushes that come due when a message stays
// in a user's unread queue for webpush.delay, and what each push service answer means. It knows
// no HTTP: the request itself (encryption, VAPID, the safe dialer) is a Sender, implemented in
// api/webpush. Subscriptions and due pushes live in the message store (Store), so they survive
// restarts and every node of a cluster shares them.
package webpush

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"pushlane/internal/vapidkey"
)

// Subscription is one browser push subscription of a user. Keys are kept base64url without
// padding, as Parse normalises them; the endpoint is kept in its canonical form.
type Subscription struct {
	ID        string // random, 22 characters of base64url; unique in the store
	UserID    string
	Endpoint  string // absolute https:// URL (or one of an allowed origin)
	P256dh    string // the browser's ECDH public key: an uncompressed P-256 point
	Auth      string // the 16-byte authentication secret
	CreatedAt time.Time
}

// Origin is the endpoint's origin, scheme://host[:port]: what GET /webpush/subscriptions shows
// instead of the endpoint, which is a capability URL.
func (s Subscription) Origin() string {
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// ErrBadSubscription is returned by ParseSubscription and by EndpointPolicy.Check: the API answers 400.
var ErrBadSubscription = errors.New("malformed push subscription")

// maxEndpointBytes bounds an endpoint URL; real ones are a few hundred bytes.
const maxEndpointBytes = 2048

// pushSubscriptionJSON is the browser's PushSubscription.toJSON(); other fields are ignored.
type pushSubscriptionJSON struct {
	Endpoint *string `json:"endpoint"`
	Keys     *struct {
		P256dh *string `json:"p256dh"`
		Auth   *string `json:"auth"`
	} `json:"keys"`
}

// ParseSubscription reads a PushSubscription JSON body for userID: endpoint an absolute http(s)
// URL without user info or fragment (whether it may be called is EndpointPolicy's to say), p256dh
// an uncompressed P-256 point, auth 16 bytes. Every error wraps ErrBadSubscription and names the
// field.
func ParseSubscription(userID string, body []byte) (Subscription, error) {
	var in pushSubscriptionJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		return Subscription{}, fmt.Errorf("%w: body is not a JSON object", ErrBadSubscription)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Subscription{}, fmt.Errorf("%w: data after the JSON object", ErrBadSubscription)
	}
	if in.Endpoint == nil || in.Keys == nil || in.Keys.P256dh == nil || in.Keys.Auth == nil {
		return Subscription{}, fmt.Errorf("%w: endpoint, keys.p256dh and keys.auth are required", ErrBadSubscription)
	}
	endpoint, err := CanonicalEndpoint(*in.Endpoint)
	if err != nil {
		return Subscription{}, err
	}
	p256dh, err := vapidkey.ParsePublic(*in.Keys.P256dh)
	if err != nil {
		return Subscription{}, fmt.Errorf("%w: keys.p256dh is not a base64url uncompressed P-256 point", ErrBadSubscription)
	}
	auth, err := vapidkey.Decode(*in.Keys.Auth)
	if err != nil || len(auth) != 16 {
		return Subscription{}, fmt.Errorf("%w: keys.auth is not 16 bytes of base64url", ErrBadSubscription)
	}
	return Subscription{
		UserID:   userID,
		Endpoint: endpoint,
		P256dh:   base64.RawURLEncoding.EncodeToString(p256dh.Bytes()),
		Auth:     base64.RawURLEncoding.EncodeToString(auth),
	}, nil
}

// CanonicalEndpoint checks an endpoint's syntax and returns its canonical form: lower-case
// scheme and host, no default port (so the VAPID audience, scheme://host[:port], is the origin
// as push services serialise it), no fragment.
func CanonicalEndpoint(raw string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: endpoint %s", ErrBadSubscription, why)
	}
	if raw == "" || len(raw) > maxEndpointBytes {
		return bad(fmt.Sprintf("must be 1 to %d bytes", maxEndpointBytes))
	}
	for _, r := range raw {
		if r <= ' ' || r == 0x7f {
			return bad("contains a space or a control character")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("is not a URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("must be an https:// URL")
	case u.Opaque != "" || u.Host == "":
		return bad("must be an absolute URL with a host")
	case u.User != nil:
		return bad("must not carry user information")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return bad("must not have a fragment")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return bad("must name a host")
	}
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	u.Host = joinHost(host, port)
	return u.String(), nil
}

// joinHost writes host[:port], bracketing IPv6 literals.
func joinHost(host, port string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" {
		return host
	}
	return host + ":" + port
}
