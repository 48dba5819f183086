package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"pushlane/module"
)

func testBacklogSince(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 10)
	e.appendN("other", 3)
	e.expectBacklog("u", module.BacklogQuery{}, msgs)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID}, msgs[5:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[9].ID}, nil)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[9].ID + 1_000_000}, nil)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[0].ID - 1}, msgs)
	e.expectBacklog("u", module.BacklogQuery{Limit: 3}, msgs[:3])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[6].ID, Limit: 100}, msgs[7:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[2].ID, Limit: 2}, msgs[3:5])
	e.expectBacklog("nobody", module.BacklogQuery{}, nil)
	e.expectBacklog("nobody", e.pq("nobody"), nil)
}

func testBacklogPending(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 6)
	e.expectBacklog("u", e.pq("u"), msgs)
	e.s.MarkWritten("u", idsOf(msgs, 0, 1, 4), true, time.Now())
	// Backlog with Pending sees every mark made before it was called: no waiting.
	e.expectBacklog("u", e.pq("u"), pick(msgs, 2, 3, 5))
	e.expectBacklog("u", e.pqLimit("u", 2), pick(msgs, 2, 3))
	// Since replays do not care about delivery.
	e.expectBacklog("u", module.BacklogQuery{}, msgs)
	e.expectStats("u", module.UserStats{Stored: 6, Pending: 3})
	e.s.MarkWritten("u", idsOf(msgs, 2, 3, 5), true, time.Now())
	e.expectBacklog("u", e.pq("u"), nil)
	e.expectStats("u", module.UserStats{Stored: 6, Pending: 0})
}

func testBacklogPendingAndSince(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 8)
	e.s.MarkWritten("u", idsOf(msgs, 0, 1, 4, 6), true, time.Now())
	// Undelivered at or below Since (2, 3), plus everything above Since (4..7, delivered or not).
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[3].ID, Pending: true}, msgs[2:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID, Pending: true}, pick(msgs, 2, 3, 5, 6, 7))
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[7].ID, Pending: true}, pick(msgs, 2, 3, 5, 7))
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[1].ID, Pending: true}, msgs[2:])
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID, Pending: true, Limit: 3}, pick(msgs, 2, 3, 5))
	// Since 0 selects everything anyway: Pending only adds messages at or below Since.
	e.expectBacklog("u", module.BacklogQuery{Pending: true}, msgs)
	// Without Pending the same Since is a plain replay.
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[4].ID}, msgs[5:])
}

func testBacklogAfterPaging(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 25)
	e.appendN("v", 5)
	var delivered []uint64
	var undelivered []module.Message
	for i, m := range msgs {
		if i%3 == 0 {
			delivered = append(delivered, m.ID)
		} else {
			undelivered = append(undelivered, m)
		}
	}
	e.s.MarkWritten("u", delivered, true, time.Now())

	page := func(q module.BacklogQuery, limit int) []module.Message {
		t.Helper()
		var out []module.Message
		q.Limit = limit
		for range 100 {
			got := e.backlog("u", q)
			if len(got) > limit {
				t.Fatalf("page of %d messages with Limit %d", len(got), limit)
			}
			if len(got) == 0 {
				return out
			}
			if got[0].ID <= q.After {
				t.Fatalf("page after %d starts at %d", q.After, got[0].ID)
			}
			out = append(out, got...)
			q.After = got[len(got)-1].ID
		}
		t.Fatal("paging does not end")
		return nil
	}
	check := func(name string, got, want []module.Message) {
		t.Helper()
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("%s: paged ids %v, want %v", name, ids(got), ids(want))
		}
	}
	check("since 0, limit 4", page(module.BacklogQuery{}, 4), msgs)
	check("since 0, limit 1", page(module.BacklogQuery{}, 1), msgs)
	check("since 0, limit 25", page(module.BacklogQuery{}, 25), msgs)
	check("pending, limit 4", page(e.pq("u"), 4), undelivered)
	// Pending + Since: undelivered up to msgs[12], everything above.
	var union []module.Message
	for i, m := range msgs {
		if i > 12 || i%3 != 0 {
			union = append(union, m)
		}
	}
	check("pending since 12, limit 4", page(module.BacklogQuery{Pending: true, Since: msgs[12].ID}, 4), union)
	check("since 10, limit 3", page(module.BacklogQuery{Since: msgs[10].ID}, 3), msgs[11:])
	// After without a limit: everything above the cursor.
	e.expectBacklog("u", module.BacklogQuery{After: msgs[10].ID}, msgs[11:])
	// After wins over Since: nothing at or below After, even when Since is lower.
	e.expectBacklog("u", module.BacklogQuery{After: msgs[20].ID, Since: msgs[5].ID}, msgs[21:])
	e.expectBacklog("u", module.BacklogQuery{After: msgs[20].ID, Since: msgs[24].ID, Pending: true}, pick(msgs, 22, 23))
	e.expectBacklog("u", module.BacklogQuery{After: msgs[24].ID}, nil)
}

func testMarkWritten(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 5)
	other := e.appendN("v", 2)
	e.s.MarkWritten("u", nil, true, time.Now())
	e.s.MarkWritten("u", []uint64{}, true, time.Now())
	// Unknown ids are ignored. (Marks name the connection's own user's ids; whether a store
	// checks the user is not part of the contract: ids are only ever marked by their owner.)
	e.s.MarkWritten("nobody", []uint64{other[1].ID + 1_000_000}, true, time.Now())
	e.s.MarkWritten("u", []uint64{other[1].ID + 1_000_000, other[1].ID + 2_000_000}, true, time.Now())
	e.expectBacklog("u", e.pq("u"), msgs)

	e.s.MarkWritten("u", idsOf(msgs, 1), true, time.Now())
	e.s.MarkWritten("u", idsOf(msgs, 1, 3), true, time.Now()) // marking twice is harmless
	e.s.MarkWritten("u", idsOf(msgs, 3), true, time.Now())
	e.expectBacklog("u", e.pq("u"), pick(msgs, 0, 2, 4))
	e.expectStats("u", module.UserStats{Stored: 5, Pending: 3})
	// Still replayed by Since and After, still counted as stored.
	e.expectBacklog("u", module.BacklogQuery{}, msgs)
	e.expectBacklog("u", module.BacklogQuery{Since: msgs[0].ID}, msgs[1:])
	// Other users are untouched.
	e.expectBacklog("v", e.pq("v"), other)
	e.expectStats("v", module.UserStats{Stored: 2, Pending: 2})

	// Many concurrent marks: all of them are seen by the next pending read.
	big := e.appendN("w", 200)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(big); i += 8 {
				if i%10 != 9 {
					e.s.MarkWritten("w", []uint64{big[i].ID}, true, time.Now())
				}
			}
		}()
	}
	waitGroup(t, &wg, 10*time.Second, "the markers")
	var want []module.Message
	for i, m := range big {
		if i%10 == 9 {
			want = append(want, m)
		}
	}
	e.expectBacklog("w", e.pq("w"), want)
	e.expectStats("w", module.UserStats{Stored: 200, Pending: 20})
}
