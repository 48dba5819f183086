package sqlite

import "os"

// The WAL's restart. SQLite's automatic checkpoint (run by the writer right after a commit, at
// 1,000 pages of WAL) copies the frames no reader still needs; the next commit starts the WAL
// over only when that copy reached the WAL's last frame. Readers that never pause (connects or
// backlog reads back to back, each a short read transaction) nearly always hold a snapshot from
// before the last commit, so the copy stops one commit short every time and the WAL grows by
// every commit for as long as they go on (TestWALStaysBounded: 11 MB after 3,000 one-message
// commits, and without end under a steady load).
//
// So the writer checks the WAL's size every walCheckEvery commits, and when it is over
// walRestartBytes (one and a half times what the automatic checkpoint lets it reach, about
// 4 MB) it runs a TRUNCATE checkpoint: it copies every frame, waiting (busy_timeout) for the
// readers of older snapshots, whose reads are short (a head, or a backlog page of at most 200
// messages or about 64 KB), then for the readers of the WAL to finish, while new readers read
// the database file, and empties the WAL file (so that its size shows the next growth). Commits
// wait meanwhile: a few reads' time, only when the WAL has outgrown its usual size.
const (
	walCheckEvery   = 64
	walRestartBytes = 6 << 20
)

// walRestarter is the writer's record of commits since the last size check.
type walRestarter struct {
	path    string // the -wal file
	commits int
}

// restartWALIfGrown counts a commit and, every walCheckEvery commits, restarts the WAL when it
// has grown past walRestartBytes. It runs after a commit, so its outcome is not the commit's: a
// checkpoint that fails or finds readers busy past busy_timeout leaves a larger WAL until the next
// check, and a disk that fails it fails the next commit too (which Health reports).
func (w *writer) restartWALIfGrown() {
	r := &w.wal
	if r.commits++; r.commits < walCheckEvery {
		return
	}
	r.commits = 0
	if info, err := os.Stat(r.path); err != nil || info.Size() <= walRestartBytes {
		return // no -wal file (yet), or small enough
	}
	_, _ = w.s.write.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
}
