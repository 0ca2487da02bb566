package mysql

import (
	"database/sql"

	"github.com/coupondrop/coupon"
)

// SetPlaceholders switches the bulk insert to ? placeholders (true) or the
// VALUES literal and returns a func restoring the previous mode.
func SetPlaceholders(on bool) func() {
	old := usePlaceholders
	usePlaceholders = on
	return func() { usePlaceholders = old }
}

// BuildInsert exposes the statement builder to benchmarks.
func BuildInsert(b []byte, table string, rows []coupon.Issue) ([]byte, int) {
	return buildInsert(b, table, rows)
}

// SQL is the store's pool, for this package's tests that set up or break
// tables around the store's API.
func (db *DB) SQL() *sql.DB { return db.db }
