package mysql

import "github.com/coupondrop/coupon"

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
