package api

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any goroutine outlives the tests: every client, hub, store and
// listener a test starts must be gone once its cleanups ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
