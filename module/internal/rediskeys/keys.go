// Package rediskeys names every Redis key and channel that the redis store and the redis broker
// share, and encodes the live message that the store's append script PUBLISHes and the broker
// decodes. Both sides import it, so the layout is written down once.
//
// Layout, with P the configured prefix (redis.keyPrefix) and U a userId:
//
//	P u:{U}          list: one user's counter, queue cursor and messages, see UserList
//	P epoch          the store's epoch (API.md "Protocol version 2"); made by the first script
//	                 that finds it missing, so a prefix holding no data (a flushed Redis) gets a new one
//	P floor          every id ever given to a user whose list was deleted is at or below it; a new
//	                 list starts above it, so ids never go back for anyone
//	P expiry         zset of userIds by the expiry of their oldest message, for the sweeper
//	P idem:S:K       hash of one Idempotency-Key record (f fingerprint, r results, b body)
//	P idemclaim:S:K  the claim of a request in progress (SET NX PX: a lease)
//	P probe          the health write probe
//	P presence:N     hash userId -> local connection count of node N, and "#n" its total
//	P nodes          zset of node ids by last refresh (unix ms), to enumerate presence hashes
//	P wpsub:{U}      hash of U's Web Push subscriptions: id -> "seq created endpoint p256dh auth",
//	                 and "#seq" the registration counter (ids never start with '#')
//	P wpusers        set of the userIds that have a Web Push subscription (read by the append)
//	P wpdue          zset of due Web Push records "U id sub attempt" (sub "*": every subscription)
//	                 by due time (unix ms), or while claimed by when the claim runs out
//
// Channels: P user:U (one user's live messages), P control (broadcast and requests to every
// node), P node:N (replies to node N).
//
// One key per user: a key costs about 100 bytes of Redis memory before it holds anything, and a
// stream about 4.7 KB (its first node is preallocated), so the whole state of a user is one list
// (see User). UserIds cannot contain braces, and every key has a fixed part before the userId,
// so no two users' keys can collide.
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

// User is the key of U's list. Element 0 is "<last id>,<cursor>": the newest id given to U
// and the queue cursor (every id at or below it has left the unread queue). Then two elements per
// stored message, oldest first, ids consecutive: its status "C,T[,D[,S[,A[,P]]]]" (created unix
// ms, ttl ms, D "1" once out of the unread queue, then sent, acknowledged and pushed as ms after
// C, empty for never; trailing empty fields omitted) and its data.
func (k Keys) User(userID string) string { return k.prefix + "u:{" + userID + "}" }

// Epoch is the key of the store's epoch.
func (k Keys) Epoch() string { return k.prefix + "epoch" }

// Floor is the key of the global id floor.
func (k Keys) Floor() string { return k.prefix + "floor" }

// Probe is the key the health probe writes.
func (k Keys) Probe() string { return k.prefix + "probe" }

// Idempotency is the key of the record of one Idempotency-Key in a scope. The scope's length
// comes first, so no scope and key pair can name another's record.
func (k Keys) Idempotency(scope, key string) string {
	return k.prefix + "idem:" + strconv.Itoa(len(scope)) + ":" + scope + ":" + key
}

// IdempotencyClaim is the key of the in-progress claim of one Idempotency-Key in a scope.
func (k Keys) IdempotencyClaim(scope, key string) string {
	return k.prefix + "idemclaim:" + strconv.Itoa(len(scope)) + ":" + scope + ":" + key
}

// WebPushSubs is the key of U's Web Push subscriptions.
func (k Keys) WebPushSubs(userID string) string { return k.prefix + "wpsub:{" + userID + "}" }

// WebPushUsers is the key of the set of users with a Web Push subscription.
func (k Keys) WebPushUsers() string { return k.prefix + "wpusers" }

// WebPushDue is the key of the due Web Push records.
func (k Keys) WebPushDue() string { return k.prefix + "wpdue" }

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

// LastIDOfMeta reads the last id from a user list's meta element ("<last id>,<cursor>[,1]").
func LastIDOfMeta(meta string) (uint64, bool) {
	last, _, ok := strings.Cut(meta, ",")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(last, 10, 64)
	return n, err == nil
}
