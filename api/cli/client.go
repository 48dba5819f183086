package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"pushlane/client"
)

// conn is the resolved connection settings of one Run: a client of the server with an HTTP
// client of its own (closed by close, so no idle connection outlives Run).
type conn struct {
	api   *client.Client
	http  *http.Client
	key   string
	token string
}

// newConn checks the server URL and builds the client.
func newConn(c commonFlags) (*conn, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.insecure {
		tlsConf.InsecureSkipVerify = true // --insecure: documented as for testing only
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	hc := &http.Client{Transport: tr, Timeout: c.timeout}
	api, err := client.New(c.server, client.WithAPIKey(c.key), client.WithHTTPClient(hc), client.WithUserAgent("pushlane-cli"))
	if err != nil {
		return nil, fmt.Errorf("--server: %s", strings.TrimPrefix(err.Error(), "server URL "))
	}
	return &conn{api: api, http: hc, key: c.key, token: c.token}, nil
}

// close drops the idle keep-alive connections (and their goroutines).
func (c *conn) close() { c.http.CloseIdleConnections() }

// describe is the text of a failed call: "server answered 401 Unauthorized: <reason>" for an
// answer of the server, else the error.
func describe(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("server answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
	}
	return strings.TrimPrefix(err.Error(), "pushlane: ")
}

// report prints err for a failed request and returns the exit code: 1. A 401 without a key
// gets a hint where the key goes.
func (e *runEnv) report(c *conn, err error) int {
	e.errorf("%s", describe(err))
	if errors.Is(err, client.ErrUnauthorized) && c.key == "" {
		fmt.Fprintf(e.stderr, "hint: pass the API key with --key or $%s\n", envKey)
	}
	return exitFailed
}

// writeJSON prints v as one line of JSON.
func writeJSON(w io.Writer, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client's own result types always encode
	_, _ = w.Write(buf.Bytes())
}
