package mysql_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
	driver "github.com/go-sql-driver/mysql"
)

// TestMigrateCreatesDatabaseIdempotently runs Migrate (couponctl migrate) twice on a database
// that does not exist yet: the first run creates it and the tables, the
// second changes nothing.
func TestMigrateCreatesDatabaseIdempotently(t *testing.T) {
	testenv.Integration(t)
	cfg, err := driver.ParseDSN(testenv.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	name := "coupon_test_" + testenv.RandomID()
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS `" + name + "`") })
	cfg.DBName = name
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		if err := mysql.Migrate(ctx, cfg.FormatDSN(), testenv.Logger(t)); err != nil {
			t.Fatalf("migrate run %d: %v", i, err)
		}
	}
	var tables, versions int
	if err := admin.QueryRow(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name IN ('coupons', 'coupon_issues')`, name).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 2 {
		t.Fatalf("%d of the 2 tables exist", tables)
	}
	if err := admin.QueryRow("SELECT COUNT(*) FROM `" + name + "`.schema_migrations").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions < 1 {
		t.Fatal("no migration recorded")
	}
	if err := mysql.Migrate(ctx, "root@tcp(127.0.0.1:1)/", nil); err == nil {
		t.Fatal("a DSN without a database was accepted")
	}
}
