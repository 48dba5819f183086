package memory_test

import (
	"testing"

	"pushlane/module"
	"pushlane/module/store/memory"
	"pushlane/module/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts module.StoreOptions) module.Store {
		return memory.New(opts)
	})
}
