// Package pushtest is the conformance suite of webpush.Store: subscriptions, due pushes written
// with the append, claims, expansion and retries. A store driver's test calls Run with a function
// that opens a fresh, empty store for the given options:
//
//	func TestWebPushConformance(t *testing.T) {
//		pushtest.Run(t, func(t *testing.T, opts module.StoreOptions) webpush.Store {
//			return memory.New(opts)
//		})
//	}
//
// The suite closes every store it opens (Close must be idempotent).
package pushtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"pushlane/module"
	"pushlane/module/webpush"
)

// Opener opens a fresh, empty store with opts.
type Opener = func(t *testing.T, opts module.StoreOptions) webpush.Store

// Run runs the suite; every subtest opens its own stores, in parallel.
func Run(t *testing.T, open Opener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"SubscriptionsSaveListDelete", testSubscriptions},
		{"SameEndpointKeepsID", testSameEndpoint},
		{"MaxPerUserReplacesOldest", testMaxPerUser},
		{"AppendSchedulesSubscribedUsersOnly", testAppendSchedules},
		{"AppendWithWebPushOffSchedulesNothing", testWebPushOff},
		{"ClaimHidesUntilTheLeaseEnds", testClaimLease},
		{"ClaimOldestFirstWithinLimit", testClaimOrder},
		{"ExpandIntoOneRecordPerSubscription", testExpand},
		{"FinishWithRetry", testFinishRetry},
		{"ConcurrentClaimsTakeEachRecordOnce", testConcurrentClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openT(t *testing.T, open Opener, delay *time.Duration) webpush.Store {
	t.Helper()
	opts := module.StoreOptions{}
	if delay != nil {
		opts.WebPush = &module.PushSchedule{Delay: *delay}
	}
	s := open(t, opts)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ptr[T any](v T) *T { return &v }

// sub is a subscription of user u with endpoint n (keys are not checked by stores).
func sub(u string, n int) webpush.Subscription {
	return webpush.Subscription{
		ID: fmt.Sprintf("%s-sub-%d-%d", u, n, time.Now().UnixNano()), UserID: u,
		Endpoint: fmt.Sprintf("https://push.example/%s/%d", u, n), P256dh: "p256dh", Auth: "auth", CreatedAt: time.Now(),
	}
}

func save(t *testing.T, s webpush.Store, x webpush.Subscription, maxPerUser int) (webpush.Subscription, bool, int) {
	t.Helper()
	saved, created, removed, err := s.SaveSubscription(ctxOf(t), x, maxPerUser)
	if err != nil {
		t.Fatalf("SaveSubscription: %v", err)
	}
	return saved, created, removed
}

func list(t *testing.T, s webpush.Store, u string) []webpush.Subscription {
	t.Helper()
	subs, err := s.Subscriptions(ctxOf(t), u)
	if err != nil {
		t.Fatalf("Subscriptions: %v", err)
	}
	return subs
}

func ids(subs []webpush.Subscription) []string {
	out := make([]string, len(subs))
	for i, x := range subs {
		out[i] = x.ID
	}
	return out
}

func appendOne(t *testing.T, s webpush.Store, u string) module.Message {
	t.Helper()
	msgs, err := s.Append(ctxOf(t), []module.Draft{{UserID: u, Data: []byte(`{"n":1}`), TTL: time.Hour}})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Append: %v %v", msgs, err)
	}
	return msgs[0]
}

func claim(t *testing.T, s webpush.Store, now time.Time, limit int) []webpush.Due {
	t.Helper()
	due, err := s.ClaimDue(ctxOf(t), now, limit, time.Minute)
	if err != nil {
		t.Fatalf("ClaimDue: %v", err)
	}
	return due
}

func count(t *testing.T, s webpush.Store) int {
	t.Helper()
	n, err := s.CountDue(ctxOf(t))
	if err != nil {
		t.Fatalf("CountDue: %v", err)
	}
	return n
}

func testSubscriptions(t *testing.T, open Opener) {
	s := openT(t, open, nil)
	a, b := sub("u", 1), sub("u", 2)
	if _, created, _ := save(t, s, a, 10); !created {
		t.Fatal("first save: created false")
	}
	save(t, s, b, 10)
	save(t, s, sub("other", 1), 10)
	got := list(t, s, "u")
	if !slices.Equal(ids(got), []string{a.ID, b.ID}) {
		t.Fatalf("Subscriptions(u) = %v, want %v (oldest first)", ids(got), []string{a.ID, b.ID})
	}
	if g := got[0]; g.Endpoint != a.Endpoint || g.P256dh != a.P256dh || g.Auth != a.Auth || g.UserID != "u" ||
		g.CreatedAt.UnixMilli() != a.CreatedAt.UnixMilli() {
		t.Fatalf("stored %+v, saved %+v", g, a)
	}
	if ok, err := s.DeleteSubscription(ctxOf(t), "other", a.ID); err != nil || ok {
		t.Fatalf("delete of u's subscription as another user = %v, %v; want false", ok, err)
	}
	if ok, err := s.DeleteSubscription(ctxOf(t), "u", a.ID); err != nil || !ok {
		t.Fatalf("delete = %v, %v; want true", ok, err)
	}
	if ok, err := s.DeleteSubscription(ctxOf(t), "u", a.ID); err != nil || ok {
		t.Fatalf("second delete = %v, %v; want false", ok, err)
	}
	if ok, err := s.DeleteSubscription(ctxOf(t), "u", "#seq"); err != nil || ok {
		t.Fatalf("delete of a made-up id = %v, %v; want false", ok, err)
	}
	if got := list(t, s, "u"); !slices.Equal(ids(got), []string{b.ID}) {
		t.Fatalf("after delete: %v, want %v", ids(got), []string{b.ID})
	}
	if got := list(t, s, "nobody"); len(got) != 0 {
		t.Fatalf("Subscriptions(nobody) = %v", got)
	}
}

func testSameEndpoint(t *testing.T, open Opener) {
	s := openT(t, open, nil)
	a := sub("u", 1)
	first, _, _ := save(t, s, a, 10)
	again := a
	again.ID, again.P256dh, again.Auth = "another-id", "new-p256dh", "new-auth"
	saved, created, removed := save(t, s, again, 10)
	if created || removed != 0 || saved.ID != first.ID {
		t.Fatalf("same endpoint again: %+v created %v removed %d; want id %s, not created", saved, created, removed, first.ID)
	}
	got := list(t, s, "u")
	if len(got) != 1 || got[0].ID != first.ID || got[0].P256dh != "new-p256dh" || got[0].Auth != "new-auth" {
		t.Fatalf("after re-registering: %+v, want one subscription with the new keys", got)
	}
	// The same endpoint for another user is another subscription.
	if _, created, _ := save(t, s, webpush.Subscription{ID: "v-1", UserID: "v", Endpoint: a.Endpoint, P256dh: "p", Auth: "a", CreatedAt: time.Now()}, 10); !created {
		t.Fatal("the same endpoint for another user was not created")
	}
}

func testMaxPerUser(t *testing.T, open Opener) {
	s := openT(t, open, nil)
	var all []webpush.Subscription
	for i := range 5 {
		x := sub("u", i)
		all = append(all, x)
		_, created, removed := save(t, s, x, 3)
		if want := max(0, min(1, i-2)); !created || removed != want {
			t.Fatalf("save %d: created %v removed %d, want created, %d removed", i, created, removed, want)
		}
	}
	if got := list(t, s, "u"); !slices.Equal(ids(got), ids(all[2:])) {
		t.Fatalf("kept %v, want the newest three %v", ids(got), ids(all[2:]))
	}
}

func testAppendSchedules(t *testing.T, open Opener) {
	s := openT(t, open, ptr(time.Minute))
	save(t, s, sub("subscribed", 1), 10)
	m := appendOne(t, s, "subscribed")
	appendOne(t, s, "plain")
	if n := count(t, s); n != 1 {
		t.Fatalf("due records after two appends = %d, want 1 (only the subscribed user's)", n)
	}
	if due := claim(t, s, m.CreatedAt.Add(time.Minute-time.Second), 10); len(due) != 0 {
		t.Fatalf("claimed %+v a second before the delay", due)
	}
	due := claim(t, s, m.CreatedAt.Add(time.Minute+time.Millisecond), 10)
	if len(due) != 1 || due[0].UserID != "subscribed" || due[0].MsgID != m.ID || !due[0].FanOut() || due[0].Attempt != 0 || due[0].Claim == "" {
		t.Fatalf("claimed %+v, want the fan-out record of %d", due, m.ID)
	}
}

func testWebPushOff(t *testing.T, open Opener) {
	s := openT(t, open, nil)
	save(t, s, sub("u", 1), 10)
	m := appendOne(t, s, "u")
	if n := count(t, s); n != 0 {
		t.Fatalf("due records with Web Push off = %d", n)
	}
	if due := claim(t, s, m.CreatedAt.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("claimed %+v with Web Push off", due)
	}
}

func testClaimLease(t *testing.T, open Opener) {
	s := openT(t, open, ptr(time.Duration(0)))
	save(t, s, sub("u", 1), 10)
	m := appendOne(t, s, "u")
	now := m.CreatedAt.Add(time.Second)
	first := claim(t, s, now, 10)
	if len(first) != 1 {
		t.Fatalf("claimed %+v, want one", first)
	}
	if again := claim(t, s, now.Add(59*time.Second), 10); len(again) != 0 {
		t.Fatalf("claimed again within the lease: %+v", again)
	}
	second := claim(t, s, now.Add(time.Minute), 10)
	if len(second) != 1 || second[0].Claim == first[0].Claim {
		t.Fatalf("after the lease: %+v (first claim %q), want the record under a new token", second, first[0].Claim)
	}
	if err := s.FinishDue(ctxOf(t), first[0], nil); !errors.Is(err, webpush.ErrClaimLost) {
		t.Fatalf("FinishDue with the lapsed claim = %v, want ErrClaimLost", err)
	}
	if err := s.ExpandDue(ctxOf(t), first[0], now); !errors.Is(err, webpush.ErrClaimLost) {
		t.Fatalf("ExpandDue with the lapsed claim = %v, want ErrClaimLost", err)
	}
	if n := count(t, s); n != 1 {
		t.Fatalf("a lapsed claim changed the records: %d, want 1", n)
	}
	if err := s.FinishDue(ctxOf(t), second[0], nil); err != nil {
		t.Fatalf("FinishDue: %v", err)
	}
	if n := count(t, s); n != 0 {
		t.Fatalf("after FinishDue: %d records", n)
	}
}

func testClaimOrder(t *testing.T, open Opener) {
	s := openT(t, open, ptr(time.Duration(0)))
	for _, u := range []string{"a", "b", "c"} {
		save(t, s, sub(u, 1), 10)
	}
	var msgs []module.Message
	for _, u := range []string{"a", "b", "c"} {
		msgs = append(msgs, appendOne(t, s, u))
	}
	now := msgs[2].CreatedAt.Add(time.Second)
	// Push the first one's due time past the others through a retry.
	first := claim(t, s, now, 3)
	if len(first) != 3 {
		t.Fatalf("claimed %d, want 3", len(first))
	}
	for i, d := range first {
		at := now.Add(time.Duration(3-i) * time.Second) // a last, c first
		if err := s.FinishDue(ctxOf(t), d, []webpush.Retry{{SubID: d.SubID, At: at, Attempt: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	later := now.Add(10 * time.Second)
	for {
		due := claim(t, s, later, 1)
		if len(due) == 0 {
			break
		}
		if len(due) != 1 {
			t.Fatalf("limit 1 claimed %d", len(due))
		}
		order = append(order, due[0].UserID)
	}
	byUser := map[string]string{first[0].UserID: "3", first[1].UserID: "2", first[2].UserID: "1"}
	want := []string{first[2].UserID, first[1].UserID, first[0].UserID}
	if !slices.Equal(order, want) {
		t.Fatalf("claim order %v, want %v (by due time %v)", order, want, byUser)
	}
}

func testExpand(t *testing.T, open Opener) {
	s := openT(t, open, ptr(time.Duration(0)))
	a, b := sub("u", 1), sub("u", 2)
	save(t, s, a, 10)
	save(t, s, b, 10)
	m := appendOne(t, s, "u")
	now := m.CreatedAt.Add(time.Second)
	fan := claim(t, s, now, 10)
	if len(fan) != 1 || !fan[0].FanOut() {
		t.Fatalf("claimed %+v, want one fan-out record", fan)
	}
	c := sub("u", 3) // subscribes after the message was stored, before it came due
	save(t, s, c, 10)
	if err := s.ExpandDue(ctxOf(t), fan[0], now); err != nil {
		t.Fatalf("ExpandDue: %v", err)
	}
	if err := s.ExpandDue(ctxOf(t), fan[0], now); !errors.Is(err, webpush.ErrClaimLost) {
		t.Fatalf("second ExpandDue = %v, want ErrClaimLost", err)
	}
	due := claim(t, s, now, 10)
	var subs []string
	for _, d := range due {
		if d.UserID != "u" || d.MsgID != m.ID || d.FanOut() || d.Attempt != 0 {
			t.Fatalf("expanded record %+v", d)
		}
		subs = append(subs, d.SubID)
	}
	slices.Sort(subs)
	want := []string{a.ID, b.ID, c.ID}
	slices.Sort(want)
	if !slices.Equal(subs, want) {
		t.Fatalf("expanded into %v, want one per subscription %v", subs, want)
	}
}

func testFinishRetry(t *testing.T, open Opener) {
	s := openT(t, open, ptr(time.Duration(0)))
	a := sub("u", 1)
	save(t, s, a, 10)
	m := appendOne(t, s, "u")
	now := m.CreatedAt.Add(time.Second)
	fan := claim(t, s, now, 10)
	if err := s.ExpandDue(ctxOf(t), fan[0], now); err != nil {
		t.Fatal(err)
	}
	one := claim(t, s, now, 10)
	if len(one) != 1 || one[0].SubID != a.ID {
		t.Fatalf("claimed %+v", one)
	}
	at := now.Add(30 * time.Second)
	if err := s.FinishDue(ctxOf(t), one[0], []webpush.Retry{{SubID: a.ID, At: at, Attempt: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, at.Add(-time.Millisecond), 10); len(got) != 0 {
		t.Fatalf("retry claimed before its time: %+v", got)
	}
	got := claim(t, s, at, 10)
	if len(got) != 1 || got[0].SubID != a.ID || got[0].Attempt != 1 || got[0].MsgID != m.ID {
		t.Fatalf("retry claimed as %+v, want attempt 1 of %s", got, a.ID)
	}
	if err := s.FinishDue(ctxOf(t), got[0], nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s); n != 0 {
		t.Fatalf("%d records left", n)
	}
}

func testConcurrentClaims(t *testing.T, open Opener) {
	s := openT(t, open, ptr(time.Duration(0)))
	const users = 40
	for i := range users {
		save(t, s, sub(fmt.Sprint("u", i), 1), 10)
	}
	var last module.Message
	for i := range users {
		last = appendOne(t, s, fmt.Sprint("u", i))
	}
	now := last.CreatedAt.Add(time.Second)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				due, err := s.ClaimDue(context.Background(), now, 3, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(due) == 0 {
					return
				}
				mu.Lock()
				for _, d := range due {
					seen[fmt.Sprint(d.UserID, d.MsgID)]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != users {
		t.Fatalf("claimed %d distinct records, want %d", len(seen), users)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("record %s claimed %d times", k, n)
		}
	}
}
