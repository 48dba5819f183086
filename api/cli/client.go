package cli

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
)

// maxResponseBytes bounds what the client reads of one HTTP response.
const maxResponseBytes = 16 << 20

// conn is the resolved connection settings of one Run: the server's base URL and an HTTP client
// of its own (closed by close, so no idle connection outlives Run).
type conn struct {
	base  *url.URL // http or https, no trailing slash, no query
	key   string
	token string
	tls   *tls.Config
	http  *http.Client
}

// newConn checks the server URL and builds the HTTP client.
func newConn(c commonFlags) (*conn, error) {
	base, err := parseServer(c.server)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.insecure {
		tlsConf.InsecureSkipVerify = true // --insecure: documented as for testing only
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	return &conn{
		base:  base,
		key:   c.key,
		token: c.token,
		tls:   tlsConf,
		http:  &http.Client{Transport: tr, Timeout: c.timeout},
	}, nil
}

// close drops the idle keep-alive connections (and their goroutines).
func (c *conn) close() { c.http.CloseIdleConnections() }

// parseServer accepts http(s)://host[:port][/prefix], ws(s):// (mapped to http(s)) and a bare
// host:port (http).
func parseServer(s string) (*url.URL, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--server %q is not a URL: %w", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		u.Scheme = "http"
	case "https", "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("--server %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("--server %q has no host", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u, nil
}

// endpoint is the URL of path (which starts with "/") under the server's base.
func (c *conn) endpoint(path string, query url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	return u.String()
}

// apiError is a response with a status other than 200: the status and the server's reason.
type apiError struct {
	status int
	reason string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.status, http.StatusText(e.status), e.reason)
}

// do sends one request to the server and returns the body of a 200 response; any other status
// is an *apiError carrying the {"error"} text of the body.
func (c *conn) do(ctx context.Context, method, path string, query url.Values, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, query), r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the response: %w", method, req.URL.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &apiError{status: resp.StatusCode, reason: errorReason(b)}
	}
	return b, nil
}

// errorReason is the text of an {"error": "..."} body, or the body itself (shortened) when it
// has another shape (a proxy's HTML page, say).
func errorReason(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}

// report prints err for a failed request and returns the exit code: 1. A 401 without a key
// gets a hint where the key goes.
func (e *runEnv) report(c *conn, err error) int {
	e.errorf("%v", err)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusUnauthorized && c.key == "" {
		fmt.Fprintf(e.stderr, "hint: pass the API key with --key or $%s\n", envKey)
	}
	return exitFailed
}

// writeRaw prints a JSON response as received, ending with one newline.
func writeRaw(w io.Writer, b []byte) {
	b = bytes.TrimRight(b, " \t\r\n")
	_, _ = w.Write(append(b, '\n'))
}
