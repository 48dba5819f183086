// Package rediskeys names every Redis key and channel that the redis store and the redis broker
// share, and encodes the live message that the store's append script PUBLISHes and the broker
// decodes. Both sides import it, so the layout is written down once.
//
// Layout, with P the configured prefix (redis.keyPrefix) and U a userId:
//
//	P msgs:{U}       stream of U's messages; entry id "<msgid>-0", fields e (expiresAt ms), c (createdAt ms), d (data)
//	P seq:{U}        counter: the last message id given to U (INCR); never expires, so ids never go back
//	P cursor:{U}     delivered low-water mark: every id at or below it was written to a connection
//	P delivered:{U}  zset of delivered ids above the cursor (out-of-order marks), score = id
//	P expiry         zset of userIds by the expiry of their oldest message, for the sweeper
//	P presence:N     hash userId -> local connection count of node N, expires unless refreshed
//	P nodes          zset of node ids by last refresh (unix ms), to enumerate presence hashes
//
// Channels: P user:U (one user's live messages), P control (broadcast and requests to every
// node), P node:N (replies to node N).
//
// The {U} hash tag keeps one user's keys in one slot. UserIds cannot contain braces, and every
// key has a fixed part before the userId, so no two users' keys can collide.
//
// Keys is a value type, safe for concurrent use.
package rediskeys

import (
	"errors"
	"strconv"
	"strings"
)

// Keys builds key and channel names under one prefix.
type Keys struct {
	prefix string
}

// New returns the names under prefix (may be empty).
func New(prefix string) Keys { return Keys{prefix: prefix} }

// Prefix is the configured prefix.
func (k Keys) Prefix() string { return k.prefix }

// Stream is the key of U's message stream.
func (k Keys) Stream(userID string) string { return k.prefix + "msgs:{" + userID + "}" }

// Counter is the key of U's id counter.
func (k Keys) Counter(userID string) string { return k.prefix + "seq:{" + userID + "}" }

// Cursor is the key of U's delivered low-water mark.
func (k Keys) Cursor(userID string) string { return k.prefix + "cursor:{" + userID + "}" }

// Delivered is the key of U's delivered ids above the cursor.
func (k Keys) Delivered(userID string) string { return k.prefix + "delivered:{" + userID + "}" }

// Expiry is the key of the sweeper's index.
func (k Keys) Expiry() string { return k.prefix + "expiry" }

// UserChannelPrefix starts every user channel; the userId follows it.
func (k Keys) UserChannelPrefix() string { return k.prefix + "user:" }

// UserChannel is the channel of U's live messages.
func (k Keys) UserChannel(userID string) string { return k.prefix + "user:" + userID }

// Control is the channel every node reads: broadcasts and requests.
func (k Keys) Control() string { return k.prefix + "control" }

// NodeChannel is where node N receives replies to its requests.
func (k Keys) NodeChannel(node string) string { return k.prefix + "node:" + node }

// PresencePrefix starts every presence hash; the node id follows it.
func (k Keys) PresencePrefix() string { return k.prefix + "presence:" }

// Presence is the key of node N's presence hash.
func (k Keys) Presence(node string) string { return k.prefix + "presence:" + node }

// Nodes is the key of the node index.
func (k Keys) Nodes() string { return k.prefix + "nodes" }

// ErrBadLive is returned by DecodeLive for a payload not made by EncodeLive.
var ErrBadLive = errors.New("malformed live message")

// EncodeLive is the payload of a live message: "<id>:<createdAt unix ms>:<data>". The append
// script builds the same bytes in Lua; this Go version documents the format and serves tests.
func EncodeLive(id uint64, createdMs int64, data []byte) string {
	b := make([]byte, 0, len(data)+32)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, ':')
	b = strconv.AppendInt(b, createdMs, 10)
	b = append(b, ':')
	return string(append(b, data...))
}

// DecodeLive splits a live payload. data aliases payload.
func DecodeLive(payload string) (id uint64, createdMs int64, data string, err error) {
	i := strings.IndexByte(payload, ':')
	if i <= 0 {
		return 0, 0, "", ErrBadLive
	}
	j := strings.IndexByte(payload[i+1:], ':')
	if j <= 0 {
		return 0, 0, "", ErrBadLive
	}
	j += i + 1
	id, err = strconv.ParseUint(payload[:i], 10, 64)
	if err != nil || id == 0 {
		return 0, 0, "", ErrBadLive
	}
	createdMs, err = strconv.ParseInt(payload[i+1:j], 10, 64)
	if err != nil {
		return 0, 0, "", ErrBadLive
	}
	if j+1 >= len(payload) {
		return 0, 0, "", ErrBadLive
	}
	return id, createdMs, payload[j+1:], nil
}
