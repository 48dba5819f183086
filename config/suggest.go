package config

import "strings"

// closestKey returns the known key an unknown one (as viper reports it: lower case, dotted) most
// likely meant, or "" when none is close: the smallest edit distance over the whole key when it
// is at most a third of the key's length (at least 2), else a known key with the same last
// segment (a setting put under the wrong section, or at the top level).
func closestKey(unknown string) string {
	unknown = strings.ToLower(unknown)
	best, bestDist := "", -1
	for _, f := range fields {
		if d := editDistance(unknown, strings.ToLower(f.key)); bestDist < 0 || d < bestDist {
			best, bestDist = f.key, d
		}
	}
	if bestDist >= 0 && bestDist <= max(2, len(unknown)/3) {
		return best
	}
	last := unknown[strings.LastIndexByte(unknown, '.')+1:]
	for _, f := range fields {
		if strings.EqualFold(f.key[strings.LastIndexByte(f.key, '.')+1:], last) {
			return f.key
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes (keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
