package module

import (
	"errors"
	"math"
	"strconv"
)

// MaxUserIDLen is the longest userId API.md allows, in bytes.
const MaxUserIDLen = 128

// ErrBadUserID and ErrBadSince describe invalid identifiers; the api layer turns them into 400s.
var (
	ErrBadUserID = errors.New("userId must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -")
	ErrBadSince  = errors.New("since must be 0 or a message id (a decimal integer from 1 to 9223372036854775807, no sign, no leading zeros)")
)

// ValidUserID reports whether s is 1 to 128 bytes of [A-Za-z0-9._:@-].
func ValidUserID(s string) bool {
	if len(s) == 0 || len(s) > MaxUserIDLen {
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
	if len(s) == 0 || len(s) > 19 || s[0] < '1' || s[0] > '9' {
		return 0, ErrBadSince
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrBadSince
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > math.MaxInt64 {
		return 0, ErrBadSince
	}
	return n, nil
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
