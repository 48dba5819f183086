//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package bench

import (
	"fmt"
	"syscall"
)

// selfCPU returns this process's user+system CPU time in seconds and its peak RSS in KB.
func selfCPU() (seconds float64, maxRSSKB int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime), maxRSS(ru)
}

// fdWarning says when the open-files limit is too low for conns connections.
func fdWarning(conns int) string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return ""
	}
	if need := uint64(conns) + 64; lim.Cur < need {
		return fmt.Sprintf("the open-files limit is %d and %d connections need about %d descriptors: raise ulimit -n (the server needs as many)", lim.Cur, conns, need)
	}
	return ""
}
