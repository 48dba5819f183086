package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// sweepBatch is how many users one sweep pipeline visits.
const sweepBatch = 256

// runSweeper removes expired messages every SweepInterval. Every node sweeps; the sweep script
// is atomic per user, so two nodes never count one message twice.
func (s *Store) runSweeper() {
	defer close(s.sweepDone)
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep visits the users whose oldest message has expired, a bounded number of batches per tick.
func (s *Store) sweep() {
	for range 16 {
		select {
		case <-s.quit:
			return
		default:
		}
		n, err := s.sweepOnce()
		if err != nil {
			s.log.Debug("redis store: sweep failed; retried next tick", "err", err)
			return
		}
		if n < sweepBatch {
			return
		}
	}
}

func (s *Store) sweepOnce() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	nowMs := s.now().UnixMilli()
	users, err := s.rdb.ZRangeArgs(ctx, goredis.ZRangeArgs{
		Key: s.keys.Expiry(), Start: "-inf", Stop: strconv.FormatInt(nowMs, 10), ByScore: true, Count: sweepBatch,
	}).Result()
	if err != nil || len(users) == 0 {
		return 0, err
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(users))
	for i, u := range users {
		keys := append(s.userKeys(u), s.keys.Expiry())
		cmds[i] = s.scripts.sweep.EvalSha(ctx, pipe, keys, nowMs, s.opts.MaxPerUser, u)
	}
	_, _ = pipe.Exec(ctx)
	var expired, trimmed int64
	reload := false
	for _, c := range cmds {
		if isNoScript(c.Err()) {
			reload = true // not run: the user stays indexed and is visited again
			continue
		}
		res, err := c.Int64Slice()
		if err != nil || len(res) != 2 {
			continue
		}
		expired += res[0]
		trimmed += res[1]
	}
	if expired > 0 {
		s.opts.Metrics.Expired.Add(float64(expired))
	}
	if trimmed > 0 {
		s.opts.Metrics.Trimmed.Add(float64(trimmed))
	}
	if reload {
		if err := s.scripts.sweep.Load(ctx, s.rdb).Err(); err != nil {
			return 0, err
		}
	}
	return len(users), nil
}
