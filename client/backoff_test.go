package client

import (
	"testing"
	"time"
)

// TestBackoffDelay: retry n waits within [d/2, d], d = Min·2ⁿ capped at Max, and the ceiling
// never shrinks, however many retries.
func TestBackoffDelay(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	prev := time.Duration(0)
	for n := range 80 {
		ceiling := b.Max
		if n < 16 {
			ceiling = min(b.Max, b.Min<<n)
		}
		for range 50 {
			if d := b.Delay(n); d < ceiling/2 || d > ceiling {
				t.Fatalf("retry %d: delay %v outside [%v, %v]", n, d, ceiling/2, ceiling)
			}
		}
		if ceiling < prev {
			t.Fatalf("retry %d: ceiling %v shrank", n, ceiling)
		}
		prev = ceiling
	}
	if prev != b.Max {
		t.Fatalf("ceiling ends at %v, want %v", prev, b.Max)
	}
	if d := (Backoff{}).Delay(0); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("zero Backoff: first delay %v, want the 100ms default", d)
	}
}
