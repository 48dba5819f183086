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

// frameOverhead bounds what AppendFrame adds to Data and UserID: the field names, a 20-digit id
// and the timestamp.
const frameOverhead = 96

// Frame returns the wire form of m in a new slice.
func (m *Message) Frame() []byte {
	return m.AppendFrame(make([]byte, 0, len(m.Data)+len(m.UserID)+frameOverhead))
}

// A broadcast frame is {"userId":"U","broadcast":true,"data":...,"createdAt":"..."}: no id,
// because a broadcast is not stored and cannot be resumed. It is written as two parts: the
// recipient's head, built once per user, and the body, encoded once per broadcast and shared by
// every recipient's queue, so a broadcast's data is held once however many connections get it.

// broadcastHead is the per-recipient part: {"userId":"U","broadcast":true,"data":
func broadcastHead(userID string) []byte {
	dst := make([]byte, 0, len(userID)+40)
	dst = append(dst, `{"userId":"`...)
	dst = append(dst, userID...)
	return append(dst, `","broadcast":true,"data":`...)
}

// broadcastBody is the shared part: the data, then ,"createdAt":"..."}
func broadcastBody(data json.RawMessage, at time.Time) []byte {
	dst := make([]byte, 0, len(data)+40)
	dst = append(dst, data...)
	dst = append(dst, `,"createdAt":"`...)
	dst = at.UTC().AppendFormat(dst, createdAtLayout)
	return append(dst, `"}`...)
}

// helloFrame is the first frame of a version 2 connection:
// {"type":"hello","epoch":"E","recovered":true}. The epoch's alphabet needs no escaping.
func helloFrame(epoch string, recovered bool) []byte {
	dst := make([]byte, 0, len(epoch)+48)
	dst = append(dst, `{"type":"hello","epoch":"`...)
	dst = append(dst, epoch...)
	dst = append(dst, `","recovered":`...)
	dst = strconv.AppendBool(dst, recovered)
	return append(dst, '}')
}

// FormatID renders a message id as API.md writes it: a canonical decimal string.
func FormatID(id uint64) string { return strconv.FormatUint(id, 10) }

// FormatTime renders a timestamp as frames carry it.
func FormatTime(t time.Time) string { return t.UTC().Format(createdAtLayout) }
