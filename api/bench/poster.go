package bench

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"pushlane/client"
)

// poster sends the publishes. It uses fasthttp rather than net/http because the load generator
// shares the machine with the server it measures: net/http's client hands every request to two
// goroutines of the connection (a writer and a reader) and back, which made it cost about as
// much CPU per message as the server; fasthttp writes and reads on the caller's goroutine and
// reuses its buffers.
type poster struct {
	client  *fasthttp.Client
	base    string
	auth    string // Authorization header value, empty when no --key
	timeout time.Duration
}

func newPoster(o options, base string) *poster {
	p := &poster{
		client: &fasthttp.Client{
			MaxConnsPerHost:               2 * o.publishers,
			MaxIdleConnDuration:           90 * time.Second,
			ReadTimeout:                   o.reqTimeout,
			WriteTimeout:                  o.reqTimeout,
			MaxResponseBodySize:           1 << 20,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			DisablePathNormalizing:        true,
			Dial: func(addr string) (net.Conn, error) {
				return net.DialTimeout("tcp", addr, o.dialTimeout)
			},
		},
		base:    base,
		timeout: o.reqTimeout,
	}
	if o.insecure {
		p.client.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	if o.key != "" {
		p.auth = "Bearer " + o.key
	}
	return p
}

// post sends body to path and returns the status and (when keep) up to 64 KB of the answer. A
// request in flight when ctx ends still runs to its answer or --request-timeout; on loopback
// that is milliseconds.
func (p *poster) post(ctx context.Context, path string, body []byte, keep bool) (int, []byte, error) {
	limit := 0
	if keep {
		limit = 64 << 10
	}
	return p.do(ctx, fasthttp.MethodPost, p.base+path, body, limit)
}

// get fetches uri (a whole URL) and returns the status and up to 1 MB of the answer.
func (p *poster) get(ctx context.Context, uri string) (int, []byte, error) {
	return p.do(ctx, fasthttp.MethodGet, uri, nil, 1<<20)
}

func (p *poster) do(ctx context.Context, method, uri string, body []byte, limit int) (int, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer func() {
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}()
	req.SetRequestURI(uri)
	req.Header.SetMethod(method)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if p.auth != "" {
		req.Header.Set("Authorization", p.auth)
	}
	if err := p.client.DoTimeout(req, resp, p.timeout); err != nil {
		return 0, nil, err
	}
	var out []byte
	if limit > 0 {
		b := resp.Body()
		out = append(out, b[:min(len(b), limit)]...)
	}
	return resp.StatusCode(), out, nil
}

func (p *poster) close() { p.client.CloseIdleConnections() }

// newAPIClient is the pushlane client of the routes off the hot path (broadcast), with the
// run's key, TLS setting and request timeout.
func newAPIClient(o options, base string) (*client.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for with --insecure
	}
	return client.New(base, client.WithAPIKey(o.key), client.WithUserAgent("pushlane-bench"),
		client.WithHTTPClient(&http.Client{Transport: tr, Timeout: o.reqTimeout}), client.WithRetries(1, client.Backoff{}))
}
