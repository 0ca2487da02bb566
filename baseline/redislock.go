package baseline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/lua"
	"github.com/coupondrop/coupon/mysql"
	"github.com/redis/go-redis/v9"
)

// RedisLockConfig tunes the redis-lock strategy.
type RedisLockConfig struct {
	// Wait bounds how long a request waits for the coupon's lock before it
	// answers EUNAVAILABLE.
	Wait time.Duration
	// Lease is the lock's expiry (PX): long enough for the transaction,
	// which is cancelled if it would outlive the lease.
	Lease time.Duration
	// BackoffMin and BackoffMax bound the (jittered, doubling) pause
	// between attempts to take a busy lock.
	BackoffMin, BackoffMax time.Duration
	// Retries is how many more times a transaction that hit a lock conflict
	// in MySQL is tried (under the same lock) before EUNAVAILABLE.
	Retries int
	// Timeout bounds one Issue: the waits for the lock and the transaction.
	Timeout time.Duration
}

// DefaultRedisLockConfig returns the defaults: wait 2s, lease 5s, all
// within 5s.
func DefaultRedisLockConfig() RedisLockConfig {
	return RedisLockConfig{Wait: 2 * time.Second, Lease: 5 * time.Second, BackoffMin: time.Millisecond, BackoffMax: 20 * time.Millisecond, Retries: 2,
		Timeout: 5 * time.Second}
}

// Validate checks the settings.
func (c RedisLockConfig) Validate() error {
	switch {
	case c.Wait <= 0:
		return errors.New("redis-lock wait must be positive")
	case c.Lease < 100*time.Millisecond:
		return errors.New("redis-lock lease must be at least 100ms")
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return errors.New("redis-lock backoff must satisfy 0 < min <= max")
	case c.Retries < 0:
		return errors.New("redis-lock retries must not be negative")
	case c.Timeout <= 0:
		return errors.New("redis-lock timeout must be positive")
	}
	return nil
}

// LockKey is the Redis key of coupon couponID's redis-lock lock; it shares
// the coupon's hash tag.
func LockKey(couponID int64) string { return coupon.RedisKey(couponID, "lock") }

// unlockScript deletes the lock only while it still holds our token.
var unlockScript = redis.NewScript(lua.Unlock)

// RedisLock is the seed's distributed-lock strategy: a per-coupon Redis lock
// (SET NX PX with a random token, released by compare-and-delete) around the
// issuing transaction without the row lock. Within one process, waiters
// queue locally (as Redisson's waiters sleep on a pub/sub channel instead of
// polling), so only one request per process polls Redis for a coupon.
// Safe for concurrent use.
type RedisLock struct {
	// local queues this process's requests per coupon in front of the
	// Redis lock (coupon ID -> chan struct{} of capacity 1), so waiters
	// here do not poll Redis; Redis still arbitrates between processes.
	local  sync.Map
	db     *mysql.DB
	rdb    redis.UniversalClient
	cfg    RedisLockConfig
	logger *slog.Logger
	now    func() time.Time
}

var _ coupon.Issuer = (*RedisLock)(nil)

// NewRedisLock returns the redis-lock issuer (the caller owns db and rdb).
func NewRedisLock(db *mysql.DB, rdb redis.UniversalClient, cfg RedisLockConfig, logger *slog.Logger) (*RedisLock, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &RedisLock{db: db, rdb: rdb, cfg: cfg, logger: logger, now: time.Now}, nil
}

// Issue takes the coupon's lock, issues in one transaction and releases the
// lock, within the configured timeout. Errors as DBLock.Issue; EUNAVAILABLE also when the lock could not be
// had within the configured wait (nothing was written then).
func (s *RedisLock) Issue(ctx context.Context, c *coupon.Coupon, userID int64, requestID string) (*coupon.Issue, error) {
	ctx, stop := context.WithTimeout(ctx, s.cfg.Timeout)
	defer stop()
	deadline := time.Now().Add(s.cfg.Wait)
	unlock, err := s.lockLocal(ctx, c.ID, deadline)
	if err != nil {
		return nil, err
	}
	defer unlock()
	key := LockKey(c.ID)
	token, err := s.acquire(ctx, key, deadline)
	if err != nil {
		return nil, err
	}
	acquired := time.Now()
	defer s.release(key, token)

	// The transaction must finish inside the lease, with a margin for the
	// release; if it cannot, it is cancelled (rolled back), never left
	// running unprotected. The guarded UPDATE covers what remains.
	txCtx, cancel := context.WithDeadline(ctx, acquired.Add(s.cfg.Lease*9/10))
	defer cancel()
	is, err := runWithRetry(txCtx, s.db, coupon.StrategyRedisLock, c.ID, userID, false, s.cfg.Retries, s.now)
	if err != nil && coupon.ErrorCode(err) == coupon.EINTERNAL && txCtx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", errBusy, err)
	}
	if err != nil && coupon.ErrorCode(err) == coupon.EUNAVAILABLE {
		s.logger.Warn("redis-lock issue gave up", "coupon", c.ID, "user", userID, "request", requestID, "err", err)
	}
	return is, err
}

// errBusy is the answer of a request that could not get the lock in time.
var errBusy = coupon.Errorf(coupon.EUNAVAILABLE, "The coupon is busy; please retry.")

// lockLocal waits until deadline for this process's turn at the coupon and
// returns the function that ends it.
func (s *RedisLock) lockLocal(ctx context.Context, couponID int64, deadline time.Time) (func(), error) {
	v, _ := s.local.LoadOrStore(couponID, make(chan struct{}, 1))
	ch := v.(chan struct{})
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// acquire takes the lock at key, retrying with jittered exponential backoff
// until deadline, and returns the token that owns it.
func (s *RedisLock) acquire(ctx context.Context, key string, deadline time.Time) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	backoff := s.cfg.BackoffMin
	for {
		ok, err := s.rdb.SetNX(ctx, key, token, s.cfg.Lease).Result()
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("take lock %s: %w: %w", key, coupon.Errorf(coupon.EUNAVAILABLE, "The lock service is unavailable; please retry."), err)
		}
		if ok {
			return token, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", errBusy
		}
		if err := sleep(ctx, min(jitter(backoff), left)); err != nil {
			return "", err
		}
		backoff = min(backoff*2, s.cfg.BackoffMax)
	}
}

// release deletes the lock if it still holds token. It runs even when the
// request's context ended, so a cancelled client does not hold the coupon
// for a whole lease.
func (s *RedisLock) release(key, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := unlockScript.Run(ctx, s.rdb, []string{key}, token).Int()
	if err != nil {
		s.logger.Warn("release redis lock", "key", key, "err", err)
	} else if n == 0 {
		s.logger.Warn("redis lock expired before release", "key", key, "lease", s.cfg.Lease)
	}
}

// String names the strategy.
func (s *RedisLock) String() string {
	return fmt.Sprintf("%s wait=%s lease=%s", coupon.StrategyRedisLock, s.cfg.Wait, s.cfg.Lease)
}
