package storetest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"pushlane/module"
)

func testAppendIncreasing(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var prev uint64
	for i := range 30 {
		before := time.Now()
		ttl := time.Duration(i+1) * time.Minute
		msgs := e.append(module.Draft{UserID: "u1", Data: []byte(fmt.Sprintf(`{"n":%d}`, i)), TTL: ttl})
		after := time.Now()
		m := msgs[0]
		if m.ID <= prev {
			t.Fatalf("append %d: id %d is not greater than the previous %d", i, m.ID, prev)
		}
		prev = m.ID
		// CreatedAt is "now", at millisecond precision at least.
		if m.CreatedAt.Before(before.Add(-time.Millisecond)) || m.CreatedAt.After(after.Add(time.Millisecond)) {
			t.Fatalf("append %d: CreatedAt %v outside [%v, %v]", i, m.CreatedAt, before, after)
		}
		if d := m.ExpiresAt.Sub(m.CreatedAt) - ttl; d < -time.Second || d > time.Second {
			t.Fatalf("append %d: ExpiresAt-CreatedAt = %v, want the ttl %v", i, m.ExpiresAt.Sub(m.CreatedAt), ttl)
		}
	}
	// The stored copy carries the same id, data, and timestamps (to the millisecond).
	stored := e.backlog("u1", module.BacklogQuery{})
	if len(stored) != 30 || stored[29].ID != prev {
		t.Fatalf("Backlog returned %d messages (last id %v), want 30 ending with %d", len(stored), ids(stored), prev)
	}
	again := e.backlog("u1", module.BacklogQuery{After: stored[28].ID})
	if len(again) != 1 {
		t.Fatalf("Backlog after the 29th: %v", ids(again))
	}
	m := again[0]
	if m.CreatedAt.UnixMilli() != stored[29].CreatedAt.UnixMilli() || m.ExpiresAt.UnixMilli() != stored[29].ExpiresAt.UnixMilli() {
		t.Fatalf("timestamps differ between reads: %v/%v vs %v/%v", m.CreatedAt, m.ExpiresAt, stored[29].CreatedAt, stored[29].ExpiresAt)
	}
}

func testAppendInterleaved(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	users := []string{"alice", "bob", "carol@example.com", "d:e-f_g.h"}
	var all []module.Message
	for i := range 60 {
		u := users[(i*7+i/5)%len(users)]
		all = append(all, e.append(draft(u, fmt.Sprintf(`{"i":%d}`, i)))...)
	}
	if !consecutivePerUser(e.s) {
		checkIncreasing(t, "ids across users", all)
	}
	for u, want := range perUser(all) {
		checkIncreasing(t, "ids of "+u, want)
		e.expectBacklog(u, module.BacklogQuery{}, want)
		e.expectStats(u, module.UserStats{Stored: len(want), Pending: len(want)})
	}
}

func testAppendBatchManyUsers(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	const users, rounds = 150, 3
	var drafts []module.Draft
	for r := range rounds {
		for u := range users {
			// Mix the user order between rounds, so one user's drafts are far apart.
			uu := (u*37 + r*11) % users
			drafts = append(drafts, draft(fmt.Sprintf("user-%03d", uu), fmt.Sprintf(`{"u":%d,"r":%d}`, uu, r)))
		}
	}
	first := e.append(drafts...)
	byUser := perUser(first)
	if len(byUser) != users {
		t.Fatalf("batch covered %d users, want %d", len(byUser), users)
	}
	for u, msgs := range byUser {
		if len(msgs) != rounds {
			t.Fatalf("user %s got %d messages, want %d", u, len(msgs), rounds)
		}
		// Within one batch, a user's drafts get increasing ids in draft order.
		checkIncreasing(t, "batch ids of "+u, msgs)
		e.expectBacklog(u, module.BacklogQuery{}, msgs)
	}
	seen := map[key]bool{}
	for _, m := range first {
		k := key{m.UserID, m.ID}
		if seen[k] {
			t.Fatalf("id %d given twice to %s", m.ID, m.UserID)
		}
		seen[k] = true
	}
	// A second batch continues above the first, for every user.
	second := e.append(drafts...)
	for u, msgs := range perUser(second) {
		prev := byUser[u]
		if msgs[0].ID <= prev[len(prev)-1].ID {
			t.Fatalf("user %s: second batch starts at id %d, not above %d", u, msgs[0].ID, prev[len(prev)-1].ID)
		}
		e.expectBacklog(u, module.BacklogQuery{}, append(slices.Clone(prev), msgs...))
	}
}

func testAppendEmpty(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	a := e.append(draft("u", `1`))
	msgs, err := e.s.Append(e.ctx, nil)
	if err != nil {
		t.Fatalf("Append(nil): %v", err)
	}
	if len(msgs) != 0 {
		t.Fatalf("Append(nil) returned %d messages", len(msgs))
	}
	b := e.append(draft("u", `2`))
	if b[0].ID <= a[0].ID {
		t.Fatalf("ids after an empty append: %d then %d", a[0].ID, b[0].ID)
	}
	e.expectBacklog("u", module.BacklogQuery{}, append(a, b...))
}

func testIDsIncreaseAfterPurge(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	before := e.appendN("u", 5)
	other := e.appendN("v", 2)
	if n := e.purge("u"); n != 5 {
		t.Fatalf("Purge = %d, want 5", n)
	}
	e.expectBacklog("u", module.BacklogQuery{}, nil)
	if last := e.lastID("u"); last < before[4].ID {
		t.Fatalf("LastID after purge = %d, below the purged id %d", last, before[4].ID)
	}
	after := e.appendN("u", 3)
	if after[0].ID <= before[4].ID {
		t.Fatalf("id after purge %d is not above the purged %d", after[0].ID, before[4].ID)
	}
	checkIncreasing(t, "ids after purge", after)
	e.expectBacklog("u", module.BacklogQuery{}, after)
	e.expectBacklog("v", module.BacklogQuery{}, other)
	// A client that saw the purged ids resumes with since: it gets exactly the new ones.
	e.expectBacklog("u", module.BacklogQuery{After: before[4].ID, Since: before[4].ID}, after)
}

func testOnCommitSequential(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var appended []module.Message
	for i := range 20 {
		var drafts []module.Draft
		for j := range 1 + i%4 {
			drafts = append(drafts, draft(fmt.Sprintf("u%d", (i+j)%3), fmt.Sprintf(`[%d,%d]`, i, j)))
		}
		msgs := e.append(drafts...)
		for _, m := range msgs {
			// The hook has seen the messages by the time Append returns: delivery is not
			// left to a later commit.
			if n := e.rec.count(key{m.UserID, m.ID}); n != 1 {
				t.Fatalf("append %d: hook saw message %s/%d %d times when Append returned, want 1", i, m.UserID, m.ID, n)
			}
		}
		appended = append(appended, msgs...)
	}
	hooked := e.rec.all()
	if len(hooked) != len(appended) {
		t.Fatalf("hook received %d messages, Append returned %d", len(hooked), len(appended))
	}
	for i := range hooked {
		h, a := hooked[i], appended[i]
		if h.ID != a.ID || h.UserID != a.UserID || !bytes.Equal(h.Data, a.Data) {
			t.Fatalf("hook message %d = %s/%d %s, Append returned %s/%d %s", i, h.UserID, h.ID, h.Data, a.UserID, a.ID, a.Data)
		}
	}
	if !consecutivePerUser(e.s) {
		checkIncreasing(t, "hook order", hooked)
	}
	if e.rec.overlap.Load() {
		t.Fatal("the hook ran on two goroutines at once")
	}
}

func testOnCommitConcurrent(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	const appenders, perAppender = 16, 40
	users := []string{"a", "b", "c", "d", "e"}
	var (
		mu       sync.Mutex
		appended []module.Message
		wg       sync.WaitGroup
		start    = make(chan struct{})
		errs     = make(chan error, appenders)
	)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			<-start
			for i := range perAppender {
				n := 1 + rng.IntN(3)
				drafts := make([]module.Draft, n)
				for j := range drafts {
					drafts[j] = draft(users[rng.IntN(len(users))], fmt.Sprintf(`{"g":%d,"i":%d,"j":%d}`, g, i, j))
				}
				msgs, err := e.s.Append(e.ctx, drafts)
				if err != nil {
					errs <- fmt.Errorf("appender %d: %w", g, err)
					return
				}
				for _, m := range msgs {
					if e.rec.count(key{m.UserID, m.ID}) != 1 {
						errs <- fmt.Errorf("appender %d: message %s/%d not delivered to the hook once by the time Append returned", g, m.UserID, m.ID)
						return
					}
				}
				mu.Lock()
				appended = append(appended, msgs...)
				mu.Unlock()
			}
		}()
	}
	close(start)
	waitGroup(t, &wg, 30*time.Second, "the appenders")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if e.rec.overlap.Load() {
		t.Fatal("the hook ran on two goroutines at once")
	}

	hooked := e.rec.all()
	if !consecutivePerUser(e.s) {
		checkIncreasing(t, "hook order across all users", hooked)
	}
	for u, msgs := range perUser(hooked) {
		checkIncreasing(t, "hook order of "+u, msgs)
	}
	// Every appended message was delivered exactly once, with its data, and nothing else was.
	if len(hooked) != len(appended) {
		t.Fatalf("hook received %d messages, Append returned %d", len(hooked), len(appended))
	}
	byKey := map[key]module.Message{}
	for _, m := range hooked {
		k := key{m.UserID, m.ID}
		if _, dup := byKey[k]; dup {
			t.Fatalf("hook received %s/%d twice", m.UserID, m.ID)
		}
		byKey[k] = m
	}
	for _, m := range appended {
		h, ok := byKey[key{m.UserID, m.ID}]
		if !ok {
			t.Fatalf("appended %s/%d never reached the hook", m.UserID, m.ID)
		}
		if !bytes.Equal(h.Data, m.Data) {
			t.Fatalf("%s/%d: hook data %s, appended %s", m.UserID, m.ID, h.Data, m.Data)
		}
	}
	// The store agrees with the hook about each user's messages.
	for u, msgs := range perUser(hooked) {
		e.expectBacklog(u, module.BacklogQuery{}, msgs)
	}
}
