package pebble

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"

	"pushlane/module"
)

type idemID struct{ scope, key string }

// claims are the idempotency keys of requests in progress on this node (one node owns a
// database): released by Finish or Abandon, and by a restart.
type claims struct {
	mu   sync.Mutex
	held map[idemID]struct{}
}

func (c *claims) take(id idemID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.held[id]; ok {
		return false
	}
	c.held[id] = struct{}{}
	return true
}

func (c *claims) release(id idemID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.held, id)
}

// idemRecord is an idempotency record's value: expiry (varint unix ms), the fingerprint and the
// stored ids (see encodeResults), each length-prefixed, then 1 and the response body once the
// request finished (0 before).
type idemRecord struct {
	expires     int64
	fingerprint string
	results     []byte
	body        []byte
	finished    bool
}

func (r *idemRecord) encode() []byte {
	out := binary.AppendVarint(nil, r.expires)
	out = appendString(out, r.fingerprint)
	out = appendString(out, string(r.results))
	if !r.finished {
		return append(out, 0)
	}
	return append(append(out, 1), r.body...)
}

func decodeIdem(b []byte) (idemRecord, error) {
	var r idemRecord
	exp, n := binary.Varint(b)
	if n <= 0 {
		return r, errCorrupt
	}
	r.expires, b = exp, b[n:]
	var fields [2][]byte
	for i := range fields {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return r, errCorrupt
		}
		fields[i], b = b[n:n+int(l)], b[n+int(l):]
	}
	r.fingerprint, r.results = string(fields[0]), fields[1]
	if len(b) == 0 || b[0] > 1 {
		return r, errCorrupt
	}
	r.finished = b[0] == 1
	if r.finished {
		r.body = append([]byte{}, b[1:]...)
	}
	return r, nil
}

// public is the record as module.Idempotency hands it out.
func (r *idemRecord) public() (*module.IdempotencyRecord, error) {
	results, err := decodeResults(r.results)
	if err != nil {
		return nil, err
	}
	return &module.IdempotencyRecord{Fingerprint: r.fingerprint, Results: results, Body: r.body}, nil
}

// Begin implements module.Idempotency. The claim comes first: a request that stored but has not
// finished is still in progress.
func (s *Store) Begin(_ context.Context, k module.IdempotencyKey) (module.IdempotencyState, *module.IdempotencyRecord, error) {
	if s.closed.Load() {
		return 0, nil, fmt.Errorf("pebble store begin: %w", module.ErrClosed)
	}
	id := idemID{k.Scope, k.Key}
	if !s.claims.take(id) {
		return module.IdempotencyInProgress, nil, nil
	}
	var rec *module.IdempotencyRecord
	err := s.reading(func() error {
		v, err := s.get(idemKey(nil, k))
		if err != nil || v == nil {
			return err
		}
		r, err := decodeIdem(v)
		if err != nil || r.expires <= s.now().UnixMilli() {
			return err
		}
		rec, err = r.public()
		return err
	})
	if err != nil || rec != nil {
		s.claims.release(id)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("pebble store begin: %w", err)
	}
	if rec != nil {
		return module.IdempotencyDone, rec, nil
	}
	return module.IdempotencyNew, nil, nil
}

// AppendOnce implements module.Idempotency: the record is written in the batch that stores the
// messages, so either both are on disk or neither is.
func (s *Store) AppendOnce(ctx context.Context, k module.IdempotencyKey, drafts []module.Draft) ([]module.Message, *module.IdempotencyRecord, error) {
	o := &op{kind: opAppendOnce, idem: &idemArgs{key: k}, drafts: drafts, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return nil, nil, fmt.Errorf("pebble store append: %w", err)
	}
	return o.msgs, o.rec, nil
}

// Finish implements module.Idempotency. The claim is released whatever happens.
func (s *Store) Finish(ctx context.Context, k module.IdempotencyKey, body []byte) error {
	defer s.claims.release(idemID{k.Scope, k.Key})
	o := &op{kind: opFinish, idem: &idemArgs{key: k, body: body}, done: make(chan struct{})}
	if err := s.submit(ctx, o); err != nil {
		return fmt.Errorf("pebble store finish: %w", err)
	}
	if o.n == 0 {
		return fmt.Errorf("pebble store finish: no record under the key (AppendOnce first): %w", module.ErrNotFound)
	}
	return nil
}

// Abandon implements module.Idempotency.
func (s *Store) Abandon(k module.IdempotencyKey) { s.claims.release(idemID{k.Scope, k.Key}) }

// liveRecord reads the unexpired record under k as the batch sees it.
func (t *txn) liveRecord(k module.IdempotencyKey, nowMs int64) (*idemRecord, error) {
	v, err := t.get(idemKey(t.key[:0], k))
	if err != nil || v == nil {
		return nil, err
	}
	r, err := decodeIdem(v)
	if err != nil {
		return nil, fmt.Errorf("idempotency record: %w", err)
	}
	if r.expires <= nowMs {
		return nil, nil
	}
	return &r, nil
}

// findRecord returns the live record under k, nil when there is none.
func (t *txn) findRecord(k module.IdempotencyKey, nowMs int64) (*module.IdempotencyRecord, error) {
	r, err := t.liveRecord(k, nowMs)
	if err != nil || r == nil {
		return nil, err
	}
	return r.public()
}

// saveRecord records the key with the messages o just stored (replacing an expired record).
func (t *txn) saveRecord(o *op, now time.Time) error {
	k := o.idem.key
	r := idemRecord{expires: module.ExpiresAt(now, k.Window).UnixMilli(), fingerprint: k.Fingerprint,
		results: encodeResults(o.msgs)}
	if err := t.b.Set(idemKey(nil, k), r.encode(), nil); err != nil {
		return err
	}
	return t.b.Set(idemExpiryKey(nil, r.expires, k), nil, nil)
}

// finishRecord saves the body in the live record under the key; it returns 0 when there is none.
func (t *txn) finishRecord(a *idemArgs, nowMs int64) (int, error) {
	r, err := t.liveRecord(a.key, nowMs)
	if err != nil || r == nil {
		return 0, err
	}
	r.body, r.finished = append([]byte{}, a.body...), true
	return 1, t.b.Set(idemKey(nil, a.key), r.encode(), nil)
}

// sweepRecords deletes idempotency records whose window has passed, up to sweepStepKeys, and
// returns how many index entries it went through.
func (t *txn) sweepRecords(nowMs int64) (int, error) {
	upper := binary.BigEndian.AppendUint64([]byte{kindIdemExpir}, uint64(max(nowMs+1, 0)))
	it, err := t.b.NewIter(&cpebble.IterOptions{LowerBound: []byte{kindIdemExpir}, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	var keys [][]byte
	for ok := it.First(); ok && len(keys) < sweepStepKeys; ok = it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	for _, key := range keys {
		// 'y' expires(8) scope key: the record's key is 'i' scope key.
		if len(key) < 9 {
			return 0, errCorrupt
		}
		expires := int64(binary.BigEndian.Uint64(key[1:9]))
		rk := append([]byte{kindIdem}, key[9:]...)
		v, err := t.get(rk)
		if err != nil {
			return 0, err
		}
		if v != nil {
			if r, err := decodeIdem(v); err == nil && r.expires == expires {
				if err := t.b.Delete(rk, nil); err != nil {
					return 0, err
				}
			}
		}
		if err := t.b.Delete(key, nil); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// encodeResults packs the stored ids as (uvarint length, user id, uvarint id) per message.
func encodeResults(msgs []module.Message) []byte {
	out := make([]byte, 0, len(msgs)*16)
	for _, m := range msgs {
		out = appendString(out, m.UserID)
		out = binary.AppendUvarint(out, m.ID)
	}
	return out
}

func decodeResults(b []byte) ([]module.IdempotentResult, error) {
	var out []module.IdempotentResult
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errCorrupt
		}
		user := string(b[k : k+int(n)])
		b = b[k+int(n):]
		id, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errCorrupt
		}
		b = b[k:]
		out = append(out, module.IdempotentResult{UserID: user, ID: id})
	}
	return out, nil
}
