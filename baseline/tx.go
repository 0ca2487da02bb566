// Package baseline holds the seed study's synchronous strategies, kept for
// comparison: db-lock (SELECT ... FOR UPDATE) and redis-lock (a per-coupon
// Redis lock around the same transaction). Both write the row before answering.
package baseline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/mysql"
)

// errFenced means the coupon row changed between our read and our update:
// another writer ran concurrently (a lost Redis lease). Nothing was written.
var errFenced = errors.New("coupon row changed concurrently")

// issueTx runs the seed's issuing transaction once: read the coupon (with
// FOR UPDATE when lockRow), check its strategy and window, the user's row and the supply,
// insert the row with rank issued_quantity+1 and raise issued_quantity.
//
// The UPDATE is guarded by the issued_quantity it read, so even without the
// row lock two concurrent writers can never hand out the same rank or more
// than the total: the loser gets errFenced and rolls back.
func issueTx(ctx context.Context, db *sql.DB, strategy coupon.Strategy, couponID, userID int64, lockRow bool, now time.Time) (_ *coupon.Issue, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	q := `SELECT id, total_quantity, issued_quantity, strategy, issue_starts_at, issue_ends_at FROM coupons WHERE id = ?`
	if lockRow {
		q += ` FOR UPDATE`
	}
	var c coupon.Coupon
	var starts, ends sql.NullTime
	if err := tx.QueryRowContext(ctx, q, couponID).Scan(&c.ID, &c.TotalQuantity, &c.IssuedQuantity, &c.Strategy, &starts, &ends); errors.Is(err, sql.ErrNoRows) {
		return nil, coupon.Errorf(coupon.ENOTFOUND, "Coupon %d does not exist.", couponID)
	} else if err != nil {
		return nil, fmt.Errorf("read coupon: %w", err)
	}
	// A coupon is issued through one strategy: rows written here beside an
	// async gate would not be counted by it.
	if c.Strategy != strategy {
		return nil, coupon.Errorf(coupon.ECONFLICT, "Coupon %d is issued with strategy %s, not %s.", couponID, c.Strategy, strategy)
	}
	if starts.Valid {
		c.IssueStartsAt = &starts.Time
	}
	if ends.Valid {
		c.IssueEndsAt = &ends.Time
	}
	if err := c.CheckWindow(now); err != nil {
		return nil, err
	}

	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM coupon_issues WHERE coupon_id = ? AND user_id = ?`, couponID, userID).Scan(&one); {
	case err == nil:
		return nil, alreadyIssued(couponID, userID)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("read user's issue: %w", err)
	}
	if c.IssuedQuantity >= c.TotalQuantity {
		return nil, soldOut(couponID)
	}

	res, err := tx.ExecContext(ctx, `UPDATE coupons SET issued_quantity = issued_quantity + 1 WHERE id = ? AND issued_quantity = ?`, couponID, c.IssuedQuantity)
	if err != nil {
		return nil, fmt.Errorf("raise issued_quantity: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("raise issued_quantity: %w", err)
	} else if n != 1 {
		return nil, errFenced
	}
	is := &coupon.Issue{
		CouponID: couponID, UserID: userID, Rank: c.IssuedQuantity + 1,
		AdmittedAt: now, IssuedAt: now, Partition: -1, Offset: -1,
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO coupon_issues
		(coupon_id, user_id, issue_rank, admitted_at, issued_at, source_partition, source_offset)
		VALUES (?, ?, ?, ?, ?, -1, -1)`, is.CouponID, is.UserID, is.Rank, now, now); err != nil {
		return nil, fmt.Errorf("insert issue: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return is, nil
}

// classify maps a failed transaction to the caller's answer: domain errors
// pass through; constraint violations become the outcome they prove;
// retryable reports lock conflicts worth another attempt.
func classify(err error, couponID, userID int64) (out error, retryable bool) {
	switch {
	case coupon.ErrorCode(err) != coupon.EINTERNAL:
		return err, false
	case errors.Is(err, errFenced):
		return err, true
	case mysql.IsLockConflict(err):
		return err, true
	case mysql.IsDuplicate(err):
		return alreadyIssued(couponID, userID), false
	case mysql.IsCheckViolation(err):
		return soldOut(couponID), false
	}
	return err, false
}

// runWithRetry runs issueTx up to 1+retries times while it fails with a
// lock conflict, then gives up with EUNAVAILABLE.
func runWithRetry(ctx context.Context, db *sql.DB, strategy coupon.Strategy, couponID, userID int64, lockRow bool, retries int, now func() time.Time) (*coupon.Issue, error) {
	for attempt := 0; ; attempt++ {
		is, err := issueTx(ctx, db, strategy, couponID, userID, lockRow, now().UTC().Truncate(time.Microsecond))
		if err == nil {
			return is, nil
		}
		out, retryable := classify(err, couponID, userID)
		if !retryable {
			return nil, out
		}
		if attempt >= retries || ctx.Err() != nil {
			return nil, fmt.Errorf("issue coupon %d after %d attempts: %w: %w", couponID, attempt+1, coupon.Errorf(coupon.EUNAVAILABLE, "The coupon is busy; please retry."), out)
		}
		if err := sleep(ctx, jitter(time.Duration(attempt+1)*5*time.Millisecond)); err != nil {
			return nil, coupon.Errorf(coupon.EUNAVAILABLE, "The coupon is busy; please retry.")
		}
	}
}

func alreadyIssued(couponID, userID int64) error {
	return coupon.Errorf(coupon.EALREADY, "User %d already holds coupon %d.", userID, couponID)
}

func soldOut(couponID int64) error {
	return coupon.Errorf(coupon.ESOLDOUT, "Coupon %d is sold out.", couponID)
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
