package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors of an idempotent publish (API.md "Idempotent publish"); the api layer answers 409 and 422.
var (
	ErrIdempotencyInProgress = errors.New("a request with this idempotency key is still being processed")
	ErrIdempotencyMismatch   = errors.New("this idempotency key was used with a different request")
)

// finishTimeout bounds saving the response body of an idempotent publish. It runs even when the
// request's context ended (the messages are stored by then): a saved body makes every replay
// byte-identical to the first answer.
const finishTimeout = 5 * time.Second

// PublishOnce is Publish under an idempotency key (API.md "Idempotent publish"). render turns the
// results into the response body, which is saved under the key for replays. It returns that body
// and whether it is a replay of an earlier request (then nothing was stored or delivered now).
//
// The flow: Begin claims the key; a key already done replays its saved body (rebuilt from the
// recorded ids, with online false, when the first request never saved one) or, with another
// fingerprint, fails with ErrIdempotencyMismatch; a key held by a running request fails with
// ErrIdempotencyInProgress. A new claim goes through AppendOnce, which stores the messages and
// records the key in one durable step; the store delivers what it newly stored (its OnCommit
// hook), and only that, so a replay found by AppendOnce delivers nothing. Finish saves the body
// and releases the claim. Every way out before Finish (an error, a panic) abandons the claim,
// which records nothing: a retry is processed as new, unless AppendOnce had stored it after all,
// in which case the retry replays it.
func (s *Service) PublishOnce(ctx context.Context, key IdempotencyKey, userIDs []string, data json.RawMessage,
	ttl time.Duration, render func([]PublishResult) []byte) (body []byte, replayed bool, err error) {
	state, rec, err := s.store.Begin(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("%w: idempotency begin: %w", ErrUnavailable, err)
	}
	switch state {
	case IdempotencyInProgress:
		return nil, false, ErrIdempotencyInProgress
	case IdempotencyDone:
		body, err := s.replay(key, rec, render)
		return body, err == nil, err
	case IdempotencyNew:
	default:
		return nil, false, fmt.Errorf("idempotency begin: unknown state %d", state)
	}

	claimed := true
	defer func() {
		if claimed {
			s.store.Abandon(key)
		}
	}()
	start := time.Now()
	msgs, rec, err := s.store.AppendOnce(ctx, key, s.drafts(userIDs, data, ttl))
	s.metrics.StoreLatency.WithLabelValues("append").Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, false, fmt.Errorf("%w: store append once: %w", ErrUnavailable, err)
	}
	if rec != nil {
		// A first attempt that was answered 503 (or whose client went away) was stored after
		// all: this request is its retry.
		body, err = s.replay(key, rec, render)
		if err != nil {
			return nil, false, err
		}
		replayed = true
	} else {
		s.metrics.Published.Add(float64(len(msgs)))
		body = render(s.results(ctx, msgs))
	}
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := s.store.Finish(finishCtx, key, body); err == nil {
		claimed = false
	}
	// Finish failing leaves the record without a body: the messages are stored under the key,
	// and a replay rebuilds the body from the recorded ids. The claim is abandoned (deferred).
	return body, replayed, nil
}

// replay answers a key that completed before: its saved body, or one rebuilt from the recorded
// ids (online false: presence then is not presence now) when no body was saved.
func (s *Service) replay(key IdempotencyKey, rec *IdempotencyRecord, render func([]PublishResult) []byte) ([]byte, error) {
	if rec == nil {
		return nil, errors.New("idempotency: the store reported a completed key without its record")
	}
	if rec.Fingerprint != key.Fingerprint {
		return nil, ErrIdempotencyMismatch
	}
	s.metrics.IdempotentReplays.Inc()
	if rec.Body != nil {
		return rec.Body, nil
	}
	// The first attempt never finished: its append's outcome was unknown when it was answered
	// (a store that timed out, and ran it later), so no commit hook may have delivered those
	// messages live. This node's connections of those users read them from the store now; the
	// others get them at their next message (gaps are filled), reconnect or retry on their node.
	results := make([]PublishResult, len(rec.Results))
	users := make([]string, len(rec.Results))
	for i, r := range rec.Results {
		results[i] = PublishResult{UserID: r.UserID, ID: r.ID}
		users[i] = r.UserID
	}
	s.hub.CatchUpUsers(users)
	return render(results), nil
}
