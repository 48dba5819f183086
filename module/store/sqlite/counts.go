package sqlite

import (
	"database/sql"
	"fmt"
)

// userCountsSize bounds the writer's cache of per-user message counts (about 50 bytes plus the
// user id each); the cache is emptied when it would grow past it.
const userCountsSize = 100_000

// userCounts is the writer's cache of how many rows (messages, expired ones the sweep has not
// deleted yet included) each recently touched user has. With it an append deletes rows only
// when its user passes store.maxPerUser, and then exactly the surplus; without it every append
// ran a trim statement that walked the user's newest maxPerUser index entries (measured with
// BenchmarkAppendAtLimit, users at the 1,000 limit: see docs/performance.md).
//
// Invariant: a cached count is the user's number of rows in the committed database. Only the
// writer changes message rows (appends, trims, purges, the sweep); a transaction works on its own
// copy of the counts it touches (inTx below) and folds it in only after it committed, and a
// failed commit empties the cache. TestUserCountsFollowEveryDeletion checks it against the rows.
type userCounts struct {
	committed map[string]int
	tx        map[string]int // the current transaction's counts of the users it touched
}

// begin starts a transaction's counts (the map is made on first use).
func (c *userCounts) begin() { c.tx = nil }

// known returns the user's count as the current transaction sees it, if known.
func (c *userCounts) known(user string) (int, bool) {
	if n, ok := c.tx[user]; ok {
		return n, true
	}
	n, ok := c.committed[user]
	return n, ok
}

// add changes a known count by delta; an unknown one stays unknown (read when needed).
func (c *userCounts) add(user string, delta int) {
	if n, ok := c.known(user); ok {
		c.set(user, n+delta)
	}
}

func (c *userCounts) set(user string, n int) {
	if c.tx == nil {
		c.tx = map[string]int{}
	}
	c.tx[user] = n
}

// end folds the transaction's counts in after a commit, or empties the cache after a failure.
func (c *userCounts) end(committed bool) {
	switch {
	case !committed:
		clear(c.committed)
	case len(c.committed)+len(c.tx) > userCountsSize:
		clear(c.committed)
		fallthrough
	default:
		for user, n := range c.tx {
			c.committed[user] = n
		}
	}
	c.tx = nil
}

// trimUsers deletes, for each user appended to in this transaction, its oldest rows beyond
// store.maxPerUser. The newest row is never deleted (maxPerUser is at least 1), so the user's
// head stays in its rows.
func (w *writer) trimUsers(tx *sql.Tx, touched map[string]struct{}) error {
	limit := w.s.opts.MaxPerUser
	var count, trim *sql.Stmt // bound to tx on first use
	for user := range touched {
		n, ok := w.counts.known(user)
		if !ok {
			if count == nil {
				count = tx.Stmt(w.countUser)
			}
			if err := count.QueryRow(user).Scan(&n); err != nil {
				return fmt.Errorf("count: %w", err)
			}
		}
		if n > limit {
			if trim == nil {
				trim = tx.Stmt(w.trimOldest)
			}
			res, err := trim.Exec(user, n-limit)
			if err != nil {
				return fmt.Errorf("trim: %w", err)
			}
			deleted, _ := res.RowsAffected()
			w.s.opts.Metrics.Trimmed.Add(float64(deleted))
			n -= int(deleted)
		}
		w.counts.set(user, n)
	}
	return nil
}
