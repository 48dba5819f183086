package memory_test

import (
	"testing"

	"pushd/module"
	"pushd/module/store/memory"
	"pushd/module/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts module.StoreOptions) module.Store {
		return memory.New(opts)
	})
}
