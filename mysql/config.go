package mysql

import (
	"errors"
	"fmt"

	"github.com/coupondrop/coupon/internal/cli"
	driver "github.com/go-sql-driver/mysql"
)

// Config is the store's connection: the server and the pool.
type Config struct {
	DSN      string // go-sql-driver format (secret); parseTime=true, loc=UTC and interpolateParams=true are added when missing
	MaxConns int    // pool size: open connections at most, kept idle too
}

// DefaultConfig is the dev stack's database with a pool of 32.
func DefaultConfig() Config {
	return Config{DSN: "root@tcp(127.0.0.1:3306)/coupon", MaxConns: 32}
}

// Bind binds --mysql-dsn and --mysql-conns, with c's values as defaults.
func (c *Config) Bind(fs *cli.FlagSet) {
	fs.MySQLDSNVar(&c.DSN)
	fs.IntVar(&c.MaxConns, "mysql-conns", "COUPON_MYSQL_CONNS", c.MaxConns, "MySQL connection pool size")
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("mysql DSN is required (COUPON_MYSQL_DSN)"))
	} else if _, err := driver.ParseDSN(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("mysql DSN (COUPON_MYSQL_DSN): %w", err))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("mysql connections must be at least 1 (COUPON_MYSQL_CONNS), not %d", c.MaxConns))
	}
	return errors.Join(errs...)
}
