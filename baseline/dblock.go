package baseline

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/mysql"
)

// DBLockConfig tunes the db-lock strategy.
type DBLockConfig struct {
	// Retries is how many more times a transaction that hit a deadlock or a
	// lock-wait timeout is tried before the request answers EUNAVAILABLE.
	Retries int
	// Timeout bounds one Issue, its retries included (0: the default).
	Timeout time.Duration
}

// DefaultDBLockConfig returns the defaults: 3 retries within 5s.
func DefaultDBLockConfig() DBLockConfig { return DBLockConfig{Retries: 3, Timeout: 5 * time.Second} }

// DBLock is the seed's direct RDBMS strategy: one transaction per request
// holding the coupon row with SELECT ... FOR UPDATE. Safe for concurrent use.
type DBLock struct {
	db     *mysql.DB
	cfg    DBLockConfig
	logger *slog.Logger
	now    func() time.Time
}

var _ coupon.Issuer = (*DBLock)(nil)

// NewDBLock returns the db-lock issuer on db (the caller owns and closes db).
func NewDBLock(db *mysql.DB, cfg DBLockConfig, logger *slog.Logger) *DBLock {
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultDBLockConfig().Timeout
	}
	return &DBLock{db: db, cfg: cfg, logger: logger, now: time.Now}
}

// Issue issues c to userID in one transaction and returns the committed
// row, within the configured timeout.
// Errors: EALREADY, ESOLDOUT, ENOTFOUND, ENOTSTARTED, EENDED, and
// EUNAVAILABLE when lock conflicts persisted through every retry.
func (s *DBLock) Issue(ctx context.Context, c *coupon.Coupon, userID int64, requestID string) (*coupon.Issue, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	is, err := runWithRetry(ctx, s.db, coupon.StrategyDBLock, c.ID, userID, true, s.cfg.Retries, s.now)
	if err != nil && coupon.ErrorCode(err) == coupon.EUNAVAILABLE {
		s.logger.Warn("db-lock issue gave up", "coupon", c.ID, "user", userID, "request", requestID, "err", err)
	}
	return is, err
}

// String names the strategy.
func (s *DBLock) String() string {
	return string(coupon.StrategyDBLock) + " retries=" + strconv.Itoa(s.cfg.Retries)
}
