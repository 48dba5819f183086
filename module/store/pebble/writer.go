package pebble

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"

	"pushlane/module"
)

type opKind uint8

const (
	opAppend     opKind = iota + 1
	opAppendOnce        // append under an idempotency key, unless the key has a record
	opPurge             // delete one user's messages
	opFinish            // save an idempotent request's response body
	opProbe             // Health's write probe
	opBarrier           // commit what is queued (marks), nothing else
)

// op is one request to the writer; done is closed once it is committed or failed.
type op struct {
	kind   opKind
	drafts []module.Draft
	userID string
	idem   *idemArgs // opAppendOnce, opFinish

	msgs []module.Message          // opAppend, opAppendOnce: the stored messages
	rec  *module.IdempotencyRecord // opAppendOnce: the record found instead
	n    int                       // opPurge: messages removed; opFinish: records updated
	err  error
	done chan struct{}
}

// idemArgs are an idempotent op's key and, for opFinish, the response body.
type idemArgs struct {
	key  module.IdempotencyKey
	body []byte
}

// markFlushInterval is how long marks may wait for a batch of appends to ride with. Readers of
// the pending queue and of statuses never see stale marks: they flush first (a barrier op).
const markFlushInterval = 100 * time.Millisecond

// maxBatchDrafts bounds one batch. Batches form by themselves: while one commits (its sync),
// new ops queue, and the next batch takes all of them.
const maxBatchDrafts = 4096

// sweepStepKeys bounds the messages (and idempotency records) one sweep batch deletes, so
// appends queued behind it wait for one step, not for the whole backlog of expired rows.
const sweepStepKeys = 2000

// userCacheSize bounds the writer's cache of user states (about 40 bytes plus the user id each);
// the cache is emptied when it would grow past it.
const userCacheSize = 100_000

// writer owns the write side; only its goroutine uses it.
type writer struct {
	s       *Store
	nextID  uint64 // the last id handed out
	ceiling uint64 // no id above it is handed out (leaseIDs)
	// users caches user states as committed: the writer is their only writer, so a cached state
	// is the stored one. Measured: reading a state from the memtable for each append was a fifth
	// of the store's CPU in BenchmarkUnicast.
	users map[string]userState
}

func (w *writer) run() {
	s := w.s
	defer close(s.writerDone)
	sweep := time.NewTicker(s.opts.SweepInterval)
	defer sweep.Stop()
	markTick := time.NewTicker(markFlushInterval)
	defer markTick.Stop()
	for {
		var batch []*op
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-markTick.C:
			if s.marks.pending.Load() == 0 {
				continue
			}
		case <-sweep.C:
			w.sweepAll()
			continue
		case <-s.quit:
			// Close holds off new submits before quit is closed: what is queued now is all.
			for {
				batch = w.gather(batch)
				if len(batch) == 0 && s.marks.pending.Load() == 0 {
					return
				}
				w.commit(batch)
				batch = nil
			}
		}
		w.commit(w.gather(batch))
	}
}

// sweepAll runs sweep steps until nothing expired is left, committing the ops that queued
// meanwhile between steps; it leaves early when the store is closing.
func (w *writer) sweepAll() {
	for w.sweep() {
		select {
		case <-w.s.quit:
			return
		default:
		}
		if len(w.s.ops) > 0 {
			w.commit(w.gather(nil))
		}
	}
}

// gather takes whatever else is queued, up to the batch bound.
func (w *writer) gather(batch []*op) []*op {
	drafts := 0
	for _, o := range batch {
		drafts += len(o.drafts)
	}
	for drafts < maxBatchDrafts {
		select {
		case o := <-w.s.ops:
			batch = append(batch, o)
			drafts += len(o.drafts)
		default:
			return batch
		}
	}
	return batch
}

// commit applies the batch and the queued marks in one Pebble batch, synced to disk, then hands
// the new messages to the commit hook in id order and answers every op.
func (w *writer) commit(batch []*op) {
	s := w.s
	marks, nMarks := s.marks.take()
	if len(batch) == 0 && len(marks) == 0 {
		return
	}
	start := time.Now()
	t := w.newTxn()
	err := w.leaseIDs(batch)
	var appended []module.Message
	if err == nil {
		appended, err = w.apply(t, batch, marks)
	}
	if err == nil {
		err = t.commit()
	} else {
		t.abort()
	}
	s.health.committed(err)
	s.opts.Metrics.StoreLatency.WithLabelValues("commit").Observe(time.Since(start).Seconds())
	s.marks.pending.Add(-int64(nMarks))
	if err != nil {
		err = fmt.Errorf("commit %d ops: %w", len(batch), err)
		for _, o := range batch {
			o.err, o.msgs, o.rec, o.n = err, nil, nil, 0
			close(o.done)
		}
		return
	}
	w.cacheUsers(t)
	if len(appended) > 0 {
		w.nextID = appended[len(appended)-1].ID
		s.opts.OnCommit(appended)
	}
	for _, o := range batch {
		close(o.done)
	}
}

// idLease is how far the id ceiling is raised at a time: one synced write per this many ids.
const idLease = 1 << 20

// leaseIDs raises the id ceiling, with a synced write of its own, when the batch's ids would
// pass it. Pebble makes a batch visible to readers (Backlog, Head) when it is applied, before its
// sync has returned; were the machine to lose power then, the batch would be gone but a reader
// may have passed its ids on (a client's since). Ids under a synced ceiling are never handed out
// again: after a restart the counter resumes at the ceiling.
func (w *writer) leaseIDs(batch []*op) error {
	n := uint64(0)
	for _, o := range batch {
		n += uint64(len(o.drafts))
	}
	if w.nextID+n <= w.ceiling {
		return nil
	}
	ceiling := w.nextID + n + idLease
	if err := w.s.db.Set(metaCeil, binary.AppendUvarint(nil, ceiling), cpebble.Sync); err != nil {
		return fmt.Errorf("raise the id ceiling: %w", err)
	}
	w.ceiling = ceiling
	return nil
}

// cacheUsers keeps the states a committed batch wrote.
func (w *writer) cacheUsers(t *txn) {
	if len(w.users)+len(t.users) > userCacheSize {
		clear(w.users)
	}
	for id, st := range t.users {
		w.users[id] = *st
	}
}

// txn is one batch being built: an indexed Pebble batch (its reads see its own writes) and the
// states of the users it touched, written once at the end.
type txn struct {
	w     *writer
	b     *cpebble.Batch
	users map[string]*userState
	key   []byte // scratch
}

func (w *writer) newTxn() *txn {
	return &txn{w: w, b: w.s.db.NewIndexedBatch(), users: map[string]*userState{}}
}

// get returns key's value as the batch sees it (nil when absent); valid until the next write.
func (t *txn) get(key []byte) ([]byte, error) {
	v, closer, err := t.b.Get(key)
	if errors.Is(err, cpebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, closer.Close()
}

// user returns the user's state as this batch leaves it.
func (t *txn) user(id string) (*userState, error) {
	if st, ok := t.users[id]; ok {
		return st, nil
	}
	if st, ok := t.w.users[id]; ok {
		t.users[id] = &st
		return &st, nil
	}
	v, err := t.get(userKey(t.key[:0], kindUser, id))
	if err != nil {
		return nil, fmt.Errorf("read user: %w", err)
	}
	st := &userState{}
	if v != nil {
		if *st, err = decodeUser(v); err != nil {
			return nil, fmt.Errorf("user %q: %w", id, err)
		}
	}
	t.users[id] = st
	return st, nil
}

// commit writes the users' states and commits the batch with a sync.
func (t *txn) commit() error {
	for id, st := range t.users {
		if err := t.b.Set(userKey(nil, kindUser, id), st.encode(nil), nil); err != nil {
			return err
		}
	}
	err := t.b.Commit(cpebble.Sync)
	if closeErr := t.b.Close(); err == nil {
		err = closeErr
	}
	return err
}

func (t *txn) abort() { _ = t.b.Close() }

// apply builds the batch and returns the appended messages in id order. Ids are assigned here,
// in commit order, which is the order the hook delivers them.
func (w *writer) apply(t *txn, batch []*op, marks []mark) ([]module.Message, error) {
	s := w.s
	now := s.now()
	nowMs := now.UnixMilli()
	id := w.nextID
	var appended []module.Message
	var val []byte
	store := func(o *op) error {
		o.msgs = make([]module.Message, len(o.drafts))
		for i, d := range o.drafts {
			id++
			m := module.Message{ID: id, UserID: d.UserID, Data: d.Data,
				CreatedAt: now, ExpiresAt: module.ExpiresAt(now, d.TTL)}
			rec := messageRecord{created: nowMs, expires: m.ExpiresAt.UnixMilli(), queued: true, data: d.Data}
			val = rec.encode(val[:0])
			if err := t.b.Set(messageKey(t.key[:0], m.UserID, id), val, nil); err != nil {
				return err
			}
			if err := t.b.Set(expiryKey(t.key[:0], rec.expires, id), []byte(m.UserID), nil); err != nil {
				return err
			}
			st, err := t.user(m.UserID)
			if err != nil {
				return err
			}
			st.lastID, st.count = id, st.count+1
			o.msgs[i] = m
			appended = append(appended, m)
		}
		return nil
	}
	for _, o := range batch {
		var err error
		switch o.kind {
		case opAppend:
			err = store(o)
		case opAppendOnce:
			if o.rec, err = t.findRecord(o.idem.key, nowMs); err == nil && o.rec == nil {
				if err = store(o); err == nil {
					err = t.saveRecord(o, now)
				}
			}
		case opPurge:
			o.n, err = t.deleteOldest(o.userID, -1)
		case opFinish:
			o.n, err = t.finishRecord(o.idem, nowMs)
		case opProbe:
			err = t.b.Set(metaProbe, binary.AppendVarint(nil, nowMs), nil)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(appended) > 0 {
		for user, st := range t.users {
			if over := int(st.count) - s.opts.MaxPerUser; over > 0 {
				n, err := t.deleteOldest(user, over)
				if err != nil {
					return nil, fmt.Errorf("trim: %w", err)
				}
				s.opts.Metrics.Trimmed.Add(float64(n))
			}
		}
		if err := t.b.Set(metaLastID, binary.AppendUvarint(nil, id), nil); err != nil {
			return nil, err
		}
	}
	if err := t.applyMarks(marks); err != nil {
		return nil, fmt.Errorf("marks: %w", err)
	}
	return appended, nil
}

// deleteOldest deletes the user's n oldest messages (all when n < 0) with their expiry entries
// and returns how many it deleted. The user's newest id stays in its state, for Head.
func (t *txn) deleteOldest(user string, n int) (int, error) {
	st, err := t.user(user)
	if err != nil {
		return 0, err
	}
	prefix := userKey(nil, kindMessage, user)
	it, err := t.b.NewIter(&cpebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
	if err != nil {
		return 0, err
	}
	type victim struct {
		key     []byte
		expires int64
		id      uint64
	}
	var victims []victim
	for ok := it.First(); ok && (n < 0 || len(victims) < n); ok = it.Next() {
		id, err := decodeMessageKey(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		rec, err := decodeMessage(v)
		if err != nil {
			_ = it.Close()
			return 0, fmt.Errorf("message %d of %q: %w", id, user, err)
		}
		victims = append(victims, victim{append([]byte(nil), it.Key()...), rec.expires, id})
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	for _, v := range victims {
		if err := t.b.Delete(v.key, nil); err != nil {
			return 0, err
		}
		if err := t.b.Delete(expiryKey(t.key[:0], v.expires, v.id), nil); err != nil {
			return 0, err
		}
	}
	st.count -= min(st.count, uint64(len(victims)))
	if n < 0 {
		st.count = 0
	}
	return len(victims), nil
}

// sweep removes expired messages and idempotency records, a bounded number per batch, and
// reports whether more are due.
func (w *writer) sweep() (more bool) {
	s := w.s
	t := w.newTxn()
	nowMs := s.now().UnixMilli()
	expired, scanned, records, err := t.sweep(nowMs)
	if err == nil {
		err = t.commit()
	} else {
		t.abort()
	}
	s.health.committed(err)
	if err == nil {
		w.cacheUsers(t)
	}
	if err != nil {
		return false // retried on the next tick; reads never return expired messages anyway
	}
	s.opts.Metrics.Expired.Add(float64(expired))
	return scanned == sweepStepKeys || records == sweepStepKeys
}

// sweep deletes up to sweepStepKeys expired messages and idempotency records; it returns the
// messages deleted, the expiry entries gone through and the records' entries gone through.
func (t *txn) sweep(nowMs int64) (expired, scanned, records int, err error) {
	// Messages: the expiry index up to now, each entry checked against its message (an entry
	// whose message was trimmed, purged or is another's is only removed).
	lower := []byte{kindExpiry}
	upper := expiryKey(nil, nowMs+1, 0)
	it, err := t.b.NewIter(&cpebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, 0, 0, err
	}
	var entries [][2][]byte
	for ok := it.First(); ok && len(entries) < sweepStepKeys; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return 0, 0, 0, err
		}
		entries = append(entries, [2][]byte{append([]byte(nil), it.Key()...), append([]byte(nil), v...)})
	}
	if err := it.Close(); err != nil {
		return 0, 0, 0, err
	}
	for _, e := range entries {
		key, user := e[0], string(e[1])
		if len(key) != 17 {
			return 0, 0, 0, errCorrupt
		}
		expires, id := int64(binary.BigEndian.Uint64(key[1:9])), binary.BigEndian.Uint64(key[9:])
		mk := messageKey(nil, user, id)
		v, err := t.get(mk)
		if err != nil {
			return 0, 0, 0, err
		}
		if v != nil {
			rec, err := decodeMessage(v)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("message %d of %q: %w", id, user, err)
			}
			if rec.expires == expires {
				if err := t.b.Delete(mk, nil); err != nil {
					return 0, 0, 0, err
				}
				st, err := t.user(user)
				if err != nil {
					return 0, 0, 0, err
				}
				st.count -= min(st.count, 1)
				expired++
			}
		}
		if err := t.b.Delete(key, nil); err != nil {
			return 0, 0, 0, err
		}
	}
	records, err = t.sweepRecords(nowMs)
	return expired, len(entries), records, err
}
