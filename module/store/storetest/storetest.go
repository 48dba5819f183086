// Package storetest is the conformance suite every module.Store driver must pass. A driver's test
// calls Run with a function that opens a fresh, empty store for the given options:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, opts module.StoreOptions) module.Store {
//			return memory.New(opts)
//		})
//	}
//
// The suite closes every store it opens (Close must be idempotent, so the opener may close it too).
// Every subtest opens its own store, so they run in parallel.
package storetest

import (
	"testing"
	"time"

	"pushlane/module"
)

// Opener opens a fresh, empty store with opts.
type Opener = func(t *testing.T, opts module.StoreOptions) module.Store

// longTTL is the ttl of messages that must not expire during a test.
const longTTL = time.Hour

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open func(t *testing.T, opts module.StoreOptions) module.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"AppendAssignsIncreasingIDs", testAppendIncreasing},
		{"AppendInterleavedUsers", testAppendInterleaved},
		{"AppendBatchOfManyUsers", testAppendBatchManyUsers},
		{"AppendEmpty", testAppendEmpty},
		{"IDsIncreaseAfterPurge", testIDsIncreaseAfterPurge},
		{"OnCommitSequential", testOnCommitSequential},
		{"OnCommitConcurrent", testOnCommitConcurrent},
		{"BacklogSince", testBacklogSince},
		{"BacklogPending", testBacklogPending},
		{"BacklogPendingAndSince", testBacklogPendingAndSince},
		{"BacklogAfterPaging", testBacklogAfterPaging},
		{"BacklogMaxBytes", testBacklogMaxBytes},
		{"StatusTransitions", testStatusTransitions},
		{"StatusNotFound", testStatusNotFound},
		{"MarksConcurrent", testMarksConcurrent},
		{"MarkPushed", testMarkPushed},
		{"IdempotencyFlow", testIdempotencyFlow},
		{"IdempotencyAppendOnceTwice", testIdempotencyAppendOnceTwice},
		{"IdempotencyAbandon", testIdempotencyAbandon},
		{"IdempotencyExpiry", testIdempotencyExpiry},
		{"IdempotencyScopes", testIdempotencyScopes},
		{"IdempotencyConcurrentBegin", testIdempotencyConcurrentBegin},
		{"IdempotencyManyUsers", testIdempotencyManyUsers},
		{"MarkWritten", testMarkWritten},
		{"TTLExpiry", testTTLExpiry},
		{"SweepRemovesExpired", testSweepRemovesExpired},
		{"ExpiryCountsOnlyExpired", testExpiryCountsOnlyExpired},
		{"MaxPerUser", testMaxPerUser},
		{"MaxPerUserBatch", testMaxPerUserBatch},
		{"Stats", testStats},
		{"Purge", testPurge},
		{"HeadLastID", testLastID},
		{"HeadLastIDConcurrent", testLastIDConcurrent},
		{"HeadCoversOnCommit", testHeadCoversOnCommit},
		{"HeadPerUser", testHeadPerUser},
		{"HeadNeverGoesDown", testHeadNeverGoesDown},
		{"Epoch", testEpoch},
		{"Health", testHealth},
		{"Close", testClose},
		{"CloseWhileAppending", testCloseWhileAppending},
		{"ConcurrentReadersAndMarkers", testConcurrentMixed},
		{"DataRoundTrip", testDataRoundTrip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}
