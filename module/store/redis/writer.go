package redis

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"pushlane/module"
)

type opKind uint8

const (
	opAppend  opKind = iota + 1
	opBarrier        // send the queued marks, nothing else
	opProbe          // the health probe: a small write through the commit path
)

// op is one request to the writer; done is closed once it is committed or failed.
type op struct {
	kind   opKind
	drafts []module.Draft
	idem   *module.IdempotencyKey // AppendOnce: record the key in the same script
	probe  int                    // opProbe: bytes to write

	msgs     []module.Message          // opAppend result
	existing *module.IdempotencyRecord // AppendOnce: the record that was already there
	err      error
	done     chan struct{}
}

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
				if len(batch) == 0 && s.marks.pending.Load() == 0 {
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

// call is one script call of a pipeline: an append, a probe or one user's marks.
type call struct {
	o      *op // nil for marks
	script *goredis.Script
	keys   []string
	args   []any
	msgs   []module.Message // append: ids filled from the reply
	cmd    *goredis.Cmd
}

// commit sends the batch and the queued marks as one pipeline, hands the new messages to the
// commit hook in the order Redis ran them, and answers every op.
func (s *Store) commit(batch []*op) {
	byUser, nMarks := s.marks.take()
	if len(batch) == 0 && nMarks == 0 {
		return
	}
	defer s.marks.pending.Add(-int64(nMarks))
	start := time.Now()
	nowMs := s.now().UnixMilli()
	var calls []*call
	for _, o := range batch {
		switch o.kind {
		case opAppend:
			calls = append(calls, s.appendCall(o, nowMs))
		case opProbe:
			payload := strconv.FormatInt(nowMs, 10) + strings.Repeat("-", o.probe)
			calls = append(calls, &call{o: o, script: s.scripts.probe, keys: []string{s.keys.Probe()}, args: []any{payload}})
		}
	}
	for _, m := range s.markCalls(byUser, nowMs) {
		calls = append(calls, &call{script: s.scripts.mark, keys: m.keys, args: m.args})
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	var appended []module.Message
	var commitErr error
	failBytes := 0
	committed := false
	pending := calls
	for attempt := 0; len(pending) > 0; attempt++ {
		pipe := s.rdb.Pipeline()
		for _, c := range pending {
			c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
		var noScript []*call
		for _, c := range pending {
			err := c.cmd.Err()
			if isNoScript(err) && attempt == 0 {
				noScript = append(noScript, c) // not run: safe to send again
				continue
			}
			if c.o == nil {
				if err != nil {
					// A lost mark only means a message may be sent again as pending, or shows
					// an older status.
					s.log.Warn("redis store: status marks not saved", "err", err)
				} else {
					s.countStatusChanges(c.cmd)
				}
				continue
			}
			if err == nil && c.o.kind == opAppend {
				err = c.fill(s.opts.Metrics)
			}
			if err != nil {
				c.o.err = fmt.Errorf("commit: %w", err)
				commitErr = c.o.err
				failBytes = max(failBytes, c.bytes())
				continue
			}
			committed = true
			if c.o.kind == opAppend && c.o.existing == nil {
				c.o.msgs = c.msgs
				appended = append(appended, c.msgs...)
			}
		}
		if len(noScript) == 0 {
			break
		}
		// Redis restarted or its script cache was flushed: load the scripts and send the
		// commands that did not run. Redis ran the others first, and so does the hook.
		if err := s.loadScripts(ctx, noScript); err != nil {
			for _, c := range noScript {
				if c.o != nil {
					c.o.err = fmt.Errorf("commit: load scripts: %w", err)
					commitErr = c.o.err
					failBytes = max(failBytes, c.bytes())
				}
			}
			break
		}
		pending = noScript
	}
	s.opts.Metrics.StoreLatency.WithLabelValues("commit").Observe(time.Since(start).Seconds())
	if commitErr != nil || committed {
		// The last commit's outcome, for Health: a failure is remembered until a later commit
		// (an append or a probe) succeeds. In a mixed batch a failure wins: something failed.
		s.commitMu.Lock()
		s.commitErr, s.failBytes = commitErr, failBytes
		s.commitMu.Unlock()
	}
	if len(appended) > 0 && !s.publish {
		s.opts.OnCommit(appended)
	}
	for _, o := range batch {
		close(o.done)
	}
}

// bytes is how much a call sends: what a probe must write to show that the same would pass.
func (c *call) bytes() int {
	n := 0
	for _, a := range c.args {
		switch v := a.(type) {
		case []byte:
			n += len(v)
		case string:
			n += len(v)
		}
	}
	return n
}

func (s *Store) loadScripts(ctx context.Context, calls []*call) error {
	loaded := map[*goredis.Script]bool{}
	for _, c := range calls {
		if loaded[c.script] {
			continue
		}
		if err := c.script.Load(ctx, s.rdb).Err(); err != nil {
			return err
		}
		loaded[c.script] = true
	}
	return nil
}

func isNoScript(err error) bool { return err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") }

// appendCall prepares one Append as one script call. Data shared by consecutive drafts (a
// publish to many users) is sent once.
func (s *Store) appendCall(o *op, nowMs int64) *call {
	c := &call{o: o, script: s.scripts.append, msgs: make([]module.Message, len(o.drafts))}
	c.keys = make([]string, 0, len(o.drafts)+6)
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
		c.keys = append(c.keys, s.keys.User(d.UserID))
		per = append(per, len(datas), exp-nowMs, d.UserID)
		c.msgs[i] = module.Message{UserID: d.UserID, Data: d.Data, CreatedAt: created, ExpiresAt: time.UnixMilli(exp)}
	}
	record := ""
	if o.idem != nil {
		record = s.keys.Idempotency(o.idem.Scope, o.idem.Key)
	}
	c.keys = append(c.keys, s.keys.Expiry(), s.keys.Epoch(), s.keys.Floor(), record, s.keys.WebPushUsers(), s.keys.WebPushDue())
	channel := ""
	if s.publish {
		channel = s.keys.UserChannelPrefix()
	}
	pushDelay := "" // Web Push off
	if s.opts.WebPush != nil {
		pushDelay = strconv.FormatInt(s.opts.WebPush.Delay.Milliseconds(), 10)
	}
	c.args = make([]any, 0, 8+len(datas)+len(per))
	c.args = append(c.args, nowMs, s.opts.MaxPerUser, channel, newEpoch(), len(datas), pushDelay)
	c.args = append(c.args, datas...)
	c.args = append(c.args, per...)
	if o.idem != nil {
		c.args = append(c.args, o.idem.Fingerprint, max(o.idem.Window.Milliseconds(), 1))
	}
	return c
}

// fill takes the ids from the script's reply (or the idempotency record that was already
// there) and counts what the trimming removed.
func (c *call) fill(m *module.Metrics) error {
	res, err := c.cmd.Slice()
	if err != nil {
		return err
	}
	if len(res) == 0 {
		return fmt.Errorf("append script returned nothing")
	}
	if kind, _ := res[0].(int64); kind == 2 {
		rec, err := recordOf(res[1:])
		if err != nil {
			return err
		}
		c.o.existing = rec
		return nil
	}
	if len(res) != len(c.msgs)+2 {
		return fmt.Errorf("append script returned %d values for %d drafts", len(res), len(c.msgs))
	}
	for i := range c.msgs {
		id, _ := res[i+1].(int64)
		if id <= 0 {
			return fmt.Errorf("append script returned id %v", res[i+1])
		}
		c.msgs[i].ID = uint64(id)
	}
	if t, _ := res[len(res)-1].(int64); t > 0 {
		m.Trimmed.Add(float64(t))
	}
	return nil
}

// recordOf reads an idempotency record from fingerprint, results and body (nil when absent).
// Results are "user id" pairs separated by spaces (userIds hold no spaces).
func recordOf(f []any) (*module.IdempotencyRecord, error) {
	if len(f) != 3 {
		return nil, fmt.Errorf("idempotency record of %d fields", len(f))
	}
	fp, _ := f[0].(string)
	results, _ := f[1].(string)
	rec := &module.IdempotencyRecord{Fingerprint: fp}
	words := strings.Fields(results)
	if len(words)%2 != 0 {
		return nil, fmt.Errorf("idempotency record results %q", results)
	}
	for i := 0; i < len(words); i += 2 {
		id, err := strconv.ParseUint(words[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("idempotency record results %q: %w", results, err)
		}
		rec.Results = append(rec.Results, module.IdempotentResult{UserID: words[i], ID: id})
	}
	if body, ok := f[2].(string); ok {
		rec.Body = []byte(body)
	}
	return rec, nil
}

// countStatusChanges adds what a mark script changed ({cursor, sent, acked, pushed}) to the
// metrics.
func (s *Store) countStatusChanges(cmd *goredis.Cmd) {
	v, err := cmd.Int64Slice()
	if err != nil || len(v) != 4 {
		return
	}
	m := s.opts.Metrics.StatusChanges
	for i, status := range [...]string{"sent", "acked", "pushed"} {
		if v[i+1] > 0 {
			m.WithLabelValues(status).Add(float64(v[i+1]))
		}
	}
}
