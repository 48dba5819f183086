package bench

import "syscall"

// maxRSS is ru_maxrss in KB (Linux reports kilobytes).
func maxRSS(ru syscall.Rusage) int64 { return ru.Maxrss }
