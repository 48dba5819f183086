package memory

import (
	"testing"

	"pushlane/module"
	"pushlane/module/webpush"
	"pushlane/module/webpush/pushtest"
)

func TestWebPushConformance(t *testing.T) {
	pushtest.Run(t, func(t *testing.T, opts module.StoreOptions) webpush.Store {
		s := New(opts)
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}
