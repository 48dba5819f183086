package demo

import (
	"strings"
	"testing"
)

func TestLastLinesStart(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("z", 50)
	tests := []struct {
		file    string
		n, max  int
		rest    string // what is read from the start on
		midLine bool
	}{
		{"", 10, 64, "", false},
		{"a\nb\nc\n", 2, 64, "b\nc\n", false},
		{"a\nb\nc\n", 3, 64, "a\nb\nc\n", false},
		{"a\nb\nc\n", 10, 64, "a\nb\nc\n", false},
		{"a\nb\nc\npart", 2, 64, "b\nc\npart", false},
		{"a\nb\nc\npart", 0, 64, "part", false},
		{"a\nb\nc\n", 0, 64, "", false},
		{"\n\n\n", 2, 64, "\n\n", false},
		// Lines longer than the cap: at most (n+1)*(max+2) bytes are read back.
		{long + "\n" + long + "\n", 1, 10, long[len(long)-23:] + "\n", true},
	}
	for _, tc := range tests {
		start, mid, err := lastLinesStart(strings.NewReader(tc.file), int64(len(tc.file)), tc.n, tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.file[start:]; got != tc.rest || mid != tc.midLine {
			t.Errorf("%q, n=%d: rest %q mid %v, want %q mid %v", tc.file, tc.n, got, mid, tc.rest, tc.midLine)
		}
	}
}

func TestFollowerFeedSplitsAndCaps(t *testing.T) {
	t.Parallel()
	var got []string
	f := newFollower("unused", 8, nil, func(b []byte) bool {
		got = append(got, string(b))
		return true
	})
	for _, chunk := range []string{"ab", "c\nde", "f\r\n", "0123456789abc", "def\nok\n", "\xe4\xb8\x96\xe4\xb8\x96\xe4\xb8\x96\n"} {
		if !f.feed([]byte(chunk)) {
			t.Fatal("feed stopped")
		}
	}
	want := []string{"abc", "def", "01234567", "ok", "世世"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}
