package webpush

import (
	"strconv"

	"pushlane/module"
)

// MaxPlaintextBytes is the largest plaintext pushed as is (API.md): a message whose WebSocket
// frame is longer is pushed as a stub. A push message holds at most 3993 bytes of plaintext
// (RFC 8291: one 4096-byte record less the header, the padding delimiter and the tag); 3,000
// leaves room for the push services that take less.
const MaxPlaintextBytes = 3000

// Payload is the plaintext of m's push: its WebSocket frame, or, when that is over
// MaxPlaintextBytes, {"id","userId","createdAt","truncated":true} (the service worker can fetch
// the rest, or the page reads it on its next connect).
func Payload(m *module.Message) []byte {
	frame := m.Frame()
	if len(frame) <= MaxPlaintextBytes {
		return frame
	}
	dst := make([]byte, 0, 96+len(m.UserID))
	dst = append(dst, `{"id":"`...)
	dst = strconv.AppendUint(dst, m.ID, 10)
	dst = append(dst, `","userId":"`...)
	dst = append(dst, m.UserID...) // the userId alphabet needs no escaping
	dst = append(dst, `","createdAt":"`...)
	dst = append(dst, module.FormatTime(m.CreatedAt)...)
	return append(dst, `","truncated":true}`...)
}
