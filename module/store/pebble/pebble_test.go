package pebble

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"

	"pushlane/module"
	"pushlane/module/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts module.StoreOptions) module.Store {
		return openT(t, filepath.Join(t.TempDir(), "push"), opts)
	})
}

// openT opens a store in dir and closes it when the test ends.
func openT(t testing.TB, dir string, opts module.StoreOptions) *Store {
	t.Helper()
	s, err := Open(dir, opts, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// BenchmarkUnicast: the store's share of compare.sh's unicast scenario (storetest.BenchUnicast).
func BenchmarkUnicast(b *testing.B) {
	storetest.BenchUnicast(b, func(b *testing.B, opts module.StoreOptions) module.Store {
		return openT(b, filepath.Join(b.TempDir(), "push"), opts)
	}, 10_000, 16)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, s *Store, drafts ...module.Draft) []module.Message {
	t.Helper()
	msgs, err := s.Append(testCtx(t), drafts)
	if err != nil || len(msgs) != len(drafts) {
		t.Fatalf("Append = %d messages, %v; want %d", len(msgs), err, len(drafts))
	}
	return msgs
}

func d(user, data string) module.Draft {
	return module.Draft{UserID: user, Data: []byte(data), TTL: time.Hour}
}

func ids(msgs []module.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// TestReopenKeepsEverything: messages, their statuses and the unread queue, a purged user's
// head, idempotency records and the epoch are in the folder, and ids go on increasing.
func TestReopenKeepsEverything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "push")
	s1, err := Open(dir, module.StoreOptions{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	msgs := mustAppend(t, s1, d("u", `1`), d("u", `2`), d("u", `3`), d("gone", `4`))
	at := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
	s1.MarkWritten("u", ids(msgs[:1]), true, at)
	s1.Ack("u", ids(msgs[1:2]), at.Add(time.Second))
	if n, err := s1.Purge(ctx, "gone"); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	key := module.IdempotencyKey{Scope: "s", Key: "k", Fingerprint: "fp", Window: time.Hour}
	if st, _, err := s1.Begin(ctx, key); err != nil || st != module.IdempotencyNew {
		t.Fatalf("Begin = %v, %v", st, err)
	}
	once, _, err := s1.AppendOnce(ctx, key, []module.Draft{d("u", `5`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Finish(ctx, key, []byte(`{"ok":1}`)); err != nil {
		t.Fatal(err)
	}
	epoch, _ := s1.Epoch(ctx)
	if err := s1.Close(); err != nil { // the marks are only queued: Close commits them
		t.Fatal(err)
	}

	s2 := openT(t, dir, module.StoreOptions{})
	if again, _ := s2.Epoch(ctx); again != epoch {
		t.Fatalf("epoch after reopen %q, before %q", again, epoch)
	}
	sts, err := s2.Statuses(ctx, "u", 0, 0)
	if err != nil || len(sts) != 4 {
		t.Fatalf("Statuses after reopen = %v, %v", sts, err)
	}
	if got := []string{sts[0].Status(), sts[1].Status(), sts[2].Status()}; !slices.Equal(got, []string{"sent", "acked", "pending"}) ||
		!sts[0].SentAt.Equal(at) || !sts[1].AckedAt.Equal(at.Add(time.Second)) {
		t.Fatalf("statuses after reopen %v, sent %v, acked %v", got, sts[0].SentAt, sts[1].AckedAt)
	}
	pending, err := s2.Backlog(ctx, "u", module.BacklogQuery{Since: once[0].ID, Pending: true})
	if want := []uint64{msgs[2].ID, once[0].ID}; err != nil || !slices.Equal(ids(pending), want) {
		t.Fatalf("unread queue after reopen = %v, %v; want %v", ids(pending), err, want)
	}
	if h, err := s2.Head(ctx, "gone"); err != nil || h.LastID != msgs[3].ID {
		t.Fatalf("Head of the purged user after reopen = %+v, %v; want %d", h, err, msgs[3].ID)
	}
	st, rec, err := s2.Begin(ctx, key)
	if err != nil || st != module.IdempotencyDone || string(rec.Body) != `{"ok":1}` || rec.Results[0].ID != once[0].ID {
		t.Fatalf("Begin after reopen = %v, %+v, %v", st, rec, err)
	}
	if next := mustAppend(t, s2, d("w", `6`)); next[0].ID <= once[0].ID {
		t.Fatalf("id %d after reopen, not above %d", next[0].ID, once[0].ID)
	}
}

// TestIDCeilingAfterALostCommit: Pebble makes a batch visible before its sync returns, so after a
// power loss its ids must not come back for other messages. A lost commit is played by deleting
// the messages, the users' states and the saved counter behind the store's back: after a reopen
// the next id is still above every id handed out before (the counter resumes at the ceiling).
func TestIDCeilingAfterALostCommit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "push")
	s1, err := Open(dir, module.StoreOptions{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := mustAppend(t, s1, d("u", `1`), d("w", `2`))
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := cpebble.Open(dir, &cpebble.Options{Logger: pebbleLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{messageKey(nil, "u", first[0].ID), messageKey(nil, "w", first[1].ID),
		userKey(nil, kindUser, "u"), userKey(nil, kindUser, "w"), metaLastID} {
		if err := db.Delete(k, cpebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, dir, module.StoreOptions{})
	again := mustAppend(t, s2, d("u", `3`))
	if again[0].ID <= first[1].ID {
		t.Fatalf("id %d after a lost commit reuses an id handed out before (up to %d)", again[0].ID, first[1].ID)
	}
}

// TestReadsRacingClose: reads that race Close get an error, never a panic (Pebble panics on a
// closed database).
func TestReadsRacingClose(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "push"), module.StoreOptions{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, d("u", `1`), d("u", `2`))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = s.Backlog(ctx, "u", module.BacklogQuery{})
				_, _ = s.Head(ctx, "u")
				_, _ = s.Statuses(ctx, "u", 0, 0)
			}
		}()
	}
	mustAppend(t, s, d("u", `3`))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if _, err := s.Head(context.Background(), "u"); !errors.Is(err, module.ErrClosed) {
		t.Fatalf("Head after Close = %v, want ErrClosed", err)
	}
}
