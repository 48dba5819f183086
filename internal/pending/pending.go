// Package pending names the features of the HTTP contract (docs/api.md) that are being built on
// other branches while this one is written, and tells tests whether the server in front of them
// has each one yet. Only tests import it.
//
// A test of such a feature calls Require: when the server implements the feature, the test runs
// (and can fail); when it does not, the test is skipped with the feature's name, but only while
// the feature is listed in Expected. A feature that is missing and not listed fails the test:
// once a feature has landed, delete it from Expected and a regression can no longer hide behind
// a skip.
package pending

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Feature is one part of the contract a server may not implement yet.
type Feature string

// The features of this turn, each with the branch that builds it.
const (
	MessageStatus Feature = "GET /messages/:userId[/:id] (message status; harden branch)"
	Idempotency   Feature = "Idempotency-Key on POST /pushNews (replay, 409, 422; store + harden branches)"
	Protocol2     Feature = "protocol version 2 on /getPushNews (hello, acks, epoch; core branch)"
	SSE           Feature = "Server-Sent Events on /getPushNews (core branch)"
	CrossSite     Feature = "403 for POST/DELETE with a foreign Origin (harden branch)"
	HealthHEAD    Feature = "HEAD /healthz (harden branch)"
	DemoSwitch    Feature = "demo.enabled: /echo, /chat, /tail answer 404 when off (harden branch)"
	WebPush       Feature = "/webpush/... routes (webpush branch)"
)

// Expected lists the features this commit expects to be missing. Remove a feature once it has
// landed on main.
func Expected() []Feature {
	return nil
}

func expected(f Feature) bool {
	for _, e := range Expected() {
		if e == f {
			return true
		}
	}
	return false
}

// Require skips t when the server at base (http://host:port) lacks f and f is expected to be
// missing; it fails t when f is missing and not expected. The probe sends real requests (a
// publish to the user "pending-probe" for Idempotency and Protocol2, a broadcast for CrossSite).
func Require(t testing.TB, base string, f Feature) {
	t.Helper()
	has, err := Has(base, f)
	if err != nil {
		t.Fatalf("probing %s: %v", f, err)
	}
	switch {
	case has && expected(f):
		t.Logf("%s is implemented now: delete it from pending.Expected", f)
	case has:
	case expected(f):
		t.Skipf("waits for %s", f)
	default:
		t.Fatalf("the server does not implement %s, which is no longer listed in pending.Expected", f)
	}
}

// Has probes the server at base for f.
func Has(base string, f Feature) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	switch f {
	case MessageStatus:
		status, body, err := send(ctx, c, http.MethodGet, base+"/messages/pending-probe/1", nil, nil)
		return err == nil && !(status == 404 && strings.Contains(body, "no such route")), err
	case Idempotency:
		h := http.Header{"Idempotency-Key": {fmt.Sprintf("pending-probe-%d", time.Now().UnixNano())}}
		body := `{"userId":"pending-probe","data":"idempotency probe"}`
		if _, _, err := send(ctx, c, http.MethodPost, base+"/pushNews", h, strings.NewReader(body)); err != nil {
			return false, err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/pushNews", strings.NewReader(body))
		req.Header = h
		resp, err := c.Do(req)
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.Header.Get("Idempotent-Replayed") == "true", nil
	case Protocol2:
		if _, _, err := send(ctx, c, http.MethodPost, base+"/pushNews", nil, strings.NewReader(`{"userId":"pending-probe","data":"v2 probe"}`)); err != nil {
			return false, err
		}
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/getPushNews?userId=pending-probe&since=0&v=2", nil)
		if err != nil {
			return false, err
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := ws.ReadMessage() // hello, or (version 1) the stored message
		if err != nil {
			return false, err
		}
		var frame struct{ Type string }
		_ = json.Unmarshal(b, &frame)
		return frame.Type == "hello", nil
	case SSE:
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/getPushNews?userId=pending-probe", nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := c.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"), nil
	case CrossSite:
		h := http.Header{"Origin": {"https://elsewhere.example"}}
		status, _, err := send(ctx, c, http.MethodPost, base+"/broadcast", h, strings.NewReader(`{"data":"cross-site probe"}`))
		return status == http.StatusForbidden, err
	case HealthHEAD:
		status, _, err := send(ctx, c, http.MethodHead, base+"/healthz", nil, nil)
		return status == http.StatusOK || status == http.StatusServiceUnavailable, err
	case DemoSwitch:
		status, _, err := send(ctx, c, http.MethodGet, base+"/echo", nil, nil)
		return status == http.StatusNotFound, err
	case WebPush:
		status, body, err := send(ctx, c, http.MethodGet, base+"/webpush/vapidPublicKey", nil, nil)
		return err == nil && !(status == 404 && strings.Contains(body, "no such route")), err
	}
	return false, fmt.Errorf("unknown feature %q", f)
}

func send(ctx context.Context, c *http.Client, method, u string, h http.Header, body io.Reader) (int, string, error) {
	if _, err := url.Parse(u); err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, "", err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(bufio.NewReader(io.LimitReader(resp.Body, 1<<16)))
	return resp.StatusCode, string(b), nil
}
