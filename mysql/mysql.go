// Package mysql is the MySQL/MariaDB store: coupons, issued rows, the
// sinker's guarded bulk insert.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// DB is the store, safe for concurrent use. Its pool is its own: every
// statement the system runs against MySQL is a method of DB.
type DB struct {
	db *sql.DB

	mu      sync.Mutex
	inserts map[string]*insertStmts // the bulk insert's prepared statements, by table (issues.go)
}

// Open validates cfg, opens its pool and checks the server answers.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	db, err := OpenPool(cfg)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ping mysql: %w", err)
	}
	return db, nil
}

// OpenPool is Open without the ping: the pool connects on first use, so a
// caller can start while MySQL is down and wait for it (the sinker).
func OpenPool(cfg Config) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := sql.Open("mysql", withDriverDefaults(cfg.DSN))
	if err != nil {
		return nil, fmt.Errorf("open mysql: %w", err)
	}
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &DB{db: db}, nil
}

// withDriverDefaults adds the store's driver settings unless the DSN sets
// them: parseTime=true and loc=UTC (DATETIME scans into time.Time in UTC),
// and interpolateParams=true: a query with arguments is one round trip, sent
// as text with the arguments escaped by the driver, instead of a server-side
// prepare, execute and close (three round trips and a parse per query; the
// gateway's reads made MariaDB spend about a third of its CPU on them at
// 1,000 coupons). The driver refuses interpolation with a few multibyte
// collations (BIG5, GBK, SJIS...): with one of those the DSN keeps the
// prepared statements.
func withDriverDefaults(dsn string) string {
	for _, opt := range []string{"parseTime=true", "loc=UTC", "interpolateParams=true"} {
		key := strings.SplitN(opt, "=", 2)[0] + "="
		if strings.Contains(dsn, key) {
			continue
		}
		with := dsn + "?" + opt
		if strings.Contains(dsn, "?") {
			with = dsn + "&" + opt
		}
		if _, err := driver.ParseDSN(with); err == nil {
			dsn = with
		}
	}
	return dsn
}

// Close closes the bulk insert's prepared statements and the pool.
func (db *DB) Close() error {
	db.mu.Lock()
	for _, s := range db.inserts {
		s.close()
	}
	db.inserts = nil
	db.mu.Unlock()
	return db.db.Close()
}

// PingContext checks the server answers (readiness).
func (db *DB) PingContext(ctx context.Context) error { return db.db.PingContext(ctx) }
