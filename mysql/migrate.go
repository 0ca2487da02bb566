package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/coupondrop/coupon/infra"
	driver "github.com/go-sql-driver/mysql"
)

// Migrate creates the DSN's database when missing (utf8mb4) and applies
// every embedded migration (infra.Migrations) not yet recorded in its
// schema_migrations, in order; it is idempotent and safe to run on every
// start. A nil logger logs nothing.
func Migrate(ctx context.Context, dsn string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("parse MySQL DSN: %w", err)
	}
	if cfg.DBName == "" {
		return errors.New("the MySQL DSN names no database (…/dbname)")
	}
	cfg.MultiStatements, cfg.ParseTime = true, true
	name := cfg.DBName
	admin := *cfg
	admin.DBName = ""
	adb, err := sql.Open("mysql", admin.FormatDSN())
	if err != nil {
		return fmt.Errorf("open MySQL: %w", err)
	}
	defer adb.Close()
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("create database %s on %s: %w", name, cfg.Addr, err)
	}
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return fmt.Errorf("open MySQL: %w", err)
	}
	defer db.Close()
	if err := migrate(ctx, db, logger); err != nil {
		return fmt.Errorf("database %s on %s: %w", name, cfg.Addr, err)
	}
	logger.Info("database migrated", "database", name, "addr", cfg.Addr)
	return nil
}

func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INT NOT NULL PRIMARY KEY,
		name VARCHAR(200) NOT NULL,
		applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	ms, err := infra.Migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
			return fmt.Errorf("check migration %s: %w", m.Name, err)
		}
		if n > 0 {
			continue
		}
		// DDL commits implicitly in MySQL, so each statement of a migration
		// must itself be idempotent (CREATE ... IF NOT EXISTS and the like).
		if _, err := db.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES (?, ?)`, m.Version, m.Name); err != nil {
			return fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		logger.Info("migration applied", "version", m.Version, "name", m.Name)
	}
	return nil
}
