//go:build !unix

package storetest

import "time"

// processCPU is not measured here: BenchUnicast then reports no cpu-µs/msg.
func processCPU() time.Duration { return 0 }
