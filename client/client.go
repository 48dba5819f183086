// Package client is the Go client of a pushlane server, for backends and tools: publish
// messages to users (with an automatic Idempotency-Key and bounded retries), broadcast,
// disconnect users, list who is online, ask for a message's delivery status, and subscribe as a
// user with resume, reconnection and acknowledgements.
//
// Every method maps to one route of the HTTP API (docs/api.md in the pushlane repository). A
// Client is safe for concurrent use; make one per server and reuse it.
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithAPIKey(os.Getenv("PUSH_API_KEY")))
//	res, err := c.Publish(ctx, "alice", map[string]string{"title": "hi"})
//	fmt.Println(res.ID, res.Online)
//
// Errors from the server are *Error values that carry the status and the server's reason, and
// match one sentinel per documented status with errors.Is (ErrBadRequest, ErrUnauthorized,
// ErrForbidden, ErrNotFound, ErrConflict, ErrTooLarge, ErrUnprocessable, ErrTooManyRequests,
// ErrUnavailable).
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes bounds what the client reads of one response.
const maxResponseBytes = 16 << 20

// Client talks to one pushlane server. It is safe for concurrent use.
type Client struct {
	base      *url.URL // http or https, no trailing slash, no query
	apiKey    string
	http      *http.Client
	retry     Backoff
	attempts  int
	userAgent string
	newKey    func() string
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as "Authorization: Bearer KEY" (the server's auth.apiKeys).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithHTTPClient uses h for every request and WebSocket handshake (its Transport's TLS
// configuration and proxy are used for subscriptions too). The default is a client of its own
// with a 10-second timeout per request.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many times a safe request is sent at most (default 4: the first attempt
// and 3 retries) and the backoff between attempts (default 100ms doubling to 2s, with jitter).
// Retried: publishes (always with the same Idempotency-Key, so the server stores a message at
// most once) and reads, after a network error, 503, or 409 (our own earlier attempt under the
// same key is still being processed). Broadcast and Kick are sent once. attempts < 1 means 1.
func WithRetries(attempts int, backoff Backoff) Option {
	return func(c *Client) {
		c.attempts = max(1, attempts)
		c.retry = backoff
	}
}

// WithUserAgent sets the User-Agent header (default "pushlane-go-client").
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the server at serverURL: "http(s)://host[:port][/prefix]", a
// "ws(s)://" URL (same server), or a bare "host:port" (http).
func New(serverURL string, opts ...Option) (*Client, error) {
	base, err := ParseServerURL(serverURL)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:      base,
		http:      &http.Client{Timeout: 10 * time.Second},
		retry:     Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second},
		attempts:  4,
		userAgent: "pushlane-go-client",
		newKey:    NewIdempotencyKey,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ParseServerURL accepts http(s)://host[:port][/prefix], ws(s):// (mapped to http(s)) and a bare
// host:port (http), and returns the base URL the client uses: no trailing slash, no query.
func ParseServerURL(s string) (*url.URL, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("server URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q has no host", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u, nil
}

// BaseURL is the server's base URL as the client uses it.
func (c *Client) BaseURL() string { return c.base.String() }

// CloseIdleConnections closes the keep-alive connections of the client's HTTP transport.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// endpoint is the URL of path (which starts with "/") under the server's base.
func (c *Client) endpoint(path string, query url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	return u.String()
}

// request is one API call.
type request struct {
	method string
	path   string // escaped where it holds user input
	query  url.Values
	body   []byte
	header http.Header
	retry  bool // send again after a network error, 503 or 409
}

// response is a 2xx answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r, retrying as r.retry allows, and returns the 2xx response or an error: *Error for
// an answer with another status, else the transport error of the last attempt.
func (c *Client) do(ctx context.Context, r request) (*response, error) {
	attempts := 1
	if r.retry {
		attempts = c.attempts
	}
	var lastErr error
	for attempt := range attempts {
		if attempt > 0 {
			if err := sleep(ctx, c.retry.Delay(attempt-1)); err != nil {
				return nil, fmt.Errorf("%w (after: %w)", err, lastErr)
			}
		}
		resp, err := c.once(ctx, r)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
	}
	return nil, lastErr
}

// retryable: a network error, 503, or 409 (an earlier attempt with the same key still runs). A
// certificate that does not verify will not verify on the next attempt either.
func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusConflict
	}
	var certErr *tls.CertificateVerificationError
	return !errors.As(err, &certErr)
}

func (c *Client) once(ctx context.Context, r request) (*response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, c.endpoint(r.path, r.query), body)
	if err != nil {
		return nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the response: %w", r.method, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, newError(r.method, r.path, resp, b)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// getJSON sends a GET (retried) and decodes the 200 body into out.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, out any) error {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, query: query, retry: true})
	if err != nil {
		return err
	}
	return decode(resp.body, out)
}

func decode(b []byte, out any) error {
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("unexpected response %.200q: %w", b, err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
