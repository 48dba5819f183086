package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"pushlane/internal/vapidkey"
)

// validate checks webpush.*: the keys and the subject only when Web Push is enabled (empty is
// their default), the rest always.
func (w WebPush) validate() error {
	bad := func(key, format string, args ...any) error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if w.Delay < 0 {
		return bad("webpush.delay", "must not be negative, got %s", w.Delay)
	}
	if w.MaxPerUser < 1 || w.MaxPerUser > 1000 {
		return bad("webpush.maxPerUser", "must be between 1 and 1000, got %d", w.MaxPerUser)
	}
	for _, o := range w.AllowedEndpointOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			return bad("webpush.allowedEndpointOrigins", "%q is not an http(s) origin (scheme://host[:port])", o)
		}
	}
	if !w.Enabled {
		return nil
	}
	const generate = " (pushlane webpush keys prints a new pair)"
	switch {
	case w.VAPIDPublicKey == "":
		return bad("webpush.vapidPublicKey", "is required when webpush.enabled is true"+generate)
	case w.VAPIDPrivateKey == "":
		return bad("webpush.vapidPrivateKey", "is required when webpush.enabled is true"+generate)
	}
	switch err := vapidkey.Check(vapidkey.Pair{Public: w.VAPIDPublicKey, Private: w.VAPIDPrivateKey}); {
	case errors.Is(err, vapidkey.ErrBadPublic):
		return bad("webpush.vapidPublicKey", "%v%s", err, generate)
	case errors.Is(err, vapidkey.ErrBadPrivate):
		return bad("webpush.vapidPrivateKey", "%v%s", err, generate)
	case errors.Is(err, vapidkey.ErrMismatch):
		return bad("webpush.vapidPublicKey", "is not the public key of webpush.vapidPrivateKey"+generate)
	case err != nil:
		return bad("webpush.vapidPublicKey", "%v", err)
	}
	if !validSubject(w.Subject) {
		return bad("webpush.subject", "must be a mailto: address or an https:// URL where push services can reach the operator, got %q", w.Subject)
	}
	return nil
}

// validSubject accepts what RFC 8292 asks for the "sub" claim: a mailto: URI with an address, or
// an https: URL with a host.
func validSubject(s string) bool {
	if addr, ok := strings.CutPrefix(s, "mailto:"); ok {
		at := strings.IndexByte(addr, '@')
		return at > 0 && at < len(addr)-1 && !strings.ContainsAny(addr, " \t\r\n<>")
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != "" && !strings.ContainsAny(s, " \t\r\n")
}
