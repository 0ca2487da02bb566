package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/coupondrop/coupon"
)

// ErrContended is in the chain of IssueDirect's error when the transaction
// lost to a concurrent one (a deadlock, a lock wait timeout, or the coupon
// row changed between its read and its update) and was rolled back with
// nothing written: it may be tried again. Test with errors.Is.
var ErrContended = errors.New("issue transaction contended, rolled back")

// errFenced means the coupon row changed between our read and our update:
// another writer ran concurrently (a lost Redis lease). Nothing was written.
var errFenced = fmt.Errorf("coupon row changed concurrently: %w", ErrContended)

// IssueDirect runs the synchronous baselines' issuing transaction once (the
// seed study's): read the coupon (with SELECT ... FOR UPDATE when lockRow),
// check its strategy (a coupon is issued through one strategy) and window
// at now, the user's row and the supply, insert the row with rank
// issued_quantity+1 and raise issued_quantity, and commit.
//
// The UPDATE is guarded by the issued_quantity it read, so even without the
// row lock two concurrent writers can never hand out the same rank or more
// than the total: the loser is rolled back with ErrContended. Errors are
// *coupon.Error with ENOTFOUND, ECONFLICT (another strategy), ENOTSTARTED,
// EENDED, EALREADY or ESOLDOUT for the expected outcomes (a duplicate key
// or the CHECK guard proves the last two as well); ErrContended; or a
// wrapped failure.
func (db *DB) IssueDirect(ctx context.Context, strategy coupon.Strategy, couponID, userID int64, lockRow bool, now time.Time) (*coupon.Issue, error) {
	is, err := db.issueDirect(ctx, strategy, couponID, userID, lockRow, now)
	if err != nil {
		return nil, classifyDirect(err, couponID, userID)
	}
	return is, nil
}

// classifyDirect maps a failed issuing transaction to IssueDirect's error:
// domain errors pass through; constraint violations become the outcome
// they prove; lock conflicts are ErrContended.
func classifyDirect(err error, couponID, userID int64) error {
	switch {
	case coupon.ErrorCode(err) != coupon.EINTERNAL, errors.Is(err, ErrContended):
		return err
	case IsLockConflict(err):
		return fmt.Errorf("%w: %w", ErrContended, err)
	case IsDuplicate(err):
		return alreadyIssued(couponID, userID)
	case IsCheckViolation(err):
		return soldOut(couponID)
	}
	return err
}

func (db *DB) issueDirect(ctx context.Context, strategy coupon.Strategy, couponID, userID int64, lockRow bool, now time.Time) (_ *coupon.Issue, err error) {
	tx, err := db.db.BeginTx(ctx, nil)
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
	// Rows written here beside an async gate would not be counted by it.
	if c.Strategy != strategy {
		return nil, coupon.Errorf(coupon.ECONFLICT, "Coupon %d is issued with strategy %s, not %s.", couponID, c.Strategy, strategy)
	}
	c.IssueStartsAt, c.IssueEndsAt = couponTimePtr(starts), couponTimePtr(ends)
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

func alreadyIssued(couponID, userID int64) error {
	return coupon.Errorf(coupon.EALREADY, "User %d already holds coupon %d.", userID, couponID)
}

func soldOut(couponID int64) error {
	return coupon.Errorf(coupon.ESOLDOUT, "Coupon %d is sold out.", couponID)
}
