package redis

import (
	"testing"

	"pushlane/module"
	"pushlane/module/store/redis/redistest"
	"pushlane/module/webpush"
	"pushlane/module/webpush/pushtest"
)

func TestWebPushConformance(t *testing.T) {
	pushtest.Run(t, func(t *testing.T, opts module.StoreOptions) webpush.Store {
		rdb := redistest.Client(t)
		return openT(t, rdb, redistest.Prefix(t, rdb), opts, false)
	})
}
