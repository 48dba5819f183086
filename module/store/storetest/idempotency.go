package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"pushlane/module"
)

func idemKey(scope, key, fingerprint string) module.IdempotencyKey {
	return module.IdempotencyKey{Scope: scope, Key: key, Fingerprint: fingerprint, Window: time.Hour}
}

func (e *env) begin(k module.IdempotencyKey) (module.IdempotencyState, *module.IdempotencyRecord) {
	e.t.Helper()
	st, rec, err := e.s.Begin(e.ctx, k)
	if err != nil {
		e.t.Fatalf("Begin(%+v): %v", k, err)
	}
	if (st == module.IdempotencyDone) != (rec != nil) {
		e.t.Fatalf("Begin(%+v) = state %d with record %+v: a record comes with Done only", k, st, rec)
	}
	return st, rec
}

func (e *env) expectBegin(k module.IdempotencyKey, want module.IdempotencyState) *module.IdempotencyRecord {
	e.t.Helper()
	st, rec := e.begin(k)
	if st != want {
		e.t.Fatalf("Begin(%s/%s) = %s, want %s", k.Scope, k.Key, stateName(st), stateName(want))
	}
	return rec
}

func stateName(s module.IdempotencyState) string {
	switch s {
	case module.IdempotencyNew:
		return "New"
	case module.IdempotencyInProgress:
		return "InProgress"
	case module.IdempotencyDone:
		return "Done"
	}
	return fmt.Sprintf("state(%d)", s)
}

func (e *env) appendOnce(k module.IdempotencyKey, drafts ...module.Draft) ([]module.Message, *module.IdempotencyRecord) {
	e.t.Helper()
	msgs, rec, err := e.s.AppendOnce(e.ctx, k, drafts)
	if err != nil {
		e.t.Fatalf("AppendOnce(%s/%s): %v", k.Scope, k.Key, err)
	}
	if (msgs == nil) == (rec == nil) {
		e.t.Fatalf("AppendOnce(%s/%s) = %d messages and record %+v: want one of them", k.Scope, k.Key, len(msgs), rec)
	}
	return msgs, rec
}

func (e *env) finish(k module.IdempotencyKey, body string) {
	e.t.Helper()
	if err := e.s.Finish(e.ctx, k, []byte(body)); err != nil {
		e.t.Fatalf("Finish(%s/%s): %v", k.Scope, k.Key, err)
	}
}

// expectRecord checks a record against the messages of the request that made it.
func expectRecord(t *testing.T, rec *module.IdempotencyRecord, fingerprint string, msgs []module.Message, body string) {
	t.Helper()
	if rec == nil {
		t.Fatal("no record")
	}
	want := make([]module.IdempotentResult, len(msgs))
	for i, m := range msgs {
		want[i] = module.IdempotentResult{UserID: m.UserID, ID: m.ID}
	}
	if rec.Fingerprint != fingerprint || !slices.Equal(rec.Results, want) {
		t.Fatalf("record = %q %v, want %q %v", rec.Fingerprint, rec.Results, fingerprint, want)
	}
	if body == "" {
		if rec.Body != nil {
			t.Fatalf("record body %q before Finish, want nil", rec.Body)
		}
	} else if !bytes.Equal(rec.Body, []byte(body)) {
		t.Fatalf("record body %q, want %q", rec.Body, body)
	}
}

// testIdempotencyFlow: New, InProgress while claimed (whatever the fingerprint), Done with the
// record after Finish; the record answers another fingerprint too (the api answers 422).
func testIdempotencyFlow(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	k := idemKey("scope-a", "key-1", "fp-1")
	e.expectBegin(k, module.IdempotencyNew)
	e.expectBegin(k, module.IdempotencyInProgress)
	e.expectBegin(idemKey("scope-a", "key-1", "fp-other"), module.IdempotencyInProgress)
	msgs, _ := e.appendOnce(k, draft("u1", `{"n":1}`), draft("u2", `{"n":1}`))
	e.expectBegin(k, module.IdempotencyInProgress) // stored, not finished: still claimed
	body := `{"results":[{"userId":"u1","id":"1"}]}`
	e.finish(k, body)
	expectRecord(t, e.expectBegin(k, module.IdempotencyDone), "fp-1", msgs, body)
	expectRecord(t, e.expectBegin(idemKey("scope-a", "key-1", "fp-other"), module.IdempotencyDone), "fp-1", msgs, body)
	// Stored and delivered once.
	for _, m := range msgs {
		e.expectBacklog(m.UserID, module.BacklogQuery{}, []module.Message{m})
		if n := e.rec.count(key{m.UserID, m.ID}); n != 1 {
			t.Fatalf("%s/%d reached the hook %d times", m.UserID, m.ID, n)
		}
	}
}

// testIdempotencyAppendOnceTwice: a second AppendOnce under the key (a first attempt that timed out
// was stored after all) stores nothing and returns the first record.
func testIdempotencyAppendOnceTwice(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	k := idemKey("", "twice", "fp-1")
	e.expectBegin(k, module.IdempotencyNew)
	first, _ := e.appendOnce(k, draft("u", `1`), draft("v", `1`))
	hooked := e.rec.len()
	again, rec := e.appendOnce(k, draft("u", `1`), draft("v", `1`))
	if again != nil {
		t.Fatalf("the second AppendOnce stored %v", ids(again))
	}
	expectRecord(t, rec, "fp-1", first, "")
	// Another fingerprint under the same key: the same answer, still nothing stored.
	_, rec = e.appendOnce(idemKey("", "twice", "fp-2"), draft("u", `2`))
	expectRecord(t, rec, "fp-1", first, "")
	e.expectBacklog("u", module.BacklogQuery{}, first[:1])
	e.expectBacklog("v", module.BacklogQuery{}, first[1:])
	if last := e.lastID("u"); last != first[0].ID {
		t.Fatalf("Head(u).LastID = %d after the replayed AppendOnce, want %d", last, first[0].ID)
	}
	if n := e.rec.len(); n != hooked {
		t.Fatalf("the hook saw %d messages, %d before the second AppendOnce", n, hooked)
	}
	e.finish(k, `{"ok":1}`)
	expectRecord(t, e.expectBegin(k, module.IdempotencyDone), "fp-1", first, `{"ok":1}`)
}

// testIdempotencyAbandon: a request that failed before storing lets a retry be new; one that
// failed after AppendOnce stored leaves the record (replayed without a body).
func testIdempotencyAbandon(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	k := idemKey("s", "abandoned", "fp")
	e.expectBegin(k, module.IdempotencyNew)
	e.s.Abandon(k)
	e.expectBegin(k, module.IdempotencyNew) // the retry is processed as new
	msgs, _ := e.appendOnce(k, draft("u", `1`))
	e.s.Abandon(k)
	expectRecord(t, e.expectBegin(k, module.IdempotencyDone), "fp", msgs, "")
	// Abandon of a key nobody holds is harmless.
	e.s.Abandon(idemKey("s", "never-begun", "fp"))
	e.expectBegin(idemKey("s", "never-begun", "fp"), module.IdempotencyNew)
}

// testIdempotencyExpiry: after the window the key is forgotten; a request under it is new and
// stores again.
func testIdempotencyExpiry(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{SweepInterval: 10 * time.Millisecond})
	k := idemKey("s", "short", "fp")
	k.Window = 50 * time.Millisecond
	long := idemKey("s", "long", "fp")
	e.expectBegin(k, module.IdempotencyNew)
	e.expectBegin(long, module.IdempotencyNew)
	first, _ := e.appendOnce(k, draft("u", `1`))
	longMsgs, _ := e.appendOnce(long, draft("u", `2`))
	e.finish(k, `{"first":true}`)
	e.finish(long, `{"long":true}`)
	var st module.IdempotencyState
	waitFor(t, 10*time.Second, "the short key to be forgotten", func() bool {
		var rec *module.IdempotencyRecord
		st, rec = e.begin(k)
		if st == module.IdempotencyDone {
			expectRecord(t, rec, "fp", first, `{"first":true}`)
		}
		return st != module.IdempotencyDone
	})
	if st != module.IdempotencyNew {
		t.Fatalf("Begin after the window = %s, want New", stateName(st))
	}
	second, _ := e.appendOnce(k, draft("u", `1`))
	if second[0].ID <= first[0].ID {
		t.Fatalf("the new request under an expired key got id %d, not above %d", second[0].ID, first[0].ID)
	}
	e.finish(k, `{"second":true}`)
	expectRecord(t, e.expectBegin(k, module.IdempotencyDone), "fp", second, `{"second":true}`)
	expectRecord(t, e.expectBegin(long, module.IdempotencyDone), "fp", longMsgs, `{"long":true}`)
}

// testIdempotencyScopes: the same key under two scopes (API keys) is two keys.
func testIdempotencyScopes(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	a, b, none := idemKey("api-key-a", "k", "fp"), idemKey("api-key-b", "k", "fp"), idemKey("", "k", "fp")
	e.expectBegin(a, module.IdempotencyNew)
	e.expectBegin(b, module.IdempotencyNew)
	e.expectBegin(none, module.IdempotencyNew)
	am, _ := e.appendOnce(a, draft("u", `"a"`))
	e.finish(a, `"a"`)
	expectRecord(t, e.expectBegin(a, module.IdempotencyDone), "fp", am, `"a"`)
	e.expectBegin(b, module.IdempotencyInProgress)
	bm, _ := e.appendOnce(b, draft("u", `"b"`))
	e.finish(b, `"b"`)
	expectRecord(t, e.expectBegin(b, module.IdempotencyDone), "fp", bm, `"b"`)
	e.s.Abandon(none)
	e.expectBegin(none, module.IdempotencyNew)
	e.expectBegin(idemKey("api-key-a", "k2", "fp"), module.IdempotencyNew)
	e.expectBacklog("u", module.BacklogQuery{}, append(am, bm...))
}

// testIdempotencyConcurrentBegin: of many simultaneous requests under one key, exactly one is new.
func testIdempotencyConcurrentBegin(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	k := idemKey("s", "race", "fp")
	const n = 16
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		mu     sync.Mutex
		states = map[module.IdempotencyState]int{}
		errs   = make(chan error, n)
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, _, err := e.s.Begin(e.ctx, k)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			states[st]++
			mu.Unlock()
		}()
	}
	close(start)
	waitGroup(t, &wg, 20*time.Second, "the Begin calls")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if states[module.IdempotencyNew] != 1 || states[module.IdempotencyInProgress] != n-1 {
		t.Fatalf("states of %d simultaneous Begin calls: %v, want one New and the rest InProgress", n, states)
	}
}

// testIdempotencyManyUsers: the record keeps the results in the order of the request's users.
func testIdempotencyManyUsers(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	k := idemKey("s", "many", "fp")
	drafts := make([]module.Draft, 1000)
	for i := range drafts {
		drafts[i] = draft(fmt.Sprintf("user-%03d", (i*37)%1000), `{"x":1}`)
	}
	e.expectBegin(k, module.IdempotencyNew)
	msgs, _ := e.appendOnce(k, drafts...)
	e.finish(k, `{}`)
	expectRecord(t, e.expectBegin(k, module.IdempotencyDone), "fp", msgs, `{}`)
}
