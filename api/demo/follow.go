package demo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"
)

// followChunk is the read size of a follower: the only buffer one /tail connection keeps besides
// an unfinished line (at most MaxMessageBytes).
const followChunk = 8192

// follower streams one file, line by line, to one connection: the last lines present on connect,
// then every line appended, like tail -F.
//
// It polls (one os.Stat every TailPoll) instead of using inotify: polling behaves the same on
// every OS and filesystem (NFS, bind mounts, files replaced by rename) and costs one stat per
// poll per connection. Rotation by rename is seen as a new file at the path (os.SameFile) and
// followed from its first line; truncation in place as the size falling below what was read.
// A file truncated and refilled beyond the old size within one poll is not noticed as truncated.
//
// Concurrency: one goroutine (run) owns every field.
type follower struct {
	path string
	max  int               // cap of one line, in bytes
	emit func([]byte) bool // queues one line (the slice is its own); false when the connection stops
	log  *slog.Logger

	f       *os.File // nil while the file is missing
	info    os.FileInfo
	offset  int64  // bytes of f read so far
	partial []byte // the unfinished last line
	discard bool   // skipping the rest of a line longer than max
	buf     []byte
	lastErr string // the last open problem logged, so a missing file is not logged every poll
}

func newFollower(path string, max int, log *slog.Logger, emit func([]byte) bool) *follower {
	return &follower{path: path, max: max, emit: emit, log: log}
}

// run follows the file until done is closed or a line cannot be queued any more. lines is the
// number of existing lines sent when the file is there on connect; a file that appears later is
// new, so all of it is sent.
func (t *follower) run(done <-chan struct{}, poll time.Duration, lines int) {
	defer t.closeFile()
	t.buf = make([]byte, followChunk)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for first := true; ; first = false {
		if !t.step(first, lines) {
			return
		}
		select {
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// step opens the file if needed, sends what was appended, and notices rotation and truncation.
func (t *follower) step(atConnect bool, lines int) bool {
	if t.f == nil {
		if !t.open(atConnect, lines) {
			return true // not there (yet): look again next poll
		}
	}
	if !t.drain() {
		return false
	}
	info, err := os.Stat(t.path)
	switch {
	case err != nil, !os.SameFile(info, t.info):
		// Removed or rotated: finish the old file (lines written before the rename), then follow
		// whatever is at the path from its first line, on the next poll.
		if !t.drain() || !t.flushPartial() {
			return false
		}
		t.closeFile()
	case info.Size() < t.offset:
		// Truncated in place (copytruncate): start again from the top.
		t.offset = 0
		t.partial, t.discard = t.partial[:0], false
		return t.drain()
	}
	return true
}

// open opens the path if it is a regular file (a FIFO or device would block or never end).
func (t *follower) open(atConnect bool, lines int) bool {
	info, err := os.Stat(t.path)
	if err == nil && !info.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	var f *os.File
	if err == nil {
		f, err = os.Open(t.path)
	}
	if err == nil {
		info, err = f.Stat()
		if err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		if msg := err.Error(); msg != t.lastErr {
			t.lastErr = msg
			level := slog.LevelWarn
			if errors.Is(err, fs.ErrNotExist) {
				level = slog.LevelDebug // waiting for the file to appear is normal
			}
			t.log.Log(context.Background(), level, "tail: cannot open file; retrying", "path", t.path, "err", err)
		}
		return false
	}
	t.lastErr = ""
	t.f, t.info, t.offset = f, info, 0
	t.partial, t.discard = t.partial[:0], false
	if atConnect {
		start, midLine, err := lastLinesStart(f, info.Size(), lines, t.max)
		if err == nil {
			t.offset, t.discard = start, midLine
		}
	}
	return true
}

func (t *follower) closeFile() {
	if t.f != nil {
		_ = t.f.Close()
		t.f = nil
	}
}

// drain reads from offset to the end of the file and sends every complete line.
func (t *follower) drain() bool {
	for {
		n, err := t.f.ReadAt(t.buf, t.offset)
		if n > 0 {
			t.offset += int64(n)
			if !t.feed(t.buf[:n]) {
				return false
			}
		}
		if err != nil || n == 0 {
			return true // io.EOF, or a read error that the next poll retries
		}
	}
}

// feed splits b into lines. An unfinished line waits in partial for the rest; a line longer than
// max is sent cut at max and the rest of it skipped.
func (t *follower) feed(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if t.discard {
				return true
			}
			if room := t.max - len(t.partial); len(b) > room {
				t.partial = append(t.partial, b[:room]...)
				ok := t.send(t.partial)
				t.partial, t.discard = t.partial[:0], true
				return ok
			}
			t.partial = append(t.partial, b...)
			return true
		}
		seg := b[:i]
		b = b[i+1:]
		if t.discard {
			t.discard = false
			continue
		}
		line := seg
		if len(t.partial) > 0 {
			t.partial = append(t.partial, seg...)
			line = t.partial
		}
		if !t.send(line) {
			return false
		}
		t.partial = t.partial[:0]
	}
	return true
}

// flushPartial sends an unfinished last line of a file that is going away.
func (t *follower) flushPartial() bool {
	ok := true
	if len(t.partial) > 0 && !t.discard {
		ok = t.send(t.partial)
	}
	t.partial, t.discard = t.partial[:0], false
	return ok
}

// send queues one line as a text frame: without its "\r", as valid UTF-8 (a browser fails a
// connection on an invalid text frame), at most max bytes cut on a character boundary.
func (t *follower) send(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\r"))
	var out []byte
	if utf8.Valid(line) {
		out = bytes.Clone(line[:min(len(line), t.max)])
	} else {
		out = bytes.ToValidUTF8(line, []byte("\uFFFD"))
	}
	if len(out) > t.max {
		out = out[:t.max]
	}
	for len(out) > 0 && !utf8.Valid(out) { // a cut through a character: drop its first bytes
		cut := len(out) - 1
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut]
	}
	if out == nil {
		out = []byte{}
	}
	return t.emit(out)
}

// lastLinesStart finds where the last n complete lines of f begin: just after the (n+1)-th
// newline from the end, so that an unfinished last line is read too (and held until it ends).
// It reads back at most (n+1)·(max+2) bytes; when that is not enough, midLine says that the start
// is inside a line whose beginning must be skipped.
func lastLinesStart(f io.ReaderAt, size int64, n, max int) (start int64, midLine bool, err error) {
	limit := int64(n+1) * int64(max+2)
	buf := make([]byte, followChunk)
	pos := size
	found := 0
	for pos > 0 && size-pos < limit {
		step := min(int64(len(buf)), pos, limit-(size-pos))
		pos -= step
		chunk := buf[:step]
		if _, err := f.ReadAt(chunk, pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, false, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] == '\n' {
				found++
				if found == n+1 {
					return pos + int64(i) + 1, false, nil
				}
			}
		}
	}
	return pos, pos > 0, nil
}
