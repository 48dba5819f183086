package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Result is the outcome of a publish for one user.
type Result struct {
	UserID string `json:"userId"`
	ID     string `json:"id"`     // the message id, a decimal integer in a string
	Online bool   `json:"online"` // the user had a live connection when it was accepted
	// Replayed: the server answered from its record of an earlier request with the same
	// Idempotency-Key (this client's own earlier attempt, typically): nothing new was stored.
	Replayed bool `json:"-"`
}

// PublishOption adjusts one publish.
type PublishOption func(*publishOptions)

type publishOptions struct {
	ttl time.Duration
	key string
}

// WithTTL keeps the message for d instead of the server's store.ttl.
func WithTTL(d time.Duration) PublishOption { return func(o *publishOptions) { o.ttl = d } }

// WithIdempotencyKey sends key as the Idempotency-Key instead of a generated one: give the same
// key when your own code retries a publish (after a crash, say), and the server stores it once.
func WithIdempotencyKey(key string) PublishOption { return func(o *publishOptions) { o.key = key } }

// NewIdempotencyKey returns a random key (32 hex digits), as Publish generates for each call.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics if the system cannot supply)
	return hex.EncodeToString(b[:])
}

// Publish stores data for userID and delivers it to the user's live connections (POST
// /pushNews). data is any value encoding/json can marshal other than nil; a json.RawMessage is
// sent as it is.
//
// Each call sends an Idempotency-Key (generated unless WithIdempotencyKey gives one) and reuses
// it when it retries after a network error or a 503, so a message is stored at most once
// however often it is sent.
func (c *Client) Publish(ctx context.Context, userID string, data any, opts ...PublishOption) (Result, error) {
	res, err := c.publish(ctx, map[string]any{"userId": userID}, data, opts)
	if err != nil {
		return Result{}, err
	}
	if len(res) != 1 {
		return Result{}, fmt.Errorf("pushlane: POST /pushNews: %d results for one user", len(res))
	}
	return res[0], nil
}

// PublishMany stores data once per distinct user of userIDs (1 to 1000) and returns one result
// per distinct user, in the server's order. See Publish.
func (c *Client) PublishMany(ctx context.Context, userIDs []string, data any, opts ...PublishOption) ([]Result, error) {
	return c.publish(ctx, map[string]any{"userIds": userIDs}, data, opts)
}

func (c *Client) publish(ctx context.Context, body map[string]any, data any, opts []PublishOption) ([]Result, error) {
	var o publishOptions
	for _, f := range opts {
		f(&o)
	}
	raw, err := marshalData(data)
	if err != nil {
		return nil, err
	}
	body["data"] = raw
	if o.ttl != 0 {
		if o.ttl < 0 {
			return nil, errors.New("pushlane: WithTTL: the ttl must be above zero")
		}
		body["ttl"] = o.ttl.String()
	}
	if o.key == "" {
		o.key = c.newKey()
	}
	b, err := marshal(body)
	if err != nil {
		return nil, fmt.Errorf("pushlane: encoding the publish: %w", err)
	}
	resp, err := c.do(ctx, request{
		method: http.MethodPost,
		path:   "/pushNews",
		body:   b,
		header: http.Header{"Idempotency-Key": {o.key}},
		retry:  true,
	})
	if err != nil {
		return nil, err
	}
	var out struct {
		Results []Result `json:"results"`
	}
	if err := decode(resp.body, &out); err != nil {
		return nil, err
	}
	if resp.header.Get("Idempotent-Replayed") == "true" {
		for i := range out.Results {
			out.Results[i].Replayed = true
		}
	}
	return out.Results, nil
}

// Broadcast sends data to every live connection of every user on every node (POST /broadcast)
// and returns how many connections there were. Broadcasts are not stored. It is sent once: a
// retry could deliver it twice.
func (c *Client) Broadcast(ctx context.Context, data any) (int, error) {
	raw, err := marshalData(data)
	if err != nil {
		return 0, err
	}
	b, err := marshal(map[string]json.RawMessage{"data": raw})
	if err != nil {
		return 0, fmt.Errorf("pushlane: encoding the broadcast: %w", err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/broadcast", body: b})
	if err != nil {
		return 0, err
	}
	var out struct {
		Connections int `json:"connections"`
	}
	if err := decode(resp.body, &out); err != nil {
		return 0, err
	}
	return out.Connections, nil
}

// marshalData encodes data; nil and JSON null are refused as the server would refuse them.
func marshalData(data any) (json.RawMessage, error) {
	if data == nil {
		return nil, errors.New("pushlane: data must not be nil")
	}
	b, err := marshal(data)
	if err != nil {
		return nil, fmt.Errorf("pushlane: encoding data: %w", err)
	}
	if string(b) == "null" {
		return nil, errors.New("pushlane: data must not be JSON null")
	}
	return b, nil
}

// marshal is json.Marshal without HTML escaping, so that data reaches subscribers as written
// ("<b>" stays "<b>", not "\u003cb\u003e").
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
