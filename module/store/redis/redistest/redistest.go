// Package redistest connects tests to the real Redis at 127.0.0.1:6379 (or $PUSHLANE_TEST_REDIS)
// under a key prefix of their own, removed when the test ends. When Redis is unreachable a test
// fails if $CI is set and is skipped otherwise, so CI never passes by skipping.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Addr is the Redis the tests use.
func Addr() string {
	if a := os.Getenv("PUSHLANE_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Options are the client options pushlane uses (see app.go): RESP2, no retries, short timeouts.
func Options() *goredis.Options {
	return &goredis.Options{
		Addr:            Addr(),
		Protocol:        2,
		MaxRetries:      -1,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     3 * time.Second,
		WriteTimeout:    3 * time.Second,
		DisableIdentity: true,
	}
}

// Client returns a client closed at the end of the test. It fails or skips the test (see the
// package comment) when Redis does not answer.
func Client(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(Options())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("redis at %s is unreachable and CI is set: %v", Addr(), err)
		}
		t.Skipf("redis at %s is unreachable (start it, or set CI to make this a failure): %v", Addr(), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a key prefix unique to this test run, and deletes every key under it when the
// test ends (SCAN + DEL, after the test's own cleanups registered later have run).
func Prefix(t testing.TB, c *goredis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	prefix := "pushlanetest:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { Clean(t, c, prefix) })
	return prefix
}

// Clean deletes every key that starts with prefix.
func Clean(t testing.TB, c *goredis.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			t.Logf("redistest: scan %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Logf("redistest: del: %v", err)
			}
		}
		if next == 0 {
			return
		}
		cursor = next
	}
}
