package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"pushlane/module"
)

func epochOf(t *testing.T, s *Store) string {
	t.Helper()
	ep, err := s.Epoch(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// closeT closes s and fails the test on an error.
func closeT(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestEpochKeptInTheFile: reopening a file keeps its epoch; a new file gets another.
func TestEpochKeptInTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s1 := openFirst(t, path, module.StoreOptions{})
	first := epochOf(t, s1)
	mustAppend(t, s1, d("u", `1`))
	closeT(t, s1)
	s2 := openT(t, path, module.StoreOptions{})
	if again := epochOf(t, s2); again != first {
		t.Fatalf("epoch after reopen %q, before %q", again, first)
	}
	if h, err := s2.Head(testCtx(t), "u"); err != nil || h.Epoch != first {
		t.Fatalf("Head after reopen = %+v, %v; want epoch %q", h, err, first)
	}
	other := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{})
	if ep := epochOf(t, other); ep == first {
		t.Fatalf("a new file has the epoch %q of another", ep)
	}
}

// TestHeadKeptAcrossReopen: a user's newest id survives its message's expiry and a restart, even
// when older messages of the user remain.
func TestHeadKeptAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s1 := openFirst(t, path, module.StoreOptions{SweepInterval: 10 * time.Millisecond})
	keep := mustAppend(t, s1, d("u", `"keep"`))
	short := mustAppend(t, s1, module.Draft{UserID: "u", Data: []byte(`"short"`), TTL: 20 * time.Millisecond},
		module.Draft{UserID: "w", Data: []byte(`"short"`), TTL: 20 * time.Millisecond})
	waitUntil(t, 10*time.Second, "the sweeper to delete the expired rows", func() bool {
		var n int
		if err := s1.read.QueryRow(`SELECT COUNT(*) FROM messages`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	closeT(t, s1)
	s2 := openT(t, path, module.StoreOptions{})
	for user, want := range map[string]uint64{"u": short[0].ID, "w": short[1].ID} {
		if last, err := lastID(testCtx(t), s2, user); err != nil || last != want {
			t.Fatalf("Head(%s).LastID after expiry and reopen = %d, %v; want %d", user, last, err, want)
		}
	}
	if got := mustBacklog(t, s2, "u", module.BacklogQuery{}); !slices.Equal(msgIDs(got), msgIDs(keep)) {
		t.Fatalf("u holds %v, want %v", msgIDs(got), msgIDs(keep))
	}
}

// TestStatusesSurviveReopen: sent, acked and pushed times and the unread queue are in the file.
func TestStatusesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s1 := openFirst(t, path, module.StoreOptions{})
	msgs := mustAppend(t, s1, d("u", `1`), d("u", `2`), d("u", `3`), d("u", `4`))
	at := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
	s1.MarkWritten("u", msgIDs(msgs[:1]), false, at)
	s1.MarkWritten("u", msgIDs(msgs[1:2]), true, at.Add(time.Second))
	s1.Ack("u", msgIDs(msgs[2:3]), at.Add(2*time.Second))
	s1.MarkPushed("u", msgs[3].ID, at.Add(3*time.Second))
	closeT(t, s1) // the marks are only queued: Close commits them
	s2 := openT(t, path, module.StoreOptions{})
	sts, err := s2.Statuses(testCtx(t), "u", 0, 10)
	if err != nil || len(sts) != 4 {
		t.Fatalf("Statuses after reopen = %v, %v", sts, err)
	}
	want := []struct {
		status              string
		sent, acked, pushed time.Duration // after at; -1 = not set
	}{{"sent", 0, -1, -1}, {"sent", time.Second, -1, -1}, {"acked", 2 * time.Second, 2 * time.Second, -1}, {"pending", -1, -1, 3 * time.Second}}
	for i, st := range sts {
		w := want[i]
		when := func(d time.Duration) time.Time {
			if d < 0 {
				return time.Time{}
			}
			return at.Add(d)
		}
		if st.Status() != w.status || !st.SentAt.Equal(when(w.sent)) || !st.AckedAt.Equal(when(w.acked)) || !st.PushedAt.Equal(when(w.pushed)) {
			t.Fatalf("message %d after reopen: %q sent %v acked %v pushed %v; want %+v from %v", i, st.Status(), st.SentAt, st.AckedAt, st.PushedAt, w, at)
		}
	}
	pending := mustBacklog(t, s2, "u", module.BacklogQuery{Since: msgs[3].ID, Pending: true})
	if want := msgIDs([]module.Message{msgs[0], msgs[3]}); !slices.Equal(msgIDs(pending), want) {
		t.Fatalf("unread queue after reopen = %v, want %v", msgIDs(pending), want)
	}
}

// TestAckOfAnotherUsersIDChangesNothing: ids are global in this store, so the user is part of
// every mark; here the rows themselves are checked.
func TestAckOfAnotherUsersIDChangesNothing(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{})
	u := mustAppend(t, s, d("u", `1`))
	s.Ack("v", msgIDs(u), time.Now())
	s.MarkWritten("v", msgIDs(u), true, time.Now())
	s.MarkPushed("v", u[0].ID, time.Now())
	if err := s.flushMarks(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var changed int
	err := s.read.QueryRow(`SELECT COUNT(*) FROM messages WHERE sent_at IS NOT NULL OR acked_at IS NOT NULL
		OR pushed_at IS NOT NULL OR queued = 0`).Scan(&changed)
	if err != nil || changed != 0 {
		t.Fatalf("%d rows changed by marks of another user, %v", changed, err)
	}
}

// TestMarksQueueIsBounded: while the writer is held (a stalled disk), marks beyond the bound are
// dropped instead of growing memory; the ones kept are committed.
func TestMarksQueueIsBounded(t *testing.T) {
	s, gate := openGated(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{})
	s.marks.limit = 10
	msgs := mustAppend(t, s, d("u", `1`), d("u", `2`), d("u", `3`), d("u", `4`))
	appended := gate.holdWriter(t, s) // marks only queue now
	queued := func() int {
		s.marks.mu.Lock()
		defer s.marks.mu.Unlock()
		return s.marks.queued
	}
	s.MarkWritten("u", msgIDs(msgs[:2]), true, time.Now())
	if q := queued(); q != 2 {
		t.Fatalf("%d ids queued, want 2", q)
	}
	s.MarkWritten("u", make([]uint64, 9), true, time.Now()) // 2 + 9 > 10: dropped whole
	s.MarkWritten("u", msgIDs(msgs[2:3]), true, time.Now())
	if q := queued(); q != 3 {
		t.Fatalf("%d ids queued after a mark over the bound, want 3", q)
	}
	gate.release()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	pending := mustBacklog(t, s, "u", module.BacklogQuery{Since: msgs[3].ID, Pending: true})
	if want := msgIDs(msgs[3:]); !slices.Equal(msgIDs(pending), want) {
		t.Fatalf("pending = %v, want %v", msgIDs(pending), want)
	}
}

// TestIdempotencySurvivesReopen: records are in the file (with or without the body); claims are
// not (a restart ends every request in progress).
func TestIdempotencySurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s1 := openFirst(t, path, module.StoreOptions{})
	ctx := testCtx(t)
	key := func(k string) module.IdempotencyKey {
		return module.IdempotencyKey{Scope: "scope", Key: k, Fingerprint: "fp-" + k, Window: time.Hour}
	}
	begin := func(s *Store, k module.IdempotencyKey, want module.IdempotencyState) *module.IdempotencyRecord {
		t.Helper()
		st, rec, err := s.Begin(ctx, k)
		if err != nil || st != want {
			t.Fatalf("Begin(%s) = %d, %v; want %d", k.Key, st, err, want)
		}
		return rec
	}
	begin(s1, key("finished"), module.IdempotencyNew)
	finished, _, err := s1.AppendOnce(ctx, key("finished"), []module.Draft{d("u", `1`), d("v", `1`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Finish(ctx, key("finished"), []byte(`{"done":true}`)); err != nil {
		t.Fatal(err)
	}
	begin(s1, key("stored"), module.IdempotencyNew)
	stored, _, err := s1.AppendOnce(ctx, key("stored"), []module.Draft{d("u", `2`)})
	if err != nil {
		t.Fatal(err)
	}
	begin(s1, key("claimed"), module.IdempotencyNew)
	closeT(t, s1)

	s2 := openT(t, path, module.StoreOptions{})
	rec := begin(s2, key("finished"), module.IdempotencyDone)
	want := []module.IdempotentResult{{UserID: "u", ID: finished[0].ID}, {UserID: "v", ID: finished[1].ID}}
	if rec.Fingerprint != "fp-finished" || !slices.Equal(rec.Results, want) || string(rec.Body) != `{"done":true}` {
		t.Fatalf("record after reopen = %+v, want %v with the body", rec, want)
	}
	rec = begin(s2, key("stored"), module.IdempotencyDone)
	if !slices.Equal(rec.Results, []module.IdempotentResult{{UserID: "u", ID: stored[0].ID}}) || rec.Body != nil {
		t.Fatalf("unfinished record after reopen = %+v", rec)
	}
	begin(s2, key("claimed"), module.IdempotencyNew)
}

// TestIdempotencyRecordsSwept: expired records leave the file.
func TestIdempotencyRecordsSwept(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{SweepInterval: 10 * time.Millisecond})
	ctx := testCtx(t)
	for i := range 3 {
		k := module.IdempotencyKey{Key: fmt.Sprint(i), Fingerprint: "fp", Window: 20 * time.Millisecond}
		if i == 2 {
			k.Window = time.Hour
		}
		if _, _, err := s.AppendOnce(ctx, k, []module.Draft{d("u", `1`)}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 10*time.Second, "the sweeper to delete the expired records", func() bool {
		var n int
		if err := s.read.QueryRow(`SELECT COUNT(*) FROM idempotency`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	var key string
	if err := s.read.QueryRow(`SELECT key FROM idempotency`).Scan(&key); err != nil || key != "2" {
		t.Fatalf("the record left is %q, %v; want the unexpired one", key, err)
	}
}

// TestResultsEncoding: the packed results round-trip, and damaged bytes are an error, not a panic.
func TestResultsEncoding(t *testing.T) {
	msgs := []module.Message{{UserID: "u", ID: 1}, {UserID: "a:b@c.d-e_f", ID: 1<<63 - 1}, {UserID: "x", ID: 300}}
	b := encodeResults(msgs)
	got, err := decodeResults(b)
	if err != nil || len(got) != 3 || got[1].UserID != "a:b@c.d-e_f" || got[1].ID != 1<<63-1 || got[2].ID != 300 {
		t.Fatalf("decode = %v, %v", got, err)
	}
	for i := 1; i < len(b); i++ {
		if _, err := decodeResults(b[:i]); err == nil && !bytes.Equal(encodeResults(msgs[:1]), b[:i]) &&
			!bytes.Equal(encodeResults(msgs[:2]), b[:i]) {
			t.Fatalf("a truncated record (%d of %d bytes) decoded without error", i, len(b))
		}
	}
	if _, err := decodeResults([]byte{0xff}); !errors.Is(err, errBadResults) {
		t.Fatalf("decode of junk = %v", err)
	}
}

// firstVersionSchema is the schema of the first version of this store, to test the migration.
const firstVersionSchema = `
CREATE TABLE messages (
	id           INTEGER PRIMARY KEY,
	user_id      TEXT    NOT NULL,
	data         BLOB    NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	delivered_at INTEGER,
	acked_at     INTEGER
);
CREATE INDEX messages_by_user ON messages(user_id, id);
CREATE INDEX messages_by_expiry ON messages(expires_at);
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
`

// TestMigrationFromFirstVersion: a file written by the first version opens with its messages;
// delivered ones are sent and out of the unread queue; ids continue above the saved counter.
func TestMigrationFromFirstVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Minute).UnixMilli()
	expires := time.Now().Add(time.Hour).UnixMilli()
	delivered := created + 500
	if _, err := old.Exec(firstVersionSchema); err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct {
		id        int64
		user      string
		delivered any
	}{{3, "u", delivered}, {5, "u", nil}, {6, "v", nil}, {9, "u", nil}} {
		if _, err := old.Exec(`INSERT INTO messages (id, user_id, data, created_at, expires_at, delivered_at) VALUES (?, ?, ?, ?, ?, ?)`,
			row.id, row.user, fmt.Sprintf(`{"n":%d}`, row.id), created, expires, row.delivered); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.Exec(`INSERT INTO meta (key, value) VALUES ('last_id', 12)`); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 { // the second open finds the file up to date
		s, err := Open(path, module.StoreOptions{})
		if err != nil {
			t.Fatalf("open %d of the first version's file: %v", round, err)
		}
		ctx := testCtx(t)
		all := mustBacklog(t, s, "u", module.BacklogQuery{})
		if !slices.Equal(msgIDs(all), []uint64{3, 5, 9}) || string(all[0].Data) != `{"n":3}` || all[0].CreatedAt.UnixMilli() != created {
			t.Fatalf("open %d: u holds %v (%s)", round, msgIDs(all), all[0].Data)
		}
		wantQueue := [][]uint64{{5, 9}, {9}}[round] // 5 is acked in the first round
		pending := mustBacklog(t, s, "u", module.BacklogQuery{Since: 9, Pending: true})
		if !slices.Equal(msgIDs(pending), wantQueue) {
			t.Fatalf("open %d: unread queue %v, want %v", round, msgIDs(pending), wantQueue)
		}
		st, err := s.Status(ctx, "u", 3)
		if err != nil || st.Status() != "sent" || st.SentAt.UnixMilli() != delivered {
			t.Fatalf("open %d: status of a delivered message = %+v, %v", round, st, err)
		}
		if h, err := s.Head(ctx, "u"); err != nil || h.LastID != 9 || !epochSyntax.MatchString(h.Epoch) {
			t.Fatalf("open %d: Head(u) = %+v, %v", round, h, err)
		}
		if round == 0 {
			next := mustAppend(t, s, d("v", `1`))
			if next[0].ID != 13 {
				t.Fatalf("first id after the migration %d, want 13 (the saved counter was 12)", next[0].ID)
			}
			s.Ack("u", []uint64{5}, time.Now())
		} else {
			if st, err := s.Stats(ctx, "u"); err != nil || st != (module.UserStats{Stored: 3, Pending: 1}) {
				t.Fatalf("stats after the second open = %+v, %v", st, err)
			}
		}
		closeT(t, s)
	}
}

// TestUserCountsFollowEveryDeletion: appends trim from the writer's cached count of each user's
// rows (counts.go), so every deletion must reach that count: a count left high by the sweep or
// a purge would trim messages that are not over the limit. maxPerUser 3: three messages that
// expire and are swept, or are purged, leave room for three new ones, all kept.
func TestUserCountsFollowEveryDeletion(t *testing.T) {
	s := openT(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{MaxPerUser: 3, SweepInterval: 10 * time.Millisecond})
	rows := func(user string) int {
		var n int
		if err := s.read.QueryRow(`SELECT COUNT(*) FROM messages WHERE user_id = ?`, user).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	keeps := func(step string, want []module.Message) {
		t.Helper()
		got := mustBacklog(t, s, "u", module.BacklogQuery{})
		if !slices.Equal(msgIDs(got), msgIDs(want)) {
			t.Fatalf("%s: u holds %v, want %v", step, msgIDs(got), msgIDs(want))
		}
	}
	all := mustAppend(t, s, d("u", `1`), d("u", `2`), d("u", `3`), d("u", `4`))
	keeps("over the limit", all[1:])
	short := module.Draft{UserID: "u", Data: []byte(`"short"`), TTL: 20 * time.Millisecond}
	mustAppend(t, s, short, short, short) // trims the three above, then expires
	waitUntil(t, 10*time.Second, "the sweeper to delete the expired rows", func() bool { return rows("u") == 0 })
	fresh := mustAppend(t, s, d("u", `5`), d("u", `6`))
	fresh = append(fresh, mustAppend(t, s, d("u", `7`))...)
	keeps("after the sweep", fresh)
	if n, err := s.Purge(testCtx(t), "u"); err != nil || n != 3 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	again := mustAppend(t, s, d("u", `8`), d("u", `9`), d("u", `10`))
	keeps("after the purge", again)
	more := mustAppend(t, s, d("u", `11`))
	keeps("over the limit again", append(again[1:], more...))
}
