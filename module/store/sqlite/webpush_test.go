package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"pushlane/module"
	"pushlane/module/webpush"
	"pushlane/module/webpush/pushtest"
)

func TestWebPushConformance(t *testing.T) {
	pushtest.Run(t, func(t *testing.T, opts module.StoreOptions) webpush.Store {
		return openT(t, filepath.Join(t.TempDir(), "push.db"), opts)
	})
}

// TestDuePushSurvivesReopen: a due push written with its message is in the file: a store
// reopened on it (a restarted server) claims it.
func TestDuePushSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	opts := module.StoreOptions{WebPush: &module.PushSchedule{Delay: time.Minute}}
	s1 := openT(t, path, opts)
	sub := webpush.Subscription{ID: "s1", UserID: "u", Endpoint: "https://push.example/1", P256dh: "p", Auth: "a", CreatedAt: time.Now()}
	if _, _, _, err := s1.SaveSubscription(testCtx(t), sub, 10); err != nil {
		t.Fatal(err)
	}
	m := mustAppend(t, s1, d("u", `"due later"`))
	closeT(t, s1)

	s2 := openT(t, path, opts)
	if subs, err := s2.Subscriptions(testCtx(t), "u"); err != nil || len(subs) != 1 || subs[0].ID != "s1" {
		t.Fatalf("subscriptions after reopen: %+v, %v", subs, err)
	}
	due, err := s2.ClaimDue(testCtx(t), m[0].CreatedAt.Add(time.Minute), 10, time.Minute)
	if err != nil || len(due) != 1 || due[0].MsgID != m[0].ID || !due[0].FanOut() {
		t.Fatalf("claimed after reopen: %+v, %v; want the fan-out record of %d", due, err, m[0].ID)
	}
}
