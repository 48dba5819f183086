package webpushtest

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Browser is one browser's push subscription: the key pair and auth secret the browser keeps,
// and the endpoint the push service gave it.
type Browser struct {
	Name     string
	Endpoint string
	Private  *ecdh.PrivateKey
	Auth     []byte
}

// SubscriptionJSON is what PushSubscription.toJSON() gives the page, to register.
func (b *Browser) SubscriptionJSON() string {
	return fmt.Sprintf(`{"endpoint":%q,"expirationTime":null,"keys":{"p256dh":%q,"auth":%q}}`, b.Endpoint,
		base64.RawURLEncoding.EncodeToString(b.Private.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(b.Auth))
}

// Answer is how the push service answers one request.
type Answer struct {
	Status     int    // 0: 201
	RetryAfter string // the Retry-After header, when set
	Location   string // the Location header (for a redirect)
	Hang       bool   // no answer until the service closes
}

// Push is one request the service received, checked.
type Push struct {
	Browser   string // which subscription it was sent to
	At        time.Time
	Plaintext []byte
	Derived   Derived
	Header    http.Header
	Claims    Claims
	Problems  []string // every way the request differs from RFC 8030/8291/8292; empty for a good one
	Status    int      // what the service answered (0: no answer)
}

// Claims are the VAPID JWT's claims.
type Claims struct {
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Sub string `json:"sub"`
}

// Service is the push service. Safe for concurrent use.
type Service struct {
	t         testing.TB
	srv       *httptest.Server
	vapidKey  string // the server's VAPID public key every request must carry
	subject   string // the expected sub claim
	now       func() time.Time
	mu        sync.Mutex
	browsers  map[string]*Browser
	answers   map[string][]Answer // per browser, consumed in order; then 201
	pushes    []Push
	received  chan struct{} // signalled on every push
	hang      chan struct{} // closed by Close: hanging requests return
	hangOnce  sync.Once
	redirects int // requests that reached /moved (never, when redirects are not followed)
}

// Options of a Service.
type Options struct {
	VAPIDPublicKey string           // the key the server signs with
	Subject        string           // the expected "sub" claim
	TLS            bool             // serve https (the test then trusts Certificate())
	Now            func() time.Time // the clock Push.At is read from; time.Now
}

// New starts a push service on 127.0.0.1; it stops when the test ends.
func New(t testing.TB, o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{t: t, vapidKey: o.VAPIDPublicKey, subject: o.Subject, now: o.Now,
		browsers: map[string]*Browser{}, answers: map[string][]Answer{},
		received: make(chan struct{}, 1), hang: make(chan struct{})}
	h := http.HandlerFunc(s.serve)
	if o.TLS {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// Close releases hanging requests and stops the service.
func (s *Service) Close() {
	s.hangOnce.Do(func() { close(s.hang) })
	s.srv.Close()
}

// URL is the service's origin (scheme://127.0.0.1:port).
func (s *Service) URL() string { return s.srv.URL }

// Server is the underlying test server (its Certificate, for TLS).
func (s *Service) Server() *httptest.Server { return s.srv }

// Browser makes a new subscription named name at this service.
func (s *Service) Browser(name string) *Browser {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	b := &Browser{Name: name, Endpoint: s.srv.URL + "/push/" + name, Private: k, Auth: auth}
	s.mu.Lock()
	s.browsers[name] = b
	s.mu.Unlock()
	return b
}

// Answer queues answers for the next requests to the browser's endpoint; once used up, 201.
func (s *Service) Answer(browser string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[browser] = append(s.answers[browser], answers...)
}

// Pushes returns every request received so far.
func (s *Service) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes...)
}

// Redirected counts requests that followed a redirect to /moved.
func (s *Service) Redirected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.redirects
}

// WaitPushes waits until at least n requests were received, and returns them all.
func (s *Service) WaitPushes(t testing.TB, n int, timeout time.Duration) []Push {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if p := s.Pushes(); len(p) >= n {
			return p
		}
		select {
		case <-s.received:
		case <-deadline.C:
			t.Fatalf("push service: %d requests after %v, want %d", len(s.Pushes()), timeout, n)
		}
	}
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/moved" {
		s.mu.Lock()
		s.redirects++
		s.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/push/")
	s.mu.Lock()
	b := s.browsers[name]
	var a Answer
	if q := s.answers[name]; len(q) > 0 {
		a, s.answers[name] = q[0], q[1:]
	}
	s.mu.Unlock()
	if !ok || b == nil {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	p := s.check(r, b, body)
	if a.Status == 0 {
		a.Status = http.StatusCreated
	}
	if !a.Hang {
		p.Status = a.Status
	}
	s.mu.Lock()
	s.pushes = append(s.pushes, p)
	s.mu.Unlock()
	select {
	case s.received <- struct{}{}:
	default:
	}
	if a.Hang {
		<-s.hang
		return
	}
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	if a.Location != "" {
		w.Header().Set("Location", a.Location)
	}
	w.WriteHeader(a.Status)
}

// check reads one request as a push service would and lists what is wrong with it.
func (s *Service) check(r *http.Request, b *Browser, body []byte) Push {
	p := Push{Browser: b.Name, At: s.now(), Header: r.Header.Clone()}
	bad := func(format string, args ...any) { p.Problems = append(p.Problems, fmt.Sprintf(format, args...)) }
	if r.Method != http.MethodPost {
		bad("method %s, want POST", r.Method)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		bad("Content-Encoding %q, want aes128gcm", ce)
	}
	if ttl, err := strconv.Atoi(r.Header.Get("TTL")); err != nil || ttl < 0 {
		bad("TTL %q is not a number of seconds", r.Header.Get("TTL"))
	}
	if u := r.Header.Get("Urgency"); u != "normal" {
		bad("Urgency %q, want normal", u)
	}
	if len(body) > 4096 {
		bad("body of %d bytes; push services take at most 4096", len(body))
	}
	plain, derived, err := Decrypt(body, b.Private, b.Auth)
	if err != nil {
		bad("decrypt: %v", err)
	}
	p.Plaintext, p.Derived = plain, derived
	claims, err := s.verifyVAPID(r.Header.Get("Authorization"))
	if err != nil {
		bad("vapid: %v", err)
	}
	p.Claims = claims
	now := time.Now()
	switch {
	case claims.Aud != s.srv.URL:
		bad("aud %q, want the endpoint's origin %q", claims.Aud, s.srv.URL)
	case claims.Exp <= now.Unix():
		bad("exp %d is not in the future", claims.Exp)
	case claims.Exp > now.Add(12*time.Hour).Unix():
		bad("exp %d is more than 12 hours ahead", claims.Exp)
	case claims.Sub != s.subject:
		bad("sub %q, want %q", claims.Sub, s.subject)
	}
	return p
}

// verifyVAPID checks "vapid t=<JWT>, k=<key>" (RFC 8292 section 3): k is the server's key, the
// JWT's header says ES256, and its signature (r||s, RFC 7518) verifies under k.
func (s *Service) verifyVAPID(h string) (Claims, error) {
	var c Claims
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return c, fmt.Errorf("authorization %q is not the vapid scheme", h)
	}
	params := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return c, fmt.Errorf("parameter %q", part)
		}
		params[k] = v
	}
	if params["k"] != s.vapidKey {
		return c, fmt.Errorf("k=%q, want the server's public key %q", params["k"], s.vapidKey)
	}
	return VerifyJWT(params["t"], params["k"])
}

// VerifyJWT verifies an ES256 JWT against a base64url uncompressed P-256 public key and returns
// its claims.
func VerifyJWT(token, key string) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, fmt.Errorf("JWT of %d parts", len(parts))
	}
	head, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	body, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	raw, err4 := base64.RawURLEncoding.DecodeString(key)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return c, fmt.Errorf("base64url: %w", err)
	}
	var hdr struct{ Alg, Typ string }
	if err := json.Unmarshal(head, &hdr); err != nil || hdr.Alg != "ES256" {
		return c, fmt.Errorf("JWT header %s: want alg ES256", head)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return c, fmt.Errorf("k: %w", err)
	}
	if len(sig) != 64 {
		return c, fmt.Errorf("signature of %d bytes, want 64 (r||s)", len(sig))
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return c, errors.New("signature does not verify under k")
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, fmt.Errorf("claims %s: %w", body, err)
	}
	return c, nil
}
