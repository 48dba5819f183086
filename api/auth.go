package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
)

// APIKeys checks publisher credentials. Keys are kept as SHA-256 digests and compared in
// constant time, all of them every time, so neither the length nor the position of a matching
// key leaks through timing. Safe for concurrent use (read-only).
type APIKeys struct {
	digests [][sha256.Size]byte
}

// NewAPIKeys compiles the configured keys; none means the routes are open.
func NewAPIKeys(keys []string) *APIKeys {
	a := &APIKeys{}
	for _, k := range keys {
		a.digests = append(a.digests, sha256.Sum256([]byte(k)))
	}
	return a
}

// Enabled reports whether keys are required.
func (a *APIKeys) Enabled() bool { return len(a.digests) > 0 }

// Match reports whether key is one of the configured keys.
func (a *APIKeys) Match(key string) bool {
	d := sha256.Sum256([]byte(key))
	found := 0
	for i := range a.digests {
		found |= subtle.ConstantTimeCompare(d[:], a.digests[i][:])
	}
	return found == 1
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// requireAPIKey guards publish and ops routes when auth.apiKeys is set: 401 otherwise. The
// matched key's digest is kept on the context as the rate-limit identity.
func (h *Handlers) requireAPIKey(c *gin.Context) {
	if !h.keys.Enabled() {
		c.Next()
		return
	}
	key, ok := bearer(c.Request)
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="pushlane"`)
		failWith(c, errMissingAPIKey)
		return
	}
	if !h.keys.Match(key) {
		c.Header("WWW-Authenticate", `Bearer realm="pushlane", error="invalid_token"`)
		failWith(c, errBadAPIKey)
		return
	}
	sum := sha256.Sum256([]byte(key))
	c.Set(ctxClientKey, fmt.Sprintf("key:%x", sum[:8]))
	c.Set(ctxKeyScope, hex.EncodeToString(sum[:16]))
	c.Next()
}

// requireKeyForDemos applies requireAPIKey to the demonstration routes, accepting the key from
// the key query parameter as well (a browser WebSocket cannot send an Authorization header).
func (h *Handlers) requireKeyForDemos(c *gin.Context) {
	if !h.keys.Enabled() {
		c.Next()
		return
	}
	if _, ok := bearer(c.Request); !ok {
		if key := c.Query("key"); key != "" {
			c.Request.Header.Set("Authorization", "Bearer "+key)
		}
	}
	h.requireAPIKey(c)
}

// Context keys set by requireAPIKey.
const (
	// ctxClientKey names who a request is, for rate limiting: an API key digest or the client IP.
	ctxClientKey = "pushlane.client"
	// ctxKeyScope is the scope of Idempotency-Keys: a digest of the API key that was matched
	// (128 bits of SHA-256, so two keys never share a scope); unset when keys are off.
	ctxKeyScope = "pushlane.keyScope"
)

// Token errors; all of them answer 401 before the upgrade.
var (
	ErrTokenMissing = errors.New("token is required (auth.jwtSecret is set)")
	ErrTokenInvalid = errors.New("token is not a valid HS256 JWT signed with this server's secret")
	ErrTokenSubject = errors.New("token sub does not match userId")
	ErrTokenExpired = errors.New("token has expired")
)

// TokenVerifier checks subscriber tokens: HS256 only (alg "none" and every other algorithm are
// refused), exp required and in the future, sub equal to the userId. Safe for concurrent use.
type TokenVerifier struct {
	secret []byte
	parser *jwt.Parser
	now    func() time.Time
}

// NewTokenVerifier returns a verifier for the secret; an empty secret means no tokens needed.
func NewTokenVerifier(secret string) *TokenVerifier {
	v := &TokenVerifier{secret: []byte(secret), now: time.Now}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	return v
}

// Enabled reports whether subscribers need a token.
func (v *TokenVerifier) Enabled() bool { return len(v.secret) > 0 }

// Verify checks token for userID and returns its expiry.
func (v *TokenVerifier) Verify(token, userID string) (time.Time, error) {
	if token == "" {
		return time.Time{}, ErrTokenMissing
	}
	if len(token) > 8192 {
		return time.Time{}, ErrTokenInvalid
	}
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, ErrTokenInvalid
		}
		return v.secret, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return time.Time{}, ErrTokenExpired
	case err != nil:
		return time.Time{}, ErrTokenInvalid
	}
	if claims.Subject != userID {
		return time.Time{}, ErrTokenSubject
	}
	if claims.ExpiresAt == nil {
		return time.Time{}, ErrTokenInvalid
	}
	return claims.ExpiresAt.Time, nil
}

// demosOff answers the demonstration routes while demo.enabled is false.
func demosOff(c *gin.Context) {
	fail(c, http.StatusNotFound, "the demonstration routes are off (set demo.enabled: true to serve /echo, /chat and /tail)")
}
