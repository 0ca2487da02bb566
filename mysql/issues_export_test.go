package mysql

import (
	"database/sql"

	"github.com/coupondrop/coupon"
)

// SetPrepared switches the bulk insert to its prepared statements (true,
// the default) or the VALUES literal only, and returns a func restoring
// the previous mode.
func SetPrepared(on bool) func() {
	old := usePrepared
	usePrepared = on
	return func() { usePrepared = old }
}

// MinPreparedRows and MaxPreparedRows are the prepared statements' sizes.
const MinPreparedRows, MaxPreparedRows = minPreparedRows, maxPreparedRows

// BuildInsert exposes the statement builder to benchmarks.
func BuildInsert(b []byte, table string, rows []coupon.Issue) ([]byte, int) {
	return buildInsert(b, table, rows)
}

// SQL is the store's pool, for this package's tests that set up or break
// tables around the store's API.
func (db *DB) SQL() *sql.DB { return db.db }
