package module

import (
	"errors"
	"math"
	"strconv"
)

// MaxUserIDLen is the longest userId API.md allows, in bytes.
const MaxUserIDLen = 128

// ErrBadUserID, ErrBadID and ErrBadSince describe invalid identifiers; the api layer turns them
// into 400s. ErrBadUserID's text is a predicate ("must be ...") for the caller to prefix with
// what it checked ("userId: ", "userIds[3]: ", "--user \"x\": ").
var (
	ErrBadUserID = errors.New(`must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ - (and not "." or "..")`)
	ErrBadID     = errors.New("id must be a message id (a decimal integer from 1 to 9223372036854775807, no sign, no leading zeros)")
	ErrBadSince  = errors.New("since must be 0 or a message id (a decimal integer from 1 to 9223372036854775807, no sign, no leading zeros)")
)

// ValidUserID reports whether s is 1 to 128 bytes of [A-Za-z0-9._:@-], other than "." and "..":
// those two are path segments that HTTP clients and proxies resolve away ("/clients/.." is
// "/"), so such a user could never be reached by the routes that name a user in the path.
func ValidUserID(s string) bool {
	if len(s) == 0 || len(s) > MaxUserIDLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '@', c == '-':
		default:
			return false
		}
	}
	return true
}

// ParseSince parses the since query parameter: "0" or a canonical id up to 2^63-1.
func ParseSince(s string) (uint64, error) {
	if s == "0" {
		return 0, nil
	}
	n, ok := parseCanonicalID(s)
	if !ok {
		return 0, ErrBadSince
	}
	return n, nil
}

// ParseID parses a message id as API.md writes it: a canonical decimal from 1 to 2^63-1.
func ParseID(s string) (uint64, error) {
	n, ok := parseCanonicalID(s)
	if !ok {
		return 0, ErrBadID
	}
	return n, nil
}

// parseCanonicalID accepts 1-19 digits without sign or leading zero, at most 2^63-1.
func parseCanonicalID(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 19 || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > math.MaxInt64 {
		return 0, false
	}
	return n, true
}

// ErrBadEpoch describes an invalid epoch parameter.
var ErrBadEpoch = errors.New("epoch must be 1 to 64 characters of A-Z a-z 0-9 _ -")

// ValidEpoch reports whether s is 1 to 64 bytes of [A-Za-z0-9_-], the form of a store's epoch.
func ValidEpoch(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
