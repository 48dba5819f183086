//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package bench

// selfCPU is not measured on this system.
func selfCPU() (seconds float64, maxRSSKB int64) { return 0, 0 }

// fdWarning has no limit to check on this system.
func fdWarning(int) string { return "" }
