package sqlite

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"regexp"
)

// schema is the database as this version writes it. A file made by an older version is brought
// to it by migrate.
const schema = `
CREATE TABLE IF NOT EXISTS messages (
	id         INTEGER PRIMARY KEY, -- one counter for all users, so increasing per user too
	user_id    TEXT    NOT NULL,
	data       BLOB    NOT NULL,    -- compact JSON as published
	created_at INTEGER NOT NULL,    -- unix milliseconds, as every time below
	expires_at INTEGER NOT NULL,
	sent_at    INTEGER,             -- first write to any connection; NULL = never
	acked_at   INTEGER,             -- acknowledged by a version 2 client
	pushed_at  INTEGER,             -- sent through Web Push
	queued     INTEGER NOT NULL DEFAULT 1 -- 1 while in the user's unread queue
);
CREATE INDEX IF NOT EXISTS messages_by_user ON messages(user_id, id);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages(expires_at);
-- last_id: the id counter, saved when the newest message may be deleted (purge, expiry).
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
-- epoch: the id space's name (text: meta's INTEGER affinity would turn "12e3" into a number).
CREATE TABLE IF NOT EXISTS store_info (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
-- A user's newest id once its message is gone (purged or expired), so Head never goes down. Only
-- deletions write it; appends do not (Head takes the greater of this and the user's newest row).
-- A row is kept for the life of the file: about the user id plus 10 bytes, once per user whose
-- newest message was ever deleted.
CREATE TABLE IF NOT EXISTS user_heads (
	user_id TEXT PRIMARY KEY,
	last_id INTEGER NOT NULL
) WITHOUT ROWID;
-- Idempotent publishes (API.md "Idempotent publish"), written with their messages.
CREATE TABLE IF NOT EXISTS idempotency (
	scope       TEXT    NOT NULL,
	key         TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	results     BLOB    NOT NULL, -- the stored ids: see encodeResults
	body        BLOB,             -- the response, once the request finished
	expires_at  INTEGER NOT NULL,
	PRIMARY KEY (scope, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency(expires_at);
`

// migrate brings a database made by an earlier version to schema, in one transaction, keeping
// its messages. The first version had delivered_at (set by the first write to any connection,
// which also took the message out of the unread queue) and an unused acked_at: delivered_at
// becomes sent_at, and a message with one left the queue.
func migrate(db *sql.DB) error {
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	cols, err := columns(tx, "messages")
	if err != nil {
		return err
	}
	var steps []string
	if cols["delivered_at"] && !cols["sent_at"] {
		steps = append(steps, `ALTER TABLE messages RENAME COLUMN delivered_at TO sent_at`)
		cols["sent_at"] = true
	}
	for _, c := range []string{"sent_at", "acked_at", "pushed_at"} {
		if len(cols) > 0 && !cols[c] {
			steps = append(steps, `ALTER TABLE messages ADD COLUMN `+c+` INTEGER`)
		}
	}
	if len(cols) > 0 && !cols["queued"] {
		steps = append(steps, `ALTER TABLE messages ADD COLUMN queued INTEGER NOT NULL DEFAULT 1`,
			`UPDATE messages SET queued = 0 WHERE sent_at IS NOT NULL OR acked_at IS NOT NULL`)
	}
	steps = append(steps, schema, pushSchema)
	for _, q := range steps {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("%.60s: %w", q, err)
		}
	}
	return tx.Commit()
}

// columns returns the column names of table (none when it does not exist).
func columns(tx *sql.Tx, table string) (map[string]bool, error) {
	rows, err := tx.Query(`SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		cols[name] = true
	}
	return cols, rows.Err()
}

var epochSyntax = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// loadEpoch returns the file's epoch, creating it with the file (or with the first open by this
// version of a file from an earlier one).
func loadEpoch(db *sql.DB) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	if _, err := db.Exec(`INSERT INTO store_info (key, value) VALUES ('epoch', ?) ON CONFLICT(key) DO NOTHING`,
		base64.RawURLEncoding.EncodeToString(b[:])); err != nil {
		return "", fmt.Errorf("create epoch: %w", err)
	}
	var epoch string
	if err := db.QueryRow(`SELECT value FROM store_info WHERE key = 'epoch'`).Scan(&epoch); err != nil {
		return "", fmt.Errorf("read epoch: %w", err)
	}
	if !epochSyntax.MatchString(epoch) {
		return "", fmt.Errorf("epoch %q in the file is not 1-64 bytes of [A-Za-z0-9_-]", epoch)
	}
	return epoch, nil
}
