package module_test

import (
	"math"
	"strconv"
	"testing"

	"pushlane/module"
)

// FuzzParseID: a message id from a URL is accepted exactly when it is the canonical decimal of a
// number from 1 to 2^63-1, and then it reads back as itself; since accepts "0" besides.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1", "42", "0", "01", "-1", "+1", " 1", "1 ", "", "9223372036854775807",
		"9223372036854775808", "18446744073709551616", "1e3", "0x10", "١٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := strconv.ParseUint(s, 10, 64)
		canonical := err == nil && n >= 1 && n <= math.MaxInt64 && strconv.FormatUint(n, 10) == s
		id, err := module.ParseID(s)
		if (err == nil) != canonical {
			t.Fatalf("ParseID(%q) = %d, %v; canonical %v", s, id, err, canonical)
		}
		if err == nil && module.FormatID(id) != s {
			t.Fatalf("ParseID(%q) = %d, which formats as %q", s, id, module.FormatID(id))
		}
		since, err := module.ParseSince(s)
		if (err == nil) != (canonical || s == "0") || (err == nil && s != "0" && since != id) {
			t.Fatalf("ParseSince(%q) = %d, %v; ParseID gave %d", s, since, err, id)
		}
	})
}

// TestValidUserIDRefusesDotSegments: "." and ".." are path segments, not user names; other
// names of dots are fine.
func TestValidUserIDRefusesDotSegments(t *testing.T) {
	for id, want := range map[string]bool{".": false, "..": false, "...": true, ".a": true, "a..": true, "": false} {
		if got := module.ValidUserID(id); got != want {
			t.Errorf("ValidUserID(%q) = %v, want %v", id, got, want)
		}
	}
}
