package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pushlane/module"
)

func testStats(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	e.expectStats("nobody", module.UserStats{})
	u := e.appendN("u", 7)
	e.appendN("v", 2)
	e.expectStats("u", module.UserStats{Stored: 7, Pending: 7})
	e.s.MarkWritten("u", idsOf(u, 0, 3, 6), true, time.Now())
	e.expectStats("u", module.UserStats{Stored: 7, Pending: 4})
	e.expectStats("v", module.UserStats{Stored: 2, Pending: 2})
	e.purge("u")
	e.expectStats("u", module.UserStats{})
	e.expectStats("v", module.UserStats{Stored: 2, Pending: 2})
}

func testPurge(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	if n := e.purge("nobody"); n != 0 {
		t.Fatalf("Purge(nobody) = %d, want 0", n)
	}
	u := e.appendN("u", 4)
	v := e.appendN("v", 3)
	e.s.MarkWritten("u", idsOf(u, 0, 1), true, time.Now())
	if n := e.purge("u"); n != 4 {
		t.Fatalf("Purge(u) = %d, want 4 (delivered ones count too)", n)
	}
	e.expectBacklog("u", module.BacklogQuery{}, nil)
	e.expectBacklog("u", e.pq("u"), nil)
	e.expectStats("u", module.UserStats{})
	if n := e.purge("u"); n != 0 {
		t.Fatalf("second Purge(u) = %d, want 0", n)
	}
	e.expectBacklog("v", module.BacklogQuery{}, v)
	if n := e.purge("v"); n != 3 {
		t.Fatalf("Purge(v) = %d, want 3", n)
	}
}

func testLastID(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	first := e.lastID("u") // 0 for a fresh store, but any value is fine if later ids exceed it
	u := e.appendN("u", 3)
	if u[0].ID <= first {
		t.Fatalf("first id %d is not above LastID %d read before", u[0].ID, first)
	}
	v := e.append(draft("v", "1"), draft("u", "9"), draft("v", "2"))
	for _, user := range []string{"u", "v"} {
		last := e.lastID(user)
		for _, m := range append(slices.Clone(u), v...) {
			if m.UserID == user && m.ID > last {
				t.Fatalf("LastID(%s) = %d, below committed id %d", user, last, m.ID)
			}
		}
		next := e.append(draft(user, "10"))
		if next[0].ID <= last {
			t.Fatalf("append after LastID(%s)=%d got id %d", user, last, next[0].ID)
		}
		if l := e.lastID(user); l < next[0].ID {
			t.Fatalf("LastID(%s) = %d after committing %d", user, l, next[0].ID)
		}
	}
}

func testLastIDConcurrent(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := []string{"x", "y"}[g%2]
			var prevLast uint64
			for i := range 30 {
				last, err := lastOf(e.ctx, e.s, user)
				if err != nil {
					errs <- err
					return
				}
				if last < prevLast {
					errs <- fmt.Errorf("LastID(%s) went down: %d after %d", user, last, prevLast)
					return
				}
				msgs, err := e.s.Append(e.ctx, []module.Draft{draft(user, fmt.Sprint(i))})
				if err != nil {
					errs <- err
					return
				}
				if msgs[0].ID <= last {
					errs <- fmt.Errorf("append for %s after LastID %d got id %d", user, last, msgs[0].ID)
					return
				}
				prevLast = last
				if l, err := lastOf(e.ctx, e.s, user); err != nil || l < msgs[0].ID {
					errs <- fmt.Errorf("LastID(%s) = %d, %v right after committing %d", user, l, err, msgs[0].ID)
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, 20*time.Second, "the appenders")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testHealth(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	if err := e.s.Health(e.ctx); err != nil {
		t.Fatalf("Health of a new store: %v", err)
	}
	e.appendN("u", 1)
	if err := e.s.Health(e.ctx); err != nil {
		t.Fatalf("Health after append: %v", err)
	}
}

func testClose(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	msgs := e.appendN("u", 2)
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := e.ctx
	if _, err := e.s.Append(ctx, []module.Draft{draft("u", "1")}); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Append after Close: %v, want an error wrapping ErrClosed", err)
	}
	if err := e.s.Health(ctx); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Health after Close: %v, want ErrClosed", err)
	}
	k := idemKey("s", "after-close", "fp")
	if _, _, err := e.s.AppendOnce(ctx, k, []module.Draft{draft("u", "1")}); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("AppendOnce after Close: %v, want an error wrapping ErrClosed", err)
	}
	if _, _, err := e.s.Begin(ctx, k); err == nil {
		t.Fatal("Begin after Close: no error")
	}
	if _, err := e.s.Status(ctx, "u", msgs[0].ID); err == nil {
		t.Fatal("Status after Close: no error")
	}
	if _, err := e.s.Statuses(ctx, "u", 0, 10); err == nil {
		t.Fatal("Statuses after Close: no error")
	}
	if _, err := e.s.Purge(ctx, "u"); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Purge after Close: %v, want ErrClosed", err)
	}
	if _, err := lastOf(ctx, e.s, "u"); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Head after Close: %v, want ErrClosed", err)
	}
	for _, q := range []module.BacklogQuery{{}, {Pending: true}} {
		if _, err := e.s.Backlog(ctx, "u", q); err == nil {
			t.Fatalf("Backlog(%+v) after Close: no error", q)
		}
	}
	if _, err := e.s.Stats(ctx, "u"); err == nil {
		t.Fatal("Stats after Close: no error")
	}
	e.s.MarkWritten("u", ids(msgs), true, time.Now()) // must not panic or block
	e.s.MarkWritten("u", ids(msgs), false, time.Now())
	e.s.Ack("u", ids(msgs), time.Now())
	e.s.Abandon(k)
	if _, err := e.s.Stats(ctx, "u"); err == nil {
		t.Fatal("Stats after Close and marks: no error")
	}
	if err := e.s.Close(); err != nil {
		t.Fatalf("third Close: %v", err)
	}
	if e.rec.len() != 2 {
		t.Fatalf("hook saw %d messages, want the 2 appended before Close", e.rec.len())
	}
}

func testCloseWhileAppending(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	const appenders = 8
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []module.Message
		errs     = make(chan error, appenders)
	)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				msgs, err := e.s.Append(e.ctx, []module.Draft{draft(fmt.Sprintf("u%d", g%3), fmt.Sprint(i))})
				if err != nil {
					if !errors.Is(err, module.ErrClosed) {
						errs <- fmt.Errorf("appender %d: %w (want ErrClosed)", g, err)
					}
					return
				}
				mu.Lock()
				accepted = append(accepted, msgs...)
				mu.Unlock()
			}
		}()
	}
	waitFor(t, 10*time.Second, "some appends", func() bool { return e.rec.len() >= 50 })
	closed := make(chan error, 2)
	go func() { closed <- e.s.Close() }()
	go func() { closed <- e.s.Close() }()
	for range 2 {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return while appends were running")
		}
	}
	waitGroup(t, &wg, 10*time.Second, "appenders to stop after Close")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every accepted message was handed to the hook exactly once: none lost in the shutdown.
	for _, m := range accepted {
		if n := e.rec.count(key{m.UserID, m.ID}); n != 1 {
			t.Fatalf("accepted %s/%d reached the hook %d times", m.UserID, m.ID, n)
		}
	}
	if e.rec.len() != len(accepted) {
		t.Fatalf("hook saw %d messages, %d were accepted", e.rec.len(), len(accepted))
	}
}

func testConcurrentMixed(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{MaxPerUser: 10_000})
	const appenders, perAppender = 4, 60
	var (
		wg, readers sync.WaitGroup
		stop        = make(chan struct{})
		errs        = make(chan error, 16)
	)
	for g := range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perAppender {
				if _, err := e.s.Append(e.ctx, []module.Draft{draft("u", fmt.Sprintf(`[%d,%d]`, g, i))}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Readers act like connections: read the pending queue, mark what they "sent".
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				last, err := lastOf(e.ctx, e.s, "u")
				if err != nil {
					errs <- err
					return
				}
				msgs, err := e.s.Backlog(e.ctx, "u", module.BacklogQuery{Since: last, Pending: true, Limit: 16})
				if err != nil {
					errs <- err
					return
				}
				for i := 1; i < len(msgs); i++ {
					if msgs[i].ID <= msgs[i-1].ID {
						errs <- fmt.Errorf("pending backlog out of order: %v", ids(msgs))
						return
					}
				}
				e.s.MarkWritten("u", ids(msgs), true, time.Now())
				if _, err := e.s.Stats(e.ctx, "u"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	waitGroup(t, &wg, 20*time.Second, "the appenders")
	close(stop)
	waitGroup(t, &readers, 10*time.Second, "the readers")
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := e.backlog("u", module.BacklogQuery{})
	if len(all) != appenders*perAppender {
		t.Fatalf("stored %d messages, want %d", len(all), appenders*perAppender)
	}
	e.s.MarkWritten("u", ids(e.backlog("u", e.pq("u"))), true, time.Now())
	e.expectStats("u", module.UserStats{Stored: appenders * perAppender, Pending: 0})
	e.expectBacklog("u", e.pq("u"), nil)
}

// roundTripData are JSON values whose bytes must come back exactly as published: escapes are not
// decoded or re-encoded, unicode is not normalised, numbers are not reformatted.
var roundTripData = []string{
	`{"title":"hi"}`,
	`{"s":"line\u2028sep\u2029par","nul":"a\u0000b","esc":"\"\\\/\b\f\n\r\t"}`,
	`"\u0000"`,
	`"\u2028"`,
	`"\ud83d\ude00 surrogate pair"`,
	"\"raw utf-8: é ü 中文 😀 \u2028 \u2029\"",
	`[1,"two",{"3":[true,false,null]},[],{}]`,
	`{"n":1.50,"e":1e300,"neg":-0,"big":123456789012345678901234567890}`,
	`0`,
	`-12.5E-3`,
	`true`,
	`false`,
	`""`,
	`[]`,
	`{}`,
	`{"nested":{"deep":{"deeper":[{"k":"v\u00e9"}]}}}`,
	`{"html":"<script>&amp;</script>","u003c":"\u003c\u003e\u0026"}`,
	`"` + strings.Repeat("x", 60_000) + `"`,
}

func testDataRoundTrip(t *testing.T, open Opener) {
	e := openEnv(t, open, module.StoreOptions{})
	var drafts []module.Draft
	for _, d := range roundTripData {
		drafts = append(drafts, draft("u", d))
	}
	// One batch, and one message per append.
	batch := e.append(drafts...)
	var single []module.Message
	for _, d := range roundTripData {
		single = append(single, e.append(draft("v", d))...)
	}
	for _, user := range []string{"u", "v"} {
		got := e.backlog(user, module.BacklogQuery{})
		if len(got) != len(roundTripData) {
			t.Fatalf("%s: Backlog returned %d messages, want %d", user, len(got), len(roundTripData))
		}
		for i, m := range got {
			if !bytes.Equal(m.Data, []byte(roundTripData[i])) {
				t.Fatalf("%s: message %d data = %q, want %q", user, i, m.Data, roundTripData[i])
			}
		}
	}
	for i, m := range append(batch, single...) {
		if !bytes.Equal(m.Data, []byte(roundTripData[i%len(roundTripData)])) {
			t.Fatalf("Append result %d data = %q", i, m.Data)
		}
	}
	// The hook gets the same bytes.
	for i, m := range e.rec.all() {
		if !bytes.Equal(m.Data, []byte(roundTripData[i%len(roundTripData)])) {
			t.Fatalf("hook message %d data = %q", i, m.Data)
		}
	}
}

// lastOf is Head's LastID.
func lastOf(ctx context.Context, s module.Store, user string) (uint64, error) {
	h, err := s.Head(ctx, user)
	return h.LastID, err
}
