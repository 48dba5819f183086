package pebble

import (
	"context"
	"fmt"

	cpebble "github.com/cockroachdb/pebble/v2"

	"pushlane/module"
)

// eachMessage calls fn for the user's stored messages with id > after, in id order, until fn
// returns false. Records are valid only during the call.
func (s *Store) eachMessage(userID string, after uint64, fn func(id uint64, r *messageRecord) (bool, error)) error {
	return s.reading(func() error {
		prefix := userKey(nil, kindMessage, userID)
		it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)})
		if err != nil {
			return err
		}
		for ok := it.SeekGE(messageKey(nil, userID, after+1)); ok; ok = it.Next() {
			id, err := decodeMessageKey(it.Key())
			if err != nil {
				_ = it.Close()
				return err
			}
			if id <= after { // after+1 wrapped around to 0
				continue
			}
			v, err := it.ValueAndErr()
			if err != nil {
				_ = it.Close()
				return err
			}
			rec, err := decodeMessage(v)
			if err != nil {
				_ = it.Close()
				return fmt.Errorf("message %d: %w", id, err)
			}
			more, err := fn(id, &rec)
			if err != nil || !more {
				_ = it.Close()
				return err
			}
		}
		return it.Close()
	})
}

// Backlog implements module.Store.
func (s *Store) Backlog(ctx context.Context, userID string, q module.BacklogQuery) ([]module.Message, error) {
	if q.Pending {
		if err := s.flushMarks(ctx); err != nil {
			return nil, fmt.Errorf("pebble store backlog: %w", err)
		}
	}
	start := q.After
	if !q.Pending {
		start = max(q.After, q.Since) // nothing at or below since is selected
	}
	nowMs := s.now().UnixMilli()
	var out []module.Message
	size := 0
	err := s.eachMessage(userID, start, func(id uint64, r *messageRecord) (bool, error) {
		if r.expires <= nowMs || !q.Selects(id, r.queued) {
			return true, nil
		}
		if q.MaxBytes > 0 && len(out) > 0 && size+len(r.data) > q.MaxBytes {
			return false, nil // at least one message per page; the rest waits for the next page
		}
		size += len(r.data)
		out = append(out, r.message(userID, id))
		return q.Limit <= 0 || len(out) < q.Limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebble store backlog: %w", err)
	}
	return out, nil
}

// Head implements module.Store: the user's state holds its newest id, written in the batch that
// assigned it, which is committed before the commit hook sees the message.
func (s *Store) Head(_ context.Context, userID string) (module.Head, error) {
	var st userState
	err := s.reading(func() error {
		v, err := s.get(userKey(nil, kindUser, userID))
		if err != nil || v == nil {
			return err
		}
		st, err = decodeUser(v)
		return err
	})
	if err != nil {
		return module.Head{}, fmt.Errorf("pebble store head: %w", err)
	}
	return module.Head{Epoch: s.epoch, LastID: st.lastID}, nil
}

// Stats implements module.Store.
func (s *Store) Stats(ctx context.Context, userID string) (module.UserStats, error) {
	if err := s.flushMarks(ctx); err != nil {
		return module.UserStats{}, fmt.Errorf("pebble store stats: %w", err)
	}
	var st module.UserStats
	nowMs := s.now().UnixMilli()
	err := s.eachMessage(userID, 0, func(_ uint64, r *messageRecord) (bool, error) {
		if r.expires > nowMs {
			st.Stored++
			if r.queued {
				st.Pending++
			}
		}
		return true, nil
	})
	if err != nil {
		return module.UserStats{}, fmt.Errorf("pebble store stats: %w", err)
	}
	return st, nil
}

// Status implements module.Store.
func (s *Store) Status(ctx context.Context, userID string, id uint64) (module.MessageStatus, error) {
	if err := s.flushMarks(ctx); err != nil {
		return module.MessageStatus{}, fmt.Errorf("pebble store status: %w", err)
	}
	var st module.MessageStatus
	found := false
	err := s.reading(func() error {
		v, err := s.get(messageKey(nil, userID, id))
		if err != nil || v == nil {
			return err
		}
		rec, err := decodeMessage(v)
		if err != nil {
			return fmt.Errorf("message %d: %w", id, err)
		}
		if rec.expires > s.now().UnixMilli() {
			st, found = rec.status(userID, id), true
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("pebble store status: %w", err)
	}
	if !found {
		return st, fmt.Errorf("pebble store status: %w", module.ErrNotFound)
	}
	return st, nil
}

// Statuses implements module.Store. A limit of 0 or less means no limit.
func (s *Store) Statuses(ctx context.Context, userID string, since uint64, limit int) ([]module.MessageStatus, error) {
	if err := s.flushMarks(ctx); err != nil {
		return nil, fmt.Errorf("pebble store statuses: %w", err)
	}
	nowMs := s.now().UnixMilli()
	var out []module.MessageStatus
	err := s.eachMessage(userID, since, func(id uint64, r *messageRecord) (bool, error) {
		if r.expires > nowMs {
			out = append(out, r.status(userID, id))
		}
		return limit <= 0 || len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebble store statuses: %w", err)
	}
	return out, nil
}
