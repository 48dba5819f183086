package storetest

import (
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pushlane/module"
)

// hookWait bounds how long the commit hook of testHeadCoversOnCommit waits for Head's answer. Only
// a broken store reaches it (one whose Head waits for the hook, or hangs).
const hookWait = 10 * time.Second

// testHeadCoversOnCommit checks the invariant the connect path relies on (module.Head): Head(U).LastID
// covers every id of U already handed to OnCommit. Hub.Reserve reads Head on a request goroutine
// while the store may be inside the hook; a LastID below an id the hook already delivered sets the
// new connection's floor below a message it never receives (issue 11, item 2).
//
// The check runs at the worst moment: while the hook runs, from another goroutine (as Reserve does),
// and the hook waits for the answer before it returns, so a store that publishes the new last id
// only after the hook fails every time, not by chance. A store whose Head waits for the hook to
// return fails with a message that says so instead of deadlocking.
func testHeadCoversOnCommit(t *testing.T, open Opener) {
	type answer struct {
		last uint64
		err  error
	}
	type probe struct {
		user  string
		reply chan answer
	}
	var (
		probes = make(chan probe)
		stop   = make(chan struct{})
		failMu sync.Mutex
		fail   error
		checks atomic.Int64
	)
	setFail := func(err error) {
		failMu.Lock()
		defer failMu.Unlock()
		if fail == nil {
			fail = err
		}
	}
	failed := func() bool {
		failMu.Lock()
		defer failMu.Unlock()
		return fail != nil
	}
	hook := func(msgs []module.Message) {
		if failed() {
			return
		}
		newest := map[string]uint64{}
		for _, m := range msgs {
			newest[m.UserID] = max(newest[m.UserID], m.ID)
		}
		for user, id := range newest {
			p := probe{user: user, reply: make(chan answer, 1)}
			select {
			case probes <- p:
			case <-stop:
				return
			case <-time.After(hookWait):
				setFail(fmt.Errorf("the checker did not take a probe within %s", hookWait))
				return
			}
			select {
			case a := <-p.reply:
				checks.Add(1)
				if a.err != nil {
					setFail(fmt.Errorf("Head(%s) inside OnCommit: %w", user, a.err))
					return
				}
				if a.last < id {
					setFail(fmt.Errorf("while OnCommit held %s/%d, Head(%s).LastID = %d: a connection registering "+
						"then would set its floor below a message it never receives", user, id, user, a.last))
					return
				}
			case <-time.After(hookWait):
				setFail(fmt.Errorf("Head(%s) did not answer within %s while the commit hook ran: Head must not "+
					"wait for the hook (Hub.Reserve calls it beside a running hook)", user, hookWait))
				return
			}
		}
	}
	e := openEnv(t, open, module.StoreOptions{OnCommit: hook})
	checkerDone := make(chan struct{})
	go func() {
		defer close(checkerDone)
		for {
			select {
			case p := <-probes:
				h, err := e.s.Head(e.ctx, p.user)
				p.reply <- answer{h.LastID, err}
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-checkerDone })

	users := []string{"a", "b", "c"}
	for i := range 10 {
		e.append(draft(users[i%3], fmt.Sprint(i)))
	}
	const appenders, perAppender = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, appenders)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perAppender {
				drafts := []module.Draft{draft(users[(g+i)%3], fmt.Sprint(i))}
				if i%3 == 0 {
					drafts = append(drafts, draft(users[(g+i+1)%3], fmt.Sprint(i)))
				}
				if _, err := e.s.Append(e.ctx, drafts); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, 60*time.Second, "the appenders")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	failMu.Lock()
	defer failMu.Unlock()
	if fail != nil {
		t.Fatal(fail)
	}
	if checks.Load() == 0 {
		t.Fatal("the hook never checked Head")
	}
}

// testHeadPerUser: LastID is the newest id assigned to that user, not to the store.
func testHeadPerUser(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	if last := e.lastID("nobody"); last != 0 {
		t.Fatalf("Head(nobody).LastID = %d on a fresh store, want 0", last)
	}
	u := e.appendN("u", 3)
	v := e.appendN("v", 2)
	mixed := e.append(draft("w", "1"), draft("u", "2"), draft("w", "3"))
	want := map[string]uint64{"u": mixed[1].ID, "v": v[1].ID, "w": mixed[2].ID, "nobody": 0}
	for user, id := range want {
		if last := e.lastID(user); last != id {
			t.Fatalf("Head(%s).LastID = %d, want %d (its own newest id)", user, last, id)
		}
	}
	if u[2].ID >= mixed[1].ID {
		t.Fatalf("ids of u not increasing: %d then %d", u[2].ID, mixed[1].ID)
	}
}

// testHeadNeverGoesDown: LastID stays at the newest id ever assigned to the user when that message
// is gone: purged, expired (even before older messages of the user), or when nothing of the user
// is stored any more. Ids assigned later are above it.
func testHeadNeverGoesDown(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{SweepInterval: 10 * time.Millisecond, MaxPerUser: 3})
	const short = 30 * time.Millisecond
	// u: the newest message expires first; w: everything expires; t: trimmed; p: purged.
	keep := e.append(draft("u", `"keep"`))
	expiring := e.append(
		module.Draft{UserID: "u", Data: []byte(`"short"`), TTL: short},
		module.Draft{UserID: "w", Data: []byte(`"short"`), TTL: short},
	)
	trimmed := e.appendN("t", 5)
	purged := e.appendN("p", 2)
	if n := e.purge("p"); n != 2 {
		t.Fatalf("Purge(p) = %d, want 2", n)
	}
	waitFor(t, 10*time.Second, "the sweeper to remove the 2 expired messages", func() bool {
		return counterValue(e.metrics.Expired) >= 2
	})
	e.expectBacklog("u", module.BacklogQuery{}, keep)
	e.expectBacklog("w", module.BacklogQuery{}, nil)
	e.expectBacklog("t", module.BacklogQuery{}, trimmed[2:])
	want := map[string]uint64{"u": expiring[0].ID, "w": expiring[1].ID, "t": trimmed[4].ID, "p": purged[1].ID}
	for user, id := range want {
		if last := e.lastID(user); last != id {
			t.Fatalf("Head(%s).LastID = %d, want %d: the newest id ever assigned, stored or not", user, last, id)
		}
	}
	for user, id := range want {
		next := e.append(draft(user, `"next"`))
		if next[0].ID <= id {
			t.Fatalf("new id of %s %d is not above its former newest %d", user, next[0].ID, id)
		}
		if last := e.lastID(user); last != next[0].ID {
			t.Fatalf("Head(%s).LastID = %d after appending %d", user, last, next[0].ID)
		}
	}
}

var epochSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// testEpoch: a store has one epoch, of the documented syntax, reported by Epoch and Head alike and
// unchanged by writes; a new store has another.
func testEpoch(t *testing.T, open Opener) {
	a := openEnv(t, open, module.StoreOptions{})
	b := openEnv(t, open, module.StoreOptions{})
	epoch := func(e *env) string {
		t.Helper()
		ep, err := e.s.Epoch(e.ctx)
		if err != nil {
			t.Fatalf("Epoch: %v", err)
		}
		if !epochSyntax.MatchString(ep) {
			t.Fatalf("epoch %q is not 1-64 bytes of [A-Za-z0-9_-]", ep)
		}
		for _, user := range []string{"u", "nobody"} {
			h, err := e.s.Head(e.ctx, user)
			if err != nil {
				t.Fatalf("Head(%s): %v", user, err)
			}
			if h.Epoch != ep {
				t.Fatalf("Head(%s).Epoch = %q, Epoch() = %q", user, h.Epoch, ep)
			}
		}
		return ep
	}
	first := epoch(a)
	a.appendN("u", 3)
	a.purge("u")
	if again := epoch(a); again != first {
		t.Fatalf("epoch changed from %q to %q after writes", first, again)
	}
	if other := epoch(b); other == first {
		t.Fatalf("two new stores share the epoch %q", first)
	}
}
