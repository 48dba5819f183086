package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"pushlane/module"
)

// Pusher is the Web Push mark a store may offer before it joins module.Store.
type Pusher interface {
	MarkPushed(userID string, id uint64, at time.Time)
}

func (e *env) status(user string, id uint64) module.MessageStatus {
	e.t.Helper()
	st, err := e.s.Status(e.ctx, user, id)
	if err != nil {
		e.t.Fatalf("Status(%s, %d): %v", user, id, err)
	}
	if st.ID != id || st.UserID != user {
		e.t.Fatalf("Status(%s, %d) returned %s/%d", user, id, st.UserID, st.ID)
	}
	return st
}

func (e *env) expectNotFound(user string, id uint64, why string) {
	e.t.Helper()
	st, err := e.s.Status(e.ctx, user, id)
	if !errors.Is(err, module.ErrNotFound) {
		e.t.Fatalf("Status(%s, %d) of a message %s = %+v, %v; want ErrNotFound", user, id, why, st, err)
	}
}

func (e *env) statuses(user string, since uint64, limit int) []module.MessageStatus {
	e.t.Helper()
	out, err := e.s.Statuses(e.ctx, user, since, limit)
	if err != nil {
		e.t.Fatalf("Statuses(%s, %d, %d): %v", user, since, limit, err)
	}
	return out
}

// ms compares times at the stores' precision: milliseconds (zero stays zero).
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// expectStatus checks a message's status name and timestamps (zero time = not set).
func (e *env) expectStatus(m module.Message, status string, sent, acked time.Time) {
	e.t.Helper()
	st := e.status(m.UserID, m.ID)
	if st.Status() != status || ms(st.SentAt) != ms(sent) || ms(st.AckedAt) != ms(acked) {
		e.t.Fatalf("message %s/%d: status %q sent %v acked %v; want %q sent %v acked %v",
			m.UserID, m.ID, st.Status(), st.SentAt, st.AckedAt, status, sent, acked)
	}
	if !bytes.Equal(st.Data, m.Data) || ms(st.CreatedAt) != ms(m.CreatedAt) || ms(st.ExpiresAt) != ms(m.ExpiresAt) {
		e.t.Fatalf("message %s/%d: status carries data %s created %v expires %v; stored %s %v %v",
			m.UserID, m.ID, st.Data, st.CreatedAt, st.ExpiresAt, m.Data, m.CreatedAt, m.ExpiresAt)
	}
}

// instants returns n distinct times a second apart, at millisecond precision.
func instants(n int) []time.Time {
	base := time.Now().Truncate(time.Millisecond).Add(-time.Hour)
	out := make([]time.Time, n)
	for i := range out {
		out[i] = base.Add(time.Duration(i) * time.Second)
	}
	return out
}

// testStatusTransitions: MarkWritten with dequeue (version 1), without (version 2), Ack, each
// keeping its first time, and how each moves a message in and out of the unread queue.
func testStatusTransitions(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 6)
	other := e.appendN("v", 1)
	at := instants(6)
	var zero time.Time
	for _, m := range msgs {
		e.expectStatus(m, "pending", zero, zero)
	}
	// Version 2 write: sent, still in the queue; a later write keeps the first time.
	e.s.MarkWritten("u", idsOf(msgs, 0), false, at[0])
	e.expectStatus(msgs[0], "sent", at[0], zero)
	e.s.MarkWritten("u", idsOf(msgs, 0), false, at[1])
	e.expectStatus(msgs[0], "sent", at[0], zero)
	e.expectBacklog("u", e.pq("u"), msgs)
	e.expectStats("u", module.UserStats{Stored: 6, Pending: 6})
	// Version 1 write: sent and out of the queue.
	e.s.MarkWritten("u", idsOf(msgs, 1), true, at[1])
	e.expectStatus(msgs[1], "sent", at[1], zero)
	// A version 1 write of a message a version 2 connection was written first keeps the first time
	// and takes it out of the queue.
	e.s.MarkWritten("u", idsOf(msgs, 0), true, at[2])
	e.expectStatus(msgs[0], "sent", at[0], zero)
	e.expectBacklog("u", e.pq("u"), msgs[2:])
	// Ack: acked, out of the queue; the sent time stays, or becomes the ack's when there was none.
	e.s.MarkWritten("u", idsOf(msgs, 2), false, at[2])
	e.s.Ack("u", idsOf(msgs, 2, 3), at[3])
	e.expectStatus(msgs[2], "acked", at[2], at[3])
	e.expectStatus(msgs[3], "acked", at[3], at[3])
	// A second ack and a later write change nothing.
	e.s.Ack("u", idsOf(msgs, 2), at[4])
	e.s.MarkWritten("u", idsOf(msgs, 2, 3), true, at[5])
	e.expectStatus(msgs[2], "acked", at[2], at[3])
	e.expectStatus(msgs[3], "acked", at[3], at[3])
	// An ack of a sent, dequeued message still records it.
	e.s.Ack("u", idsOf(msgs, 1), at[4])
	e.expectStatus(msgs[1], "acked", at[1], at[4])
	e.expectBacklog("u", e.pq("u"), msgs[4:])
	e.expectStats("u", module.UserStats{Stored: 6, Pending: 2})
	// Acks of ids that are not the user's stored messages change nothing: another user's id,
	// unknown ids, an empty list.
	e.s.Ack("v", idsOf(msgs, 4), at[5])
	e.s.Ack("u", []uint64{other[0].ID + 1_000_000}, at[5])
	e.s.Ack("u", nil, at[5])
	e.expectStatus(msgs[4], "pending", zero, zero)
	e.expectStatus(other[0], "pending", zero, zero)
	e.expectBacklog("u", e.pq("u"), msgs[4:])
	e.expectBacklog("v", e.pq("v"), other)
	e.expectStats("v", module.UserStats{Stored: 1, Pending: 1})
	// Statuses, oldest first, with since and limit.
	all := e.statuses("u", 0, 100)
	if len(all) != 6 {
		t.Fatalf("Statuses(u, 0, 100) returned %d messages, want 6", len(all))
	}
	wantNames := []string{"sent", "acked", "acked", "acked", "pending", "pending"}
	for i, st := range all {
		if st.ID != msgs[i].ID || st.UserID != "u" || st.Status() != wantNames[i] || !bytes.Equal(st.Data, msgs[i].Data) {
			t.Fatalf("Statuses(u)[%d] = %s/%d %q %s, want %s/%d %q %s", i, st.UserID, st.ID, st.Status(), st.Data,
				"u", msgs[i].ID, wantNames[i], msgs[i].Data)
		}
	}
	if ms(all[0].SentAt) != ms(at[0]) || ms(all[3].AckedAt) != ms(at[3]) {
		t.Fatalf("Statuses(u) times: sent %v acked %v; want %v, %v", all[0].SentAt, all[3].AckedAt, at[0], at[3])
	}
	page := e.statuses("u", msgs[1].ID, 2)
	if len(page) != 2 || page[0].ID != msgs[2].ID || page[1].ID != msgs[3].ID {
		t.Fatalf("Statuses(u, %d, 2) = %v, want ids %v", msgs[1].ID, statusIDs(page), idsOf(msgs, 2, 3))
	}
	if rest := e.statuses("u", msgs[5].ID, 10); len(rest) != 0 {
		t.Fatalf("Statuses after the newest id = %v, want none", statusIDs(rest))
	}
	if none := e.statuses("nobody", 0, 10); len(none) != 0 {
		t.Fatalf("Statuses(nobody) = %v, want none", statusIDs(none))
	}
}

func statusIDs(sts []module.MessageStatus) []uint64 {
	out := make([]uint64, len(sts))
	for i, st := range sts {
		out[i] = st.ID
	}
	return out
}

// testStatusNotFound: Status answers ErrNotFound for every message that is not stored, and
// Statuses leaves them out.
func testStatusNotFound(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{MaxPerUser: 2, SweepInterval: time.Hour})
	u := e.appendN("u", 3) // the first is trimmed
	v := e.appendN("v", 1)
	short := e.append(module.Draft{UserID: "x", Data: []byte(`1`), TTL: 30 * time.Millisecond})
	p := e.appendN("p", 1)
	e.purge("p")
	e.expectNotFound("u", u[0].ID, "trimmed by maxPerUser")
	e.expectNotFound("p", p[0].ID, "purged")
	e.expectNotFound("u", u[2].ID+1_000_000, "never stored")
	e.expectNotFound("nobody", 1, "of an unknown user")
	e.expectNotFound("v", u[2].ID, "of another user")
	e.expectNotFound("u", v[0].ID, "of another user")
	waitFor(t, 10*time.Second, "the short ttl to pass", func() bool { return time.Now().After(short[0].ExpiresAt) })
	e.expectNotFound("x", short[0].ID, "expired")
	if sts := e.statuses("x", 0, 10); len(sts) != 0 {
		t.Fatalf("Statuses(x) lists expired messages: %v", statusIDs(sts))
	}
	if sts := e.statuses("u", 0, 10); len(sts) != 2 || sts[0].ID != u[1].ID {
		t.Fatalf("Statuses(u) = %v, want %v", statusIDs(sts), idsOf(u, 1, 2))
	}
}

// testMarksConcurrent: marks and acks from many goroutines all land, and reads see each of them.
func testMarksConcurrent(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 120)
	at := instants(3)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(msgs); i += 6 {
				switch i % 4 {
				case 0: // written to a version 2 connection, then acked
					e.s.MarkWritten("u", idsOf(msgs, i), false, at[0])
					e.s.Ack("u", idsOf(msgs, i), at[1])
				case 1: // written to a version 1 connection
					e.s.MarkWritten("u", idsOf(msgs, i), true, at[0])
				case 2: // written to a version 2 connection only: still pending
					e.s.MarkWritten("u", idsOf(msgs, i), false, at[2])
				}
			}
		}()
	}
	waitGroup(t, &wg, 20*time.Second, "the markers")
	var queue []module.Message
	for i, m := range msgs {
		if i%4 >= 2 {
			queue = append(queue, m)
		}
	}
	e.expectBacklog("u", e.pq("u"), queue)
	e.expectStats("u", module.UserStats{Stored: 120, Pending: 60})
	sts := e.statuses("u", 0, 1000)
	if len(sts) != 120 {
		t.Fatalf("Statuses returned %d messages, want 120", len(sts))
	}
	for i, st := range sts {
		want := []string{"acked", "sent", "sent", "pending"}[i%4]
		if st.Status() != want {
			t.Fatalf("message %d (%d) is %q, want %q", i, st.ID, st.Status(), want)
		}
	}
}

// testMarkPushed: stores that offer MarkPushed keep its first time; it does not change the
// status name or the unread queue.
func testMarkPushed(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	p, ok := e.s.(Pusher)
	if !ok {
		t.Skip("this store has no MarkPushed yet")
	}
	msgs := e.appendN("u", 2)
	other := e.appendN("v", 1)
	at := instants(2)
	p.MarkPushed("u", msgs[0].ID, at[0])
	p.MarkPushed("u", msgs[0].ID, at[1])
	p.MarkPushed("v", msgs[1].ID, at[1])            // another user's id
	p.MarkPushed("u", other[0].ID+1_000_000, at[1]) // unknown
	st := e.status("u", msgs[0].ID)
	if ms(st.PushedAt) != ms(at[0]) || st.Status() != "pending" {
		t.Fatalf("after MarkPushed: pushed %v status %q; want %v, pending", st.PushedAt, st.Status(), at[0])
	}
	if st := e.status("u", msgs[1].ID); !st.PushedAt.IsZero() {
		t.Fatalf("MarkPushed by another user set pushedAt %v", st.PushedAt)
	}
	e.expectBacklog("u", e.pq("u"), msgs)
	if st := e.statuses("u", 0, 10); len(st) != 2 || ms(st[0].PushedAt) != ms(at[0]) {
		t.Fatalf("Statuses(u) = %+v, want pushedAt %v on the first", st, at[0])
	}
}

// testBacklogMaxBytes: the message that takes a page's data to MaxBytes or beyond ends the page
// (so a page holds at least one message and at most MaxBytes plus one), and paging with After
// covers everything in order.
func testBacklogMaxBytes(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	sizes := []int{10, 10, 100, 10, 1000, 10, 10, 50, 50, 50, 3000, 3000, 10}
	var msgs []module.Message
	for i, n := range sizes {
		data := fmt.Sprintf(`"%s"`, bytes.Repeat([]byte{byte('a' + i)}, n-2))
		msgs = append(msgs, e.append(draft("u", data))...)
	}
	e.appendN("v", 3)
	e.s.MarkWritten("u", idsOf(msgs, 0, 2, 4), true, time.Now())
	// expected pages: greedy by bytes and count.
	pages := func(sel []module.Message, limit, maxBytes int) [][]uint64 {
		var out [][]uint64
		var cur []uint64
		sum := 0
		for _, m := range sel {
			cur = append(cur, m.ID)
			sum += len(m.Data)
			if (limit > 0 && len(cur) == limit) || (maxBytes > 0 && sum >= maxBytes) {
				out = append(out, cur)
				cur, sum = nil, 0
			}
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
		return out
	}
	queued := pick(msgs, 1, 3, 5, 6, 7, 8, 9, 10, 11, 12)
	for _, tc := range []struct {
		name            string
		q               module.BacklogQuery
		sel             []module.Message
		limit, maxBytes int
	}{
		{"all, 120 bytes", module.BacklogQuery{}, msgs, 0, 120},
		{"all, 5 bytes (one per page)", module.BacklogQuery{}, msgs, 0, 5},
		{"all, 3000 bytes, 3 per page", module.BacklogQuery{}, msgs, 3, 3000},
		{"all, 6000 bytes, 2 per page", module.BacklogQuery{}, msgs, 2, 6000},
		{"since, 200 bytes", module.BacklogQuery{Since: msgs[3].ID}, msgs[4:], 0, 200},
		{"pending, 100 bytes", module.BacklogQuery{Since: msgs[12].ID, Pending: true}, queued, 0, 100},
		{"pending and since, 1100 bytes", module.BacklogQuery{Since: msgs[5].ID, Pending: true}, pick(msgs, 1, 3, 5, 6, 7, 8, 9, 10, 11, 12), 0, 1100},
	} {
		want := pages(tc.sel, tc.limit, tc.maxBytes)
		q := tc.q
		q.Limit, q.MaxBytes = tc.limit, tc.maxBytes
		for i, wantPage := range want {
			got := ids(e.backlog("u", q))
			if fmt.Sprint(got) != fmt.Sprint(wantPage) {
				t.Fatalf("%s: page %d = %v, want %v (pages %v)", tc.name, i, got, wantPage, want)
			}
			q.After = got[len(got)-1]
		}
		if rest := e.backlog("u", q); len(rest) != 0 {
			t.Fatalf("%s: after the last page Backlog returned %v", tc.name, ids(rest))
		}
	}
}
