package sqlite

import (
	"database/sql"
	"fmt"
	"strings"
	"time"

	"pushlane/module"
)

type opKind uint8

const (
	opAppend  opKind = iota + 1
	opPurge          // delete one user's messages
	opBarrier        // commit what is queued (marks), nothing else
)

// op is one request to the writer; done is closed once it is committed or failed.
type op struct {
	kind   opKind
	drafts []module.Draft
	userID string

	msgs []module.Message // opAppend result
	n    int              // opPurge result
	err  error
	done chan struct{}
}

// markFlushInterval is how long delivered marks may wait for a batch of appends to ride with.
// Readers of the pending queue never see stale marks: they flush first (a barrier op).
const markFlushInterval = 100 * time.Millisecond

// markChunk is how many marks one UPDATE statement applies.
const markChunk = 64

// maxBatchDrafts bounds one transaction. Batches form by themselves: while one commits (fsync),
// new ops queue, and the next transaction takes all of them.
const maxBatchDrafts = 4096

// writer owns the write connection; only its goroutine uses the statements and nextID.
type writer struct {
	s      *Store
	nextID uint64 // the last id handed out

	insert, purge, trim, markOne, markMany, setLastID, expire *sql.Stmt
}

func newWriter(s *Store, last uint64) (*writer, error) {
	w := &writer{s: s, nextID: last}
	prepare := func(dst **sql.Stmt, q string) error {
		st, err := s.write.Prepare(q)
		if err != nil {
			return fmt.Errorf("sqlite store: prepare %q: %w", q, err)
		}
		*dst = st
		return nil
	}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&w.insert, `INSERT INTO messages (id, user_id, data, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`},
		{&w.purge, `DELETE FROM messages WHERE user_id = ?`},
		// Keep the newest maxPerUser: delete below the maxPerUser-th newest id (none when fewer).
		{&w.trim, `DELETE FROM messages WHERE user_id = ?1 AND id <
			(SELECT id FROM messages WHERE user_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`},
		{&w.markOne, `UPDATE messages SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL`},
		{&w.markMany, `UPDATE messages SET delivered_at = ? WHERE delivered_at IS NULL AND id IN (?` +
			strings.Repeat(", ?", markChunk-1) + `)`},
		{&w.setLastID, `INSERT INTO meta (key, value) VALUES ('last_id', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`},
		{&w.expire, `DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE expires_at <= ? LIMIT 10000)`},
	} {
		if err := prepare(p.dst, p.q); err != nil {
			return nil, err
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
			if s.marksPending.Load() == 0 {
				continue
			}
		case <-sweep.C:
			w.sweep()
			continue
		case <-s.quit:
			// Close holds off new submits before quit is closed: what is queued now is all.
			for {
				batch = w.gather(batch)
				if len(batch) == 0 && s.marksPending.Load() == 0 {
					return
				}
				w.commit(batch)
				batch = nil
			}
		}
		w.commit(w.gather(batch))
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
// the commit hook in id order and answers every op.
func (w *writer) commit(batch []*op) {
	s := w.s
	marks := s.takeMarks()
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
	s.marksPending.Add(-int64(len(marks)))
	if err != nil {
		err = fmt.Errorf("commit %d ops: %w", len(batch), err)
		for _, o := range batch {
			o.err, o.msgs = err, nil
			close(o.done)
		}
		return
	}
	if len(appended) > 0 {
		w.nextID = appended[len(appended)-1].ID
		// Publish the new last id before delivering: a subscriber that registers while the hook
		// runs must read a last id that covers what the hook is delivering, or its floor skips it.
		s.lastCommitted.Store(w.nextID)
		s.opts.OnCommit(appended)
	}
	for _, o := range batch {
		close(o.done)
	}
}

func (w *writer) inTx(fn func(*sql.Tx) error) error {
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
	for _, o := range batch {
		switch o.kind {
		case opAppend:
			o.msgs = make([]module.Message, len(o.drafts))
			for i, d := range o.drafts {
				id++
				// CreatedAt keeps the clock's precision (the row keeps milliseconds, as frames
				// show it): the hub's publish-to-write histogram starts from it.
				m := module.Message{ID: id, UserID: d.UserID, Data: d.Data,
					CreatedAt: now, ExpiresAt: module.ExpiresAt(now, d.TTL)}
				if _, err := insert.Exec(int64(id), m.UserID, []byte(m.Data), nowMs, m.ExpiresAt.UnixMilli()); err != nil {
					return nil, fmt.Errorf("insert: %w", err)
				}
				o.msgs[i] = m
				appended = append(appended, m)
				touched[m.UserID] = struct{}{}
			}
		case opPurge:
			res, err := tx.Stmt(w.purge).Exec(o.userID)
			if err != nil {
				return nil, fmt.Errorf("purge: %w", err)
			}
			n, _ := res.RowsAffected()
			o.n = int(n)
			// The newest message may be gone now: keep the counter so ids never go back.
			if _, err := tx.Stmt(w.setLastID).Exec(int64(id)); err != nil {
				return nil, fmt.Errorf("save last id: %w", err)
			}
		}
	}
	if len(touched) > 0 {
		trim := tx.Stmt(w.trim)
		for user := range touched {
			res, err := trim.Exec(user, s.opts.MaxPerUser-1)
			if err != nil {
				return nil, fmt.Errorf("trim: %w", err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				s.opts.Metrics.Trimmed.Add(float64(n))
			}
		}
	}
	if len(marks) > 0 {
		if err := w.applyMarks(tx, marks); err != nil {
			return nil, fmt.Errorf("mark delivered: %w", err)
		}
	}
	return appended, nil
}

// applyMarks sets delivered_at, markChunk ids per statement (the time of the newest mark of a
// chunk stands for all of it: they are at most a moment apart).
func (w *writer) applyMarks(tx *sql.Tx, marks []mark) error {
	many := tx.Stmt(w.markMany)
	args := make([]any, markChunk+1)
	for len(marks) >= markChunk {
		chunk := marks[:markChunk]
		args[0] = chunk[markChunk-1].at
		for i, m := range chunk {
			args[i+1] = int64(m.id)
		}
		if _, err := many.Exec(args...); err != nil {
			return err
		}
		marks = marks[markChunk:]
	}
	one := tx.Stmt(w.markOne)
	for _, m := range marks {
		if _, err := one.Exec(m.at, int64(m.id)); err != nil {
			return err
		}
	}
	return nil
}

// sweep removes expired messages, a bounded number per transaction. Appends do not write the
// id counter (MAX(id) recovers it at start-up, one page less per commit); a delete that may take
// the newest message saves it.
func (w *writer) sweep() {
	var n int64
	err := w.inTx(func(tx *sql.Tx) error {
		res, err := tx.Stmt(w.expire).Exec(w.s.now().UnixMilli())
		if err != nil {
			return fmt.Errorf("expire: %w", err)
		}
		if n, _ = res.RowsAffected(); n > 0 {
			if _, err := tx.Stmt(w.setLastID).Exec(int64(w.nextID)); err != nil {
				return fmt.Errorf("save last id: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return // retried on the next tick; reads never return expired messages anyway
	}
	w.s.opts.Metrics.Expired.Add(float64(n))
}
