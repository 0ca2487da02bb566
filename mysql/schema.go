package mysql

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaTables are the tables `couponctl migrate` creates; a database
// without all of them is not a coupon database.
var schemaTables = []string{"coupons", "coupon_issues", "schema_migrations"}

// CheckSchema returns an error naming the database unless it holds the
// coupon schema: operator commands call it before they change anything, so
// that a wrong DSN never gets a table renamed or rebuilt.
func (db *DB) CheckSchema(ctx context.Context) error {
	var name sql.NullString
	var n int
	err := db.db.QueryRowContext(ctx, `SELECT DATABASE(), (SELECT COUNT(*) FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_name IN (?, ?, ?))`, schemaTables[0], schemaTables[1], schemaTables[2]).Scan(&name, &n)
	if err != nil {
		return fmt.Errorf("check the coupon schema: %w", err)
	}
	if !name.Valid || name.String == "" {
		return fmt.Errorf("the MySQL DSN names no database: refusing to change anything")
	}
	if n != len(schemaTables) {
		return fmt.Errorf("database %s has no coupon schema (%d of the tables %v; `couponctl migrate` creates them): refusing to change it", name.String, n, schemaTables)
	}
	return nil
}
