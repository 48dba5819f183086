package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"pushlane/module"
)

// healthWithin calls Health with a deadline and fails the test if it returns long after it: the
// writer may be stuck for busy_timeout (10 s), and Health must not be.
func healthWithin(t *testing.T, s *Store, deadline time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err := s.Health(ctx)
	if took := time.Since(start); took > deadline+5*time.Second {
		t.Fatalf("Health took %v with a deadline of %v", took, deadline)
	}
	return err
}

// TestHealthWhileAnotherConnectionHoldsTheWriteLock: another connection (as another process
// would) holds the database's write lock; publishes then wait up to busy_timeout, and Health
// says so within its deadline instead of ok. Once the lock is released the store is healthy.
func TestHealthWhileAnotherConnectionHoldsTheWriteLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "push.db")
	s := openT(t, path, module.StoreOptions{})
	mustAppend(t, s, d("u", `1`))
	if err := healthWithin(t, s, 5*time.Second); err != nil {
		t.Fatalf("Health before the lock: %v", err)
	}
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := testCtx(t)
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			_, _ = conn.ExecContext(context.Background(), `ROLLBACK`)
		}
	}()
	err = healthWithin(t, s, 300*time.Millisecond)
	if err == nil {
		t.Fatal("Health is ok while another connection holds the write lock")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Health = %v, want the probe unfinished at the deadline", err)
	}
	t.Logf("while locked: %v", err)
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	locked = false
	waitUntil(t, 20*time.Second, "Health to recover after the lock is released", func() bool {
		return healthWithin(t, s, 5*time.Second) == nil
	})
	mustAppend(t, s, d("u", `2`))
}

// TestHealthProbesShareOneWrite: Health calls that come while a probe is in flight wait for it
// instead of queueing one write each. The writer is held in the commit hook meanwhile.
func TestHealthProbesShareOneWrite(t *testing.T) {
	s, gate := openGated(t, filepath.Join(t.TempDir(), "push.db"), module.StoreOptions{})
	appended := gate.holdWriter(t, s)
	first := s.probeOp(testCtx(t))
	second := s.probeOp(testCtx(t))
	if first != second || len(s.ops) != 1 {
		t.Fatalf("two Health calls queued %d probes", len(s.ops))
	}
	gate.release()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	<-first.done
	if first.err != nil {
		t.Fatal(first.err)
	}
	if third := s.probeOp(testCtx(t)); third == first {
		t.Fatal("a finished probe was reused")
	}
}
