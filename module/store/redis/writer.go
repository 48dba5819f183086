package redis

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
)

type opKind uint8

const (
	opAppend  opKind = iota + 1
	opBarrier        // send the queued marks, nothing else
)

// op is one request to the writer; done is closed once it is committed or failed.
type op struct {
	kind   opKind
	drafts []module.Draft

	msgs []module.Message // opAppend result
	err  error
	done chan struct{}
}

// keyGrace is how long a user's stream outlives its longest-lived message, so that a sweeper
// counts the expired messages before Redis drops the key (which only happens when no node sweeps).
const keyGrace = 30 * time.Second

// maxBatchDrafts bounds one pipeline. Batches form by themselves: while one pipeline is on the
// wire, new ops queue, and the next pipeline takes all of them.
const maxBatchDrafts = 4096

func (s *Store) runWriter() {
	defer close(s.writerDone)
	for {
		var batch []*op
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.wake:
		case <-s.quit:
			// Close holds off new submits before quit is closed: what is queued now is all.
			for {
				batch = s.gather(batch)
				if len(batch) == 0 && s.marksPending.Load() == 0 {
					return
				}
				s.commit(batch)
				batch = nil
			}
		}
		s.commit(s.gather(batch))
	}
}

// gather takes whatever else is queued, up to the batch bound.
func (s *Store) gather(batch []*op) []*op {
	drafts := 0
	for _, o := range batch {
		drafts += len(o.drafts)
	}
	for drafts < maxBatchDrafts {
		select {
		case o := <-s.ops:
			batch = append(batch, o)
			drafts += len(o.drafts)
		default:
			return batch
		}
	}
	return batch
}

// appendCall is one Append's script call in a pipeline.
type appendCall struct {
	o    *op
	keys []string
	args []any
	msgs []module.Message // ids filled from the reply
	cmd  *goredis.Cmd
}

type markCall struct {
	keys []string
	args []any
	cmd  *goredis.Cmd
}

// commit sends the batch and the queued marks as one pipeline, hands the new messages to the
// commit hook in the order Redis ran them, and answers every op.
func (s *Store) commit(batch []*op) {
	marks, nMarks := s.takeMarks()
	if len(batch) == 0 && nMarks == 0 {
		return
	}
	defer s.marksPending.Add(-int64(nMarks))
	start := time.Now()
	nowMs := s.now().UnixMilli()
	var calls []*appendCall
	for _, o := range batch {
		if o.kind == opAppend {
			calls = append(calls, s.appendCall(o, nowMs))
		}
	}
	markCalls := s.markCalls(marks)

	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var appended []module.Message
	pending := calls
	for attempt := 0; len(pending) > 0 || len(markCalls) > 0; attempt++ {
		pipe := s.rdb.Pipeline()
		for _, c := range pending {
			c.cmd = s.scripts.append.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		for _, m := range markCalls {
			m.cmd = s.scripts.mark.EvalSha(ctx, pipe, m.keys, m.args...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
		var noScript []*appendCall
		for _, c := range pending {
			err := c.cmd.Err()
			if isNoScript(err) && attempt == 0 {
				noScript = append(noScript, c) // not run: safe to send again
				continue
			}
			if err == nil {
				err = c.fill(s.opts.Metrics)
			}
			if err != nil {
				c.o.err = fmt.Errorf("commit: %w", err)
				continue
			}
			c.o.msgs = c.msgs
			appended = append(appended, c.msgs...)
		}
		var markRetry []*markCall
		for _, m := range markCalls {
			if err := m.cmd.Err(); isNoScript(err) && attempt == 0 {
				markRetry = append(markRetry, m)
			} else if err != nil {
				// A lost mark only means the message may be sent again as pending.
				s.log.Warn("redis store: delivery marks not saved", "err", err)
			}
		}
		if len(noScript) == 0 && len(markRetry) == 0 {
			break
		}
		// Redis restarted or its script cache was flushed: load the scripts and send the
		// commands that did not run. Redis ran the others first, and so does the hook.
		if err := s.loadScripts(ctx); err != nil {
			for _, c := range noScript {
				c.o.err = fmt.Errorf("commit: load scripts: %w", err)
			}
			break
		}
		pending, markCalls = noScript, markRetry
	}
	s.opts.Metrics.StoreLatency.WithLabelValues("commit").Observe(time.Since(start).Seconds())
	if len(appended) > 0 && !s.publish {
		s.opts.OnCommit(appended)
	}
	for _, o := range batch {
		close(o.done)
	}
}

func (s *Store) loadScripts(ctx context.Context) error {
	for _, sc := range []*goredis.Script{s.scripts.append, s.scripts.mark} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return err
		}
	}
	return nil
}

func isNoScript(err error) bool { return err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") }

// appendCall prepares one Append as one script call. Data shared by consecutive drafts (a
// publish to many users) is sent once.
func (s *Store) appendCall(o *op, nowMs int64) *appendCall {
	c := &appendCall{o: o, msgs: make([]module.Message, len(o.drafts))}
	c.keys = make([]string, 0, 4*len(o.drafts)+1)
	var datas []any
	per := make([]any, 0, 3*len(o.drafts))
	created := time.UnixMilli(nowMs)
	var prev []byte
	for i, d := range o.drafts {
		if i == 0 || !bytes.Equal(d.Data, prev) {
			datas = append(datas, []byte(d.Data))
			prev = d.Data
		}
		exp := module.ExpiresAt(created, d.TTL).UnixMilli()
		c.keys = append(c.keys, s.userKeys(d.UserID)...)
		per = append(per, len(datas), exp, d.UserID)
		c.msgs[i] = module.Message{UserID: d.UserID, Data: d.Data, CreatedAt: created, ExpiresAt: time.UnixMilli(exp)}
	}
	c.keys = append(c.keys, s.keys.Expiry())
	channel := ""
	if s.publish {
		channel = s.keys.UserChannelPrefix()
	}
	c.args = make([]any, 0, 4+len(datas)+len(per))
	c.args = append(c.args, nowMs, s.opts.MaxPerUser, channel, len(datas))
	c.args = append(c.args, datas...)
	c.args = append(c.args, per...)
	c.args = append(c.args, keyGrace.Milliseconds())
	return c
}

// fill takes the ids from the script's reply and counts what the trimming removed.
func (c *appendCall) fill(m *module.Metrics) error {
	res, err := c.cmd.Int64Slice()
	if err != nil {
		return err
	}
	if len(res) != len(c.msgs)+1 {
		return fmt.Errorf("append script returned %d values for %d drafts", len(res), len(c.msgs))
	}
	for i := range c.msgs {
		if res[i] <= 0 {
			return fmt.Errorf("append script returned id %d", res[i])
		}
		c.msgs[i].ID = uint64(res[i])
	}
	if t := res[len(c.msgs)]; t > 0 {
		m.Trimmed.Add(float64(t))
	}
	return nil
}

func (s *Store) markCalls(marks map[string][]uint64) []*markCall {
	out := make([]*markCall, 0, len(marks))
	for user, ids := range marks {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		args := make([]any, 0, len(ids)+1)
		args = append(args, s.opts.MaxPerUser)
		for _, id := range ids {
			args = append(args, id)
		}
		out = append(out, &markCall{keys: s.userKeys(user), args: args})
	}
	return out
}
