package storetest

import (
	"fmt"
	"testing"
	"time"

	"pushlane/module"
)

func testTTLExpiry(t *testing.T, open Opener) {
	// A long sweep interval: reads alone must hide expired messages.
	e := openEnv(t, open, module.StoreOptions{SweepInterval: time.Hour})
	const short = 50 * time.Millisecond
	keep := e.append(draft("u", `"keep-1"`))
	shortMsgs := e.append(
		module.Draft{UserID: "u", Data: []byte(`"short-1"`), TTL: short},
		module.Draft{UserID: "u", Data: []byte(`"short-2"`), TTL: short},
		module.Draft{UserID: "v", Data: []byte(`"short-v"`), TTL: short},
	)
	keep = append(keep, e.append(draft("u", `"keep-2"`))...)
	e.s.MarkWritten("u", idsOf(shortMsgs, 1), true, time.Now())

	expiry := shortMsgs[0].ExpiresAt
	for _, m := range shortMsgs {
		expiry = later(expiry, m.ExpiresAt)
	}
	if time.Now().Add(5 * time.Millisecond).Before(expiry) {
		// Still well before expiry: the short messages are there.
		got := e.backlog("u", module.BacklogQuery{})
		if time.Now().Add(2 * time.Millisecond).Before(expiry) {
			if len(got) != 4 {
				t.Fatalf("before expiry Backlog returned ids %v, want 4 messages", ids(got))
			}
		}
	}
	// Wait out the ttl (bounded by the short ttl itself, not a guess).
	time.Sleep(time.Until(expiry) + 5*time.Millisecond)
	all := module.BacklogQuery{}
	e.expectBacklog("u", all, keep)
	e.expectBacklog("u", e.pq("u"), keep)
	e.expectBacklog("u", module.BacklogQuery{Since: keep[0].ID, Pending: true}, keep)
	e.expectBacklog("u", module.BacklogQuery{After: keep[0].ID}, keep[1:])
	e.expectBacklog("v", all, nil)
	e.expectBacklog("v", e.pq("v"), nil)
	e.expectStats("u", module.UserStats{Stored: 2, Pending: 2})
	e.expectStats("v", module.UserStats{Stored: 0, Pending: 0})
	// Ids keep increasing over expired messages.
	next := e.append(module.Draft{UserID: "v", Data: []byte(`"again"`), TTL: longTTL})
	if next[0].ID <= shortMsgs[2].ID {
		t.Fatalf("id after expiry %d not above the expired %d", next[0].ID, shortMsgs[2].ID)
	}
	e.expectBacklog("v", all, next)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func testSweepRemovesExpired(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{SweepInterval: 10 * time.Millisecond})
	keep := e.append(draft("u", `"keep"`))
	var drafts []module.Draft
	for i := range 5 {
		drafts = append(drafts, module.Draft{UserID: fmt.Sprintf("s%d", i%2), Data: []byte(fmt.Sprint(i)), TTL: 30 * time.Millisecond})
	}
	e.append(drafts...)
	// The sweeper removes them: the expired counter reaches 5 and nothing is left to purge.
	waitFor(t, 5*time.Second, "the sweeper to remove 5 expired messages", func() bool {
		return counterValue(e.metrics.Expired) >= 5
	})
	if v := counterValue(e.metrics.Expired); v != 5 {
		t.Fatalf("expired counter = %v, want 5", v)
	}
	for _, u := range []string{"s0", "s1"} {
		if n := e.purge(u); n != 0 {
			t.Fatalf("Purge(%s) after the sweep = %d, want 0", u, n)
		}
	}
	e.expectBacklog("u", module.BacklogQuery{}, keep)
	e.expectStats("u", module.UserStats{Stored: 1, Pending: 1})
}

// testExpiryCountsOnlyExpired: the expired counter counts messages removed because their ttl
// passed, not the ones trimmed or purged before it did. All of them expire at the same instant
// (one Append), so one sweep step sees them together.
func testExpiryCountsOnlyExpired(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{SweepInterval: 10 * time.Millisecond, MaxPerUser: 2})
	const short = 30 * time.Millisecond
	var drafts []module.Draft
	for _, user := range []string{"t", "t", "t", "t", "t", "p", "p", "k"} {
		ttl := short
		if user == "p" {
			// Purged, not expired: a long ttl keeps the sweeper from taking them first on a slow
			// machine (purge must not count as expiry, whatever the ttl).
			ttl = time.Hour
		}
		drafts = append(drafts, module.Draft{UserID: user, Data: []byte(`1`), TTL: ttl})
	}
	e.append(drafts...) // t: 3 trimmed, 2 kept
	if n := e.purge("p"); n != 2 {
		t.Fatalf("Purge(p) = %d, want 2", n)
	}
	keep := e.append(draft("k", `"keep"`))
	waitFor(t, 10*time.Second, "the sweeper to remove the expired messages", func() bool {
		return counterValue(e.metrics.Expired) >= 3
	})
	if v := counterValue(e.metrics.Expired); v != 3 {
		t.Fatalf("expired counter = %v, want 3 (2 of t, 1 of k; trimmed and purged ones are not expired)", v)
	}
	if v := counterValue(e.metrics.Trimmed); v != 3 {
		t.Fatalf("trimmed counter = %v, want 3", v)
	}
	e.expectBacklog("k", module.BacklogQuery{}, keep)
	e.expectBacklog("t", module.BacklogQuery{}, nil)
}

func testMaxPerUser(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{MaxPerUser: 3})
	a := e.appendN("a", 2)
	e.s.MarkWritten("a", idsOf(a, 0), true, time.Now()) // delivered or not, the oldest go first
	b := e.appendN("b", 2)
	a = append(a, e.appendN("a", 3)...)
	e.expectBacklog("a", module.BacklogQuery{}, a[2:])
	e.expectBacklog("a", e.pq("a"), a[2:])
	e.expectStats("a", module.UserStats{Stored: 3, Pending: 3})
	// Per user: a's trimming leaves b alone, and b's messages did not count against a.
	e.expectBacklog("b", module.BacklogQuery{}, b)
	e.expectStats("b", module.UserStats{Stored: 2, Pending: 2})
	e.s.MarkWritten("a", idsOf(a, 2), true, time.Now())
	a = append(a, e.appendN("a", 1)...)
	e.expectBacklog("a", module.BacklogQuery{}, a[3:])
	e.expectStats("a", module.UserStats{Stored: 3, Pending: 3})
	b = append(b, e.appendN("b", 1)...)
	e.expectBacklog("b", module.BacklogQuery{}, b)
	if n := e.purge("a"); n != 3 {
		t.Fatalf("Purge(a) = %d, want 3 (the trimmed ones are gone)", n)
	}
}

func testMaxPerUserBatch(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{MaxPerUser: 3})
	one := e.append(
		draft("c", "1"), draft("c", "2"), draft("c", "3"), draft("c", "4"), draft("c", "5"),
	)
	e.expectBacklog("c", module.BacklogQuery{}, one[2:])
	mixed := e.append(
		draft("d", "1"), draft("e", "1"), draft("d", "2"), draft("e", "2"),
		draft("d", "3"), draft("e", "3"), draft("d", "4"), draft("e", "4"),
	)
	byUser := perUser(mixed)
	e.expectBacklog("d", module.BacklogQuery{}, byUser["d"][1:])
	e.expectBacklog("e", module.BacklogQuery{}, byUser["e"][1:])
	e.expectStats("d", module.UserStats{Stored: 3, Pending: 3})
	e.expectStats("e", module.UserStats{Stored: 3, Pending: 3})
}
