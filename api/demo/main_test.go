package demo

import (
	"testing"

	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

// TestMain sets Gin's mode once (it is process-wide state, so parallel tests must not set it) and
// fails the package when any goroutine outlives the tests.
func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}
