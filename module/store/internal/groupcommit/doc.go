// Package groupcommit holds what the embedded stores (sqlite, pebble) share around their single
// writer: the queue of delivery marks that ride with the next group commit, the idempotency
// claims of requests in progress, and the encoding of an idempotent publish's stored ids.
package groupcommit
