//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package bench

import (
	"runtime"
	"syscall"
)

// maxRSS is ru_maxrss in KB (macOS reports bytes, the BSDs kilobytes).
func maxRSS(ru syscall.Rusage) int64 {
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) / 1024
	}
	return int64(ru.Maxrss)
}
