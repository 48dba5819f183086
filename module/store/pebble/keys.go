package pebble

import (
	"encoding/binary"
	"errors"
	"time"

	"pushlane/module"
)

// The key space: one byte names the kind of record, so kinds never mix in an iteration. A user
// id (or an idempotency scope) is length-prefixed (uvarint), so one user's keys never run into
// another's whatever bytes the id holds. Ids and times are big-endian: byte order is their order.
//
//	'm' user id        a message: messageRecord
//	'u' user           the user's newest id and stored count: userState
//	'x' expires id     the expiry index (value: the user id), what the sweep walks
//	'i' scope key      an idempotency record: idemRecord
//	'y' expires scope key  the idempotency records' expiry index
//	'M' name           store metadata: the epoch, the id counter, the health probe
//
// Kinds Web Push will need (subscriptions per user, keys) get letters of their own.
const (
	kindMessage   = 'm'
	kindUser      = 'u'
	kindExpiry    = 'x'
	kindIdem      = 'i'
	kindIdemExpir = 'y'
	kindMeta      = 'M'
)

var (
	metaEpoch  = []byte{kindMeta, 'e'}
	metaLastID = []byte{kindMeta, 'l'}
	metaProbe  = []byte{kindMeta, 'p'}
	metaCeil   = []byte{kindMeta, 'c'} // the id ceiling: see writer.leaseIDs
)

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// userKey is the prefix of kind's keys of one user: kind, then the length-prefixed user id.
func userKey(dst []byte, kind byte, user string) []byte {
	return appendString(append(dst, kind), user)
}

func messageKey(dst []byte, user string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(userKey(dst, kindMessage, user), id)
}

func expiryKey(dst []byte, expiresMs int64, id uint64) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, kindExpiry), uint64(max(expiresMs, 0)))
	return binary.BigEndian.AppendUint64(dst, id)
}

func idemKey(dst []byte, k module.IdempotencyKey) []byte {
	return appendString(userKey(dst, kindIdem, k.Scope), k.Key)
}

func idemExpiryKey(dst []byte, expiresMs int64, k module.IdempotencyKey) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, kindIdemExpir), uint64(max(expiresMs, 0)))
	return appendString(appendString(dst, k.Scope), k.Key)
}

// upperBound is the smallest key above every key that starts with prefix.
func upperBound(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil // no bound: every key starts with 0xff...
}

var errCorrupt = errors.New("malformed record")

// messageRecord is a stored message's value: a format byte, then created, expires, sent, acked
// and pushed times (varint unix milliseconds; 0 = never), the queued flag, then the data.
type messageRecord struct {
	created, expires    int64
	sent, acked, pushed int64
	queued              bool
	data                []byte
}

const recordFormat = 1

func (r *messageRecord) encode(dst []byte) []byte {
	dst = append(dst, recordFormat)
	for _, v := range [...]int64{r.created, r.expires, r.sent, r.acked, r.pushed} {
		dst = binary.AppendVarint(dst, v)
	}
	q := byte(0)
	if r.queued {
		q = 1
	}
	return append(append(dst, q), r.data...)
}

// decodeMessage parses a value; data aliases b.
func decodeMessage(b []byte) (messageRecord, error) {
	var r messageRecord
	if len(b) == 0 || b[0] != recordFormat {
		return r, errCorrupt
	}
	b = b[1:]
	for _, dst := range [...]*int64{&r.created, &r.expires, &r.sent, &r.acked, &r.pushed} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return r, errCorrupt
		}
		*dst, b = v, b[n:]
	}
	if len(b) == 0 || b[0] > 1 {
		return r, errCorrupt
	}
	r.queued, r.data = b[0] == 1, b[1:]
	return r, nil
}

// decodeMessageKey returns the id at the end of a message key.
func decodeMessageKey(k []byte) (uint64, error) {
	if len(k) < 9 {
		return 0, errCorrupt
	}
	return binary.BigEndian.Uint64(k[len(k)-8:]), nil
}

func (r *messageRecord) message(user string, id uint64) module.Message {
	return module.Message{ID: id, UserID: user, Data: append([]byte(nil), r.data...),
		CreatedAt: time.UnixMilli(r.created), ExpiresAt: time.UnixMilli(r.expires)}
}

func (r *messageRecord) status(user string, id uint64) module.MessageStatus {
	return module.MessageStatus{Message: r.message(user, id),
		SentAt: timeOf(r.sent), AckedAt: timeOf(r.acked), PushedAt: timeOf(r.pushed)}
}

func timeOf(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// userState is a user's 'u' record: the newest id ever assigned to the user (Head; never goes
// down, kept after its messages are gone) and how many of its messages are stored (expired ones
// the sweep has not removed yet included), which is what store.maxPerUser trims against.
type userState struct {
	lastID uint64
	count  uint64
}

func (u userState) encode(dst []byte) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(dst, u.lastID), u.count)
}

func decodeUser(b []byte) (userState, error) {
	last, n := binary.Uvarint(b)
	if n <= 0 {
		return userState{}, errCorrupt
	}
	count, m := binary.Uvarint(b[n:])
	if m <= 0 {
		return userState{}, errCorrupt
	}
	return userState{lastID: last, count: count}, nil
}
