package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"pushlane/module"
)

// backlogSQL selects a backlog page (BacklogQuery): ?1 user, ?2 after, ?3 now, ?4 since,
// ?5 pending, ?6 limit (-1: none).
const backlogSQL = `SELECT id, data, created_at, expires_at FROM messages
	WHERE user_id = ?1 AND id > ?2 AND expires_at > ?3 AND (id > ?4 OR (?5 AND queued = 1))
	ORDER BY id LIMIT ?6`

// headSQL is the user's newest id: its newest row (expired ones included) or the head saved when
// that row was deleted, whichever is greater.
const headSQL = `SELECT MAX(
	COALESCE((SELECT id FROM messages WHERE user_id = ?1 ORDER BY id DESC LIMIT 1), 0),
	COALESCE((SELECT last_id FROM user_heads WHERE user_id = ?1), 0))`

// Backlog implements module.Store.
func (s *Store) Backlog(ctx context.Context, userID string, q module.BacklogQuery) ([]module.Message, error) {
	if q.Pending {
		if err := s.flushMarks(ctx); err != nil {
			return nil, fmt.Errorf("sqlite store backlog: %w", err)
		}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.backlogStmt.QueryContext(ctx, userID, int64(q.After), s.now().UnixMilli(), int64(q.Since), q.Pending, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store backlog: %w", err)
	}
	defer rows.Close()
	var out []module.Message
	size := 0
	for rows.Next() {
		var id, created, expires int64
		var data []byte
		if err := rows.Scan(&id, &data, &created, &expires); err != nil {
			return nil, fmt.Errorf("sqlite store backlog: scan: %w", err)
		}
		size += len(data)
		out = append(out, module.Message{ID: uint64(id), UserID: userID, Data: data,
			CreatedAt: time.UnixMilli(created), ExpiresAt: time.UnixMilli(expires)})
		if q.MaxBytes > 0 && size >= q.MaxBytes {
			break // the message that reached MaxBytes ends the page; the rest waits for the next
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store backlog: %w", err)
	}
	return out, nil
}

// Head implements module.Store. The user's newest id is the greater of its newest row (expired
// or not) and the id saved when its newest row was deleted; both are read from the committed
// database, and the writer hands messages to the commit hook only after their commit, so Head
// covers every id the hook has received. Cost: one read of two index entries, on connect only;
// appends write nothing for it.
func (s *Store) Head(ctx context.Context, userID string) (module.Head, error) {
	if s.closed.Load() {
		return module.Head{}, fmt.Errorf("sqlite store head: %w", module.ErrClosed)
	}
	var last int64
	// Without ctx's cancellation: with a context that can end, the driver starts a goroutine
	// per query to interrupt it, and database/sql a watcher, which on every connect cost more
	// than the read itself (a few index entries, under the busy timeout like every read).
	err := s.headStmt.QueryRowContext(context.WithoutCancel(ctx), userID).Scan(&last)
	if err != nil {
		return module.Head{}, fmt.Errorf("sqlite store head: %w", err)
	}
	return module.Head{Epoch: s.epoch, LastID: uint64(last)}, nil
}

// Stats implements module.Store.
func (s *Store) Stats(ctx context.Context, userID string) (module.UserStats, error) {
	if err := s.flushMarks(ctx); err != nil {
		return module.UserStats{}, fmt.Errorf("sqlite store stats: %w", err)
	}
	var st module.UserStats
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(queued), 0) FROM messages
		WHERE user_id = ? AND expires_at > ?`, userID, s.now().UnixMilli()).Scan(&st.Stored, &st.Pending)
	if err != nil {
		return st, fmt.Errorf("sqlite store stats: %w", err)
	}
	return st, nil
}

const statusColumns = `id, data, created_at, expires_at, sent_at, acked_at, pushed_at`

// Status implements module.Store.
func (s *Store) Status(ctx context.Context, userID string, id uint64) (module.MessageStatus, error) {
	if err := s.flushMarks(ctx); err != nil {
		return module.MessageStatus{}, fmt.Errorf("sqlite store status: %w", err)
	}
	row := s.read.QueryRowContext(ctx, `SELECT `+statusColumns+` FROM messages
		WHERE user_id = ? AND id = ? AND expires_at > ?`, userID, int64(id), s.now().UnixMilli())
	st, err := scanStatus(row, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("sqlite store status: %w", module.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("sqlite store status: %w", err)
	}
	return st, nil
}

// Statuses implements module.Store. A limit of 0 or less means no limit.
func (s *Store) Statuses(ctx context.Context, userID string, since uint64, limit int) ([]module.MessageStatus, error) {
	if err := s.flushMarks(ctx); err != nil {
		return nil, fmt.Errorf("sqlite store statuses: %w", err)
	}
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+statusColumns+` FROM messages
		WHERE user_id = ? AND id > ? AND expires_at > ? ORDER BY id LIMIT ?`,
		userID, int64(since), s.now().UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite store statuses: %w", err)
	}
	defer rows.Close()
	var out []module.MessageStatus
	for rows.Next() {
		st, err := scanStatus(rows, userID)
		if err != nil {
			return nil, fmt.Errorf("sqlite store statuses: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite store statuses: %w", err)
	}
	return out, nil
}

func scanStatus(row interface{ Scan(...any) error }, userID string) (module.MessageStatus, error) {
	var id, created, expires int64
	var sent, acked, pushed sql.NullInt64
	var data []byte
	if err := row.Scan(&id, &data, &created, &expires, &sent, &acked, &pushed); err != nil {
		return module.MessageStatus{}, err
	}
	return module.MessageStatus{
		Message: module.Message{ID: uint64(id), UserID: userID, Data: data,
			CreatedAt: time.UnixMilli(created), ExpiresAt: time.UnixMilli(expires)},
		SentAt: timeOf(sent), AckedAt: timeOf(acked), PushedAt: timeOf(pushed),
	}, nil
}

func timeOf(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64)
}
