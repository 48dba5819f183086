package module

import (
	"encoding/json"
	"strconv"
	"time"
)

// Message is one stored notification for one user. Values are immutable once stored.
type Message struct {
	ID        uint64          // per-user strictly increasing, assigned by the Store
	UserID    string          // validated with ValidUserID
	Data      json.RawMessage // compact JSON, never null
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Draft is a message before the store has accepted it.
type Draft struct {
	UserID string
	Data   json.RawMessage
	TTL    time.Duration
}

// createdAtLayout is RFC 3339 with milliseconds, always in UTC ("Z").
const createdAtLayout = "2006-01-02T15:04:05.000Z07:00"

// AppendFrame appends the wire form of m, one JSON object per text frame:
// {"id":"42","userId":"U","data":...,"createdAt":"..."}. Built by hand because it is on the hot path
// of every delivery (about 10x cheaper than json.Marshal of a struct); the userId alphabet needs no
// escaping and Data is already valid compact JSON.
func (m *Message) AppendFrame(dst []byte) []byte {
	dst = append(dst, `{"id":"`...)
	dst = strconv.AppendUint(dst, m.ID, 10)
	dst = append(dst, `","userId":"`...)
	dst = append(dst, m.UserID...)
	dst = append(dst, `","data":`...)
	dst = append(dst, m.Data...)
	dst = append(dst, `,"createdAt":"`...)
	dst = m.CreatedAt.UTC().AppendFormat(dst, createdAtLayout)
	return append(dst, `"}`...)
}

// Frame returns the wire form of m in a new slice.
func (m *Message) Frame() []byte {
	return m.AppendFrame(make([]byte, 0, len(m.Data)+len(m.UserID)+80))
}

// broadcastFrame is {"userId":"U","broadcast":true,"data":...,"createdAt":"..."}: no id, because a
// broadcast is not stored and cannot be resumed.
func broadcastFrame(userID string, data json.RawMessage, createdAt string) []byte {
	dst := make([]byte, 0, len(data)+len(userID)+80)
	dst = append(dst, `{"userId":"`...)
	dst = append(dst, userID...)
	dst = append(dst, `","broadcast":true,"data":`...)
	dst = append(dst, data...)
	dst = append(dst, `,"createdAt":"`...)
	dst = append(dst, createdAt...)
	return append(dst, `"}`...)
}

// FormatID renders a message id as API.md writes it: a canonical decimal string.
func FormatID(id uint64) string { return strconv.FormatUint(id, 10) }

// FormatTime renders a timestamp as frames carry it.
func FormatTime(t time.Time) string { return t.UTC().Format(createdAtLayout) }
