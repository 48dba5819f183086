package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"pushlane/module"
	"pushlane/module/webpush"
)

// pushSchema holds Web Push subscriptions and due pushes (module/webpush.Store), created with the
// rest of the schema.
const pushSchema = `
CREATE TABLE IF NOT EXISTS webpush_subscriptions (
	id         TEXT    PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	endpoint   TEXT    NOT NULL,
	p256dh     TEXT    NOT NULL,
	auth       TEXT    NOT NULL,
	created_at INTEGER NOT NULL, -- unix ms; ties broken by rowid (registration order)
	UNIQUE (user_id, endpoint)
);
-- One row per due push: a message of a user for one subscription, or for all of them (sub_id '',
-- written by the append that stored the message, in the same transaction).
CREATE TABLE IF NOT EXISTS webpush_due (
	user_id TEXT    NOT NULL,
	msg_id  INTEGER NOT NULL,
	sub_id  TEXT    NOT NULL,
	due_at  INTEGER NOT NULL, -- unix ms; while claimed, when the claim runs out
	attempt INTEGER NOT NULL DEFAULT 0,
	claim   TEXT,             -- the token of the last claim
	PRIMARY KEY (user_id, msg_id, sub_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webpush_due_by_time ON webpush_due(due_at);
`

// pushDueSQL records the fan-out due push of one appended message when its user has a
// subscription: ?1 user, ?2 message id, ?3 due time. One indexed lookup per message, only with
// Web Push on.
const pushDueSQL = `INSERT OR IGNORE INTO webpush_due (user_id, msg_id, sub_id, due_at)
	SELECT ?1, ?2, '', ?3 WHERE EXISTS (SELECT 1 FROM webpush_subscriptions WHERE user_id = ?1)`

// schedulePush runs pushDueSQL for m inside the append's transaction (nothing when Web Push is
// off): a crash can never leave a stored message without its due push.
func (w *writer) schedulePush(tx *sql.Tx, m module.Message) error {
	if w.pushDue == nil {
		return nil
	}
	due := m.CreatedAt.Add(w.s.opts.WebPush.Delay).UnixMilli()
	if _, err := tx.Stmt(w.pushDue).Exec(m.UserID, int64(m.ID), due); err != nil {
		return fmt.Errorf("schedule web push: %w", err)
	}
	return nil
}

// inWriter runs fn in the writer's next transaction (group-committed with appends and marks) and
// waits for the commit.
func (s *Store) inWriter(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.submit(ctx, &op{kind: opFunc, fn: fn, done: make(chan struct{})})
}

var _ webpush.Store = (*Store)(nil)

// SaveSubscription implements webpush.Store.
func (s *Store) SaveSubscription(ctx context.Context, sub webpush.Subscription, maxPerUser int) (webpush.Subscription, bool, int, error) {
	saved, created, removed := sub, true, 0
	err := s.inWriter(ctx, func(tx *sql.Tx) error {
		saved, created, removed = sub, true, 0 // a failed batch may run fn again: start over
		var id string
		var createdMs int64
		err := tx.QueryRow(`SELECT id, created_at FROM webpush_subscriptions WHERE user_id = ? AND endpoint = ?`,
			sub.UserID, sub.Endpoint).Scan(&id, &createdMs)
		switch {
		case err == nil:
			saved.ID, saved.CreatedAt, created = id, time.UnixMilli(createdMs), false
			_, err = tx.Exec(`UPDATE webpush_subscriptions SET p256dh = ?, auth = ? WHERE id = ?`, sub.P256dh, sub.Auth, id)
			return err
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := tx.Exec(`DELETE FROM webpush_subscriptions WHERE id IN (SELECT id FROM webpush_subscriptions
			WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?2)`, sub.UserID, max(maxPerUser, 1)-1)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		removed = int(n)
		_, err = tx.Exec(`INSERT INTO webpush_subscriptions (id, user_id, endpoint, p256dh, auth, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			sub.ID, sub.UserID, sub.Endpoint, sub.P256dh, sub.Auth, sub.CreatedAt.UnixMilli())
		return err
	})
	if err != nil {
		return webpush.Subscription{}, false, 0, fmt.Errorf("sqlite store save subscription: %w", err)
	}
	return saved, created, removed, nil
}

// DeleteSubscription implements webpush.Store.
func (s *Store) DeleteSubscription(ctx context.Context, userID, id string) (bool, error) {
	var n int64
	err := s.inWriter(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM webpush_subscriptions WHERE user_id = ? AND id = ?`, userID, id)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("sqlite store delete subscription: %w", err)
	}
	return n > 0, nil
}

// Subscriptions implements webpush.Store.
func (s *Store) Subscriptions(ctx context.Context, userID string) ([]webpush.Subscription, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite store subscriptions: %w", module.ErrClosed)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, endpoint, p256dh, auth, created_at FROM webpush_subscriptions
		WHERE user_id = ? ORDER BY created_at, rowid`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite store subscriptions: %w", err)
	}
	defer rows.Close()
	var out []webpush.Subscription
	for rows.Next() {
		sub := webpush.Subscription{UserID: userID}
		var created int64
		if err := rows.Scan(&sub.ID, &sub.Endpoint, &sub.P256dh, &sub.Auth, &created); err != nil {
			return nil, fmt.Errorf("sqlite store subscriptions: %w", err)
		}
		sub.CreatedAt = time.UnixMilli(created)
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store subscriptions: %w", err)
	}
	return out, nil
}

// newClaim is a claim token: random, so a claim made after a restart never equals an older one.
func newClaim() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ClaimDue implements webpush.Store. It first asks the read pool whether anything is due, so an
// idle poll costs no write transaction.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]webpush.Due, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("sqlite store claim due: %w", module.ErrClosed)
	}
	nowMs := now.UnixMilli()
	var any int
	err := s.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM webpush_due WHERE due_at <= ?)`, nowMs).Scan(&any)
	if err != nil {
		return nil, fmt.Errorf("sqlite store claim due: %w", err)
	}
	if any == 0 || limit <= 0 {
		return nil, nil
	}
	var out []webpush.Due
	claim := newClaim()
	err = s.inWriter(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.Query(`UPDATE webpush_due SET due_at = ?1, claim = ?2
			WHERE (user_id, msg_id, sub_id) IN (SELECT user_id, msg_id, sub_id FROM webpush_due
				WHERE due_at <= ?3 ORDER BY due_at LIMIT ?4)
			RETURNING user_id, msg_id, sub_id, attempt`, now.Add(lease).UnixMilli(), claim, nowMs, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d := webpush.Due{Claim: claim}
			var id int64
			if err := rows.Scan(&d.UserID, &id, &d.SubID, &d.Attempt); err != nil {
				return err
			}
			d.MsgID = uint64(id)
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite store claim due: %w", err)
	}
	return out, nil
}

// takeClaimed deletes d's row if its claim is still held; ErrClaimLost otherwise.
func takeClaimed(tx *sql.Tx, d webpush.Due) error {
	res, err := tx.Exec(`DELETE FROM webpush_due WHERE user_id = ? AND msg_id = ? AND sub_id = ? AND claim = ?`,
		d.UserID, int64(d.MsgID), d.SubID, d.Claim)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return webpush.ErrClaimLost
	}
	return nil
}

// withClaim runs fn in the writer's next transaction after removing d's row, if d's claim is
// still held; ErrClaimLost (and nothing changed) otherwise. A lost claim does not fail the
// batch: the other ops in it commit.
func (s *Store) withClaim(ctx context.Context, what string, d webpush.Due, fn func(tx *sql.Tx) error) error {
	lost := false
	err := s.inWriter(ctx, func(tx *sql.Tx) error {
		lost = false
		if err := takeClaimed(tx, d); err != nil {
			lost = errors.Is(err, webpush.ErrClaimLost)
			if lost {
				return nil
			}
			return err
		}
		return fn(tx)
	})
	if err != nil {
		return fmt.Errorf("sqlite store %s: %w", what, err)
	}
	if lost {
		return webpush.ErrClaimLost
	}
	return nil
}

// ExpandDue implements webpush.Store.
func (s *Store) ExpandDue(ctx context.Context, d webpush.Due, now time.Time) error {
	return s.withClaim(ctx, "expand due", d, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT OR IGNORE INTO webpush_due (user_id, msg_id, sub_id, due_at)
			SELECT user_id, ?, id, ? FROM webpush_subscriptions WHERE user_id = ?`, int64(d.MsgID), now.UnixMilli(), d.UserID)
		return err
	})
}

// FinishDue implements webpush.Store.
func (s *Store) FinishDue(ctx context.Context, d webpush.Due, retries []webpush.Retry) error {
	return s.withClaim(ctx, "finish due", d, func(tx *sql.Tx) error {
		for _, r := range retries {
			if _, err := tx.Exec(`INSERT OR REPLACE INTO webpush_due (user_id, msg_id, sub_id, due_at, attempt) VALUES (?, ?, ?, ?, ?)`,
				d.UserID, int64(d.MsgID), r.SubID, r.At.UnixMilli(), r.Attempt); err != nil {
				return err
			}
		}
		return nil
	})
}

// CountDue implements webpush.Store.
func (s *Store) CountDue(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("sqlite store count due: %w", module.ErrClosed)
	}
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM webpush_due`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite store count due: %w", err)
	}
	return n, nil
}
