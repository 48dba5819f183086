package groupcommit

import (
	"bytes"
	"errors"
	"testing"

	"pushlane/module"
)

// TestResultsEncoding: the packed results round-trip, and damaged bytes are an error, not a panic.
func TestResultsEncoding(t *testing.T) {
	msgs := []module.Message{{UserID: "u", ID: 1}, {UserID: "a:b@c.d-e_f", ID: 1<<63 - 1}, {UserID: "x", ID: 300}}
	b := EncodeResults(msgs)
	got, err := DecodeResults(b)
	if err != nil || len(got) != 3 || got[1].UserID != "a:b@c.d-e_f" || got[1].ID != 1<<63-1 || got[2].ID != 300 {
		t.Fatalf("decode = %v, %v", got, err)
	}
	for i := 1; i < len(b); i++ {
		if _, err := DecodeResults(b[:i]); err == nil && !bytes.Equal(EncodeResults(msgs[:1]), b[:i]) &&
			!bytes.Equal(EncodeResults(msgs[:2]), b[:i]) {
			t.Fatalf("a truncated record (%d of %d bytes) decoded without error", i, len(b))
		}
	}
	if _, err := DecodeResults([]byte{0xff}); !errors.Is(err, ErrBadResults) {
		t.Fatalf("decode of junk = %v", err)
	}
}
