// Package baseline holds the seed study's synchronous strategies, kept for
// comparison: db-lock (SELECT ... FOR UPDATE) and redis-lock (a per-coupon
// Redis lock around the same transaction). Both write the row before answering.
package baseline

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/mysql"
)

// runWithRetry runs the issuing transaction (mysql.DB.IssueDirect) up to
// 1+retries times while it loses to a concurrent one, then gives up with
// EUNAVAILABLE.
func runWithRetry(ctx context.Context, db *mysql.DB, strategy coupon.Strategy, couponID, userID int64, lockRow bool, retries int, now func() time.Time) (*coupon.Issue, error) {
	for attempt := 0; ; attempt++ {
		is, err := db.IssueDirect(ctx, strategy, couponID, userID, lockRow, now().UTC().Truncate(time.Microsecond))
		if err == nil {
			return is, nil
		}
		if !errors.Is(err, mysql.ErrContended) {
			return nil, err
		}
		if attempt >= retries || ctx.Err() != nil {
			return nil, fmt.Errorf("issue coupon %d after %d attempts: %w: %w", couponID, attempt+1, coupon.Errorf(coupon.EUNAVAILABLE, "The coupon is busy; please retry."), err)
		}
		if err := sleep(ctx, jitter(time.Duration(attempt+1)*5*time.Millisecond)); err != nil {
			return nil, coupon.Errorf(coupon.EUNAVAILABLE, "The coupon is busy; please retry.")
		}
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
