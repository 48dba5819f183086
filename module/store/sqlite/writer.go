package sqlite

import (
	"database/sql"
	"fmt"
	"time"

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
	opFunc              // run fn in the transaction (Web Push writes, webpush.go)
)

// op is one request to the writer; done is closed once it is committed or failed.
type op struct {
	kind   opKind
	drafts []module.Draft
	userID string
	idem   *idemArgs           // opAppendOnce, opFinish (a pointer: appends do not carry it)
	fn     func(*sql.Tx) error // opFunc

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

// maxBatchDrafts bounds one transaction. Batches form by themselves: while one commits (fsync),
// new ops queue, and the next transaction takes all of them.
const maxBatchDrafts = 4096

// sweepStepRows bounds the rows one sweep transaction deletes (messages, and idempotency records),
// so appends queued behind it wait for one step, not for the whole backlog of expired rows.
const sweepStepRows = 2000

// writer owns the write connection; only its goroutine uses the statements and nextID.
type writer struct {
	s      *Store
	nextID uint64 // the last id handed out

	insert, purge, purgeHead, countUser, trimOldest, setLastID, expire, saveHead, expireRecords,
	findRecord, saveRecord, finishRecord, probe *sql.Stmt
	marks [markKinds]markStmts
	// pushDue records a message's due Web Push (webpush.go); nil when Web Push is off.
	pushDue *sql.Stmt
	counts  userCounts   // counts.go
	wal     walRestarter // walrestart.go
	// statusChanges are the rows each mark kind changed in the transaction being committed.
	statusChanges [markKinds]int64
}

func newWriter(s *Store, last uint64) (*writer, error) {
	w := &writer{s: s, nextID: last, counts: userCounts{committed: map[string]int{}}, wal: walRestarter{path: s.path + "-wal"}}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&w.insert, `INSERT INTO messages (id, user_id, data, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`},
		{&w.purge, `DELETE FROM messages WHERE user_id = ?`},
		{&w.purgeHead, `INSERT INTO user_heads (user_id, last_id)
			SELECT user_id, MAX(id) FROM messages WHERE user_id = ?1 GROUP BY user_id
			ON CONFLICT(user_id) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)`},
		{&w.countUser, `SELECT COUNT(*) FROM messages WHERE user_id = ?`},
		// The user's ?2 oldest rows (trimUsers passes the surplus over maxPerUser).
		{&w.trimOldest, `DELETE FROM messages WHERE id IN
			(SELECT id FROM messages WHERE user_id = ?1 ORDER BY id LIMIT ?2)`},
		{&w.setLastID, `INSERT INTO meta (key, value) VALUES ('last_id', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`},
		{&w.expire, `DELETE FROM messages WHERE id IN
			(SELECT id FROM messages WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2) RETURNING user_id, id`},
		// After an expiry: save the user's newest deleted id unless a newer row of the user remains.
		{&w.saveHead, `INSERT INTO user_heads (user_id, last_id)
			SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM messages WHERE user_id = ?1 AND id > ?2)
			ON CONFLICT(user_id) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)`},
		{&w.expireRecords, `DELETE FROM idempotency WHERE rowid IN
			(SELECT rowid FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)`},
		{&w.findRecord, `SELECT fingerprint, results, body FROM idempotency WHERE scope = ? AND key = ? AND expires_at > ?`},
		// Replaces a record whose window has passed (a live one is found first and kept).
		{&w.saveRecord, `INSERT INTO idempotency (scope, key, fingerprint, results, body, expires_at) VALUES (?, ?, ?, ?, NULL, ?)
			ON CONFLICT(scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, results = excluded.results,
			body = NULL, expires_at = excluded.expires_at`},
		{&w.finishRecord, `UPDATE idempotency SET body = ? WHERE scope = ? AND key = ? AND expires_at > ?`},
		{&w.probe, `INSERT INTO meta (key, value) VALUES ('health_probe', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`},
	} {
		st, err := s.write.Prepare(p.q)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", p.q, err)
		}
		*p.dst = st
	}
	var err error
	if w.marks, err = prepareMarks(s.write); err != nil {
		return nil, err
	}
	if s.opts.WebPush != nil {
		if w.pushDue, err = s.write.Prepare(pushDueSQL); err != nil {
			return nil, fmt.Errorf("prepare %q: %w", pushDueSQL, err)
		}
	}
	return w, nil
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

// commit runs the batch and the queued marks in one transaction, then hands the new messages to
// the commit hook in id order and answers every op. The hook runs after the commit: Head reads
// the committed database, so every id the hook receives is already covered by Head.
func (w *writer) commit(batch []*op) {
	s := w.s
	marks, nMarks := s.marks.take()
	if len(batch) == 0 && len(marks) == 0 {
		return
	}
	start := time.Now()
	var appended []module.Message
	err := w.inTx(func(tx *sql.Tx) error {
		var err error
		appended, err = w.apply(tx, batch, marks)
		return err
	})
	s.opts.Metrics.StoreLatency.WithLabelValues("commit").Observe(time.Since(start).Seconds())
	s.marks.pending.Add(-int64(nMarks))
	if err != nil {
		w.statusChanges = [markKinds]int64{} // rolled back
		err = fmt.Errorf("commit %d ops: %w", len(batch), err)
		for _, o := range batch {
			o.err, o.msgs, o.rec, o.n = err, nil, nil, 0
			close(o.done)
		}
		return
	}
	w.countStatusChanges()
	if len(appended) > 0 {
		w.nextID = appended[len(appended)-1].ID
		s.opts.OnCommit(appended)
	}
	for _, o := range batch {
		close(o.done)
	}
}

// inTx runs fn in a transaction and records the outcome for Health and the user counts.
func (w *writer) inTx(fn func(*sql.Tx) error) (err error) {
	w.counts.begin()
	defer func() {
		w.counts.end(err == nil)
		w.s.health.committed(err)
	}()
	tx, err := w.s.write.Begin()
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	w.restartWALIfGrown()
	return nil
}

// apply executes the batch inside tx and returns the appended messages in id order. Ids are
// assigned here, in commit order, which is the order the hook delivers them.
func (w *writer) apply(tx *sql.Tx, batch []*op, marks []mark) ([]module.Message, error) {
	s := w.s
	now := s.now()
	nowMs := now.UnixMilli()
	id := w.nextID
	var appended []module.Message
	touched := map[string]struct{}{}
	insert := tx.Stmt(w.insert)
	store := func(o *op) error {
		o.msgs = make([]module.Message, len(o.drafts))
		for i, d := range o.drafts {
			id++
			// CreatedAt keeps the clock's precision (the row keeps milliseconds, as frames
			// show it): the hub's publish-to-write histogram starts from it.
			m := module.Message{ID: id, UserID: d.UserID, Data: d.Data,
				CreatedAt: now, ExpiresAt: module.ExpiresAt(now, d.TTL)}
			if _, err := insert.Exec(int64(id), m.UserID, []byte(m.Data), nowMs, m.ExpiresAt.UnixMilli()); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			if err := w.schedulePush(tx, m); err != nil {
				return err
			}
			o.msgs[i] = m
			appended = append(appended, m)
			touched[m.UserID] = struct{}{}
			w.counts.add(m.UserID, 1)
		}
		return nil
	}
	for _, o := range batch {
		var err error
		switch o.kind {
		case opAppend:
			err = store(o)
		case opAppendOnce:
			if o.rec, err = w.lookupRecord(tx, o.idem.key, nowMs); err == nil && o.rec == nil {
				if err = store(o); err == nil {
					err = w.saveIdempotency(tx, o, now)
				}
			}
		case opPurge:
			err = w.purgeUser(tx, o, id)
		case opFinish:
			var res sql.Result
			if res, err = tx.Stmt(w.finishRecord).Exec(o.idem.body, o.idem.key.Scope, o.idem.key.Key, nowMs); err == nil {
				n, _ := res.RowsAffected()
				o.n = int(n)
			}
		case opProbe:
			_, err = tx.Stmt(w.probe).Exec(nowMs)
		case opFunc:
			err = o.fn(tx)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := w.trimUsers(tx, touched); err != nil {
		return nil, err
	}
	if len(marks) > 0 {
		if err := w.applyMarks(tx, marks); err != nil {
			return nil, fmt.Errorf("marks: %w", err)
		}
	}
	return appended, nil
}

// purgeUser deletes the user's messages, keeping its newest id for Head and the id counter (the
// newest message of all may be among them) so ids never go back.
func (w *writer) purgeUser(tx *sql.Tx, o *op, lastID uint64) error {
	if _, err := tx.Stmt(w.purgeHead).Exec(o.userID); err != nil {
		return fmt.Errorf("purge: save head: %w", err)
	}
	res, err := tx.Stmt(w.purge).Exec(o.userID)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	n, _ := res.RowsAffected()
	o.n = int(n)
	w.counts.set(o.userID, 0)
	if _, err := tx.Stmt(w.setLastID).Exec(int64(lastID)); err != nil {
		return fmt.Errorf("purge: save last id: %w", err)
	}
	return nil
}

// sweep removes expired messages and idempotency records, a bounded number per transaction, and
// reports whether more are due. Appends do not write the id counter (the greatest id recovers it
// at start-up, one page less per commit), nor the user's head (its newest row is it); a deletion
// that may take the newest message of a user, or of all, saves them.
func (w *writer) sweep() (more bool) {
	var expired, records int64
	err := w.inTx(func(tx *sql.Tx) error {
		nowMs := w.s.now().UnixMilli()
		rows, err := tx.Stmt(w.expire).Query(nowMs, sweepStepRows)
		if err != nil {
			return fmt.Errorf("expire: %w", err)
		}
		newest := map[string]int64{}
		for rows.Next() {
			var user string
			var id int64
			if err := rows.Scan(&user, &id); err != nil {
				rows.Close()
				return fmt.Errorf("expire: %w", err)
			}
			newest[user] = max(newest[user], id)
			w.counts.add(user, -1)
			expired++
		}
		err = rows.Err()
		if closeErr := rows.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			return fmt.Errorf("expire: %w", err)
		}
		if expired > 0 {
			saveHead := tx.Stmt(w.saveHead)
			for user, id := range newest {
				if _, err := saveHead.Exec(user, id); err != nil {
					return fmt.Errorf("expire: save head: %w", err)
				}
			}
			if _, err := tx.Stmt(w.setLastID).Exec(int64(w.nextID)); err != nil {
				return fmt.Errorf("expire: save last id: %w", err)
			}
		}
		res, err := tx.Stmt(w.expireRecords).Exec(nowMs, sweepStepRows)
		if err != nil {
			return fmt.Errorf("expire idempotency records: %w", err)
		}
		records, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return false // retried on the next tick; reads never return expired rows anyway
	}
	w.s.opts.Metrics.Expired.Add(float64(expired))
	return expired == sweepStepRows || records == sweepStepRows
}
