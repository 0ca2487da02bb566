package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/coupondrop/coupon"
)

// MaxUserIssues bounds the rows ListUserIssues returns.
const MaxUserIssues = 1000

const couponSelectColumns = `id, name, total_quantity, issued_quantity, strategy, issue_starts_at, issue_ends_at, created_at`

// CreateCoupon inserts c and fills its ID and CreatedAt. An empty strategy
// is stored as coupon.StrategyAsync. The caller validates c.
func (db *DB) CreateCoupon(ctx context.Context, c *coupon.Coupon) error {
	if c.Strategy == "" {
		c.Strategy = coupon.StrategyAsync
	}
	created := time.Now().UTC().Truncate(time.Microsecond)
	res, err := db.ExecContext(ctx, `INSERT INTO coupons
		(name, total_quantity, strategy, issue_starts_at, issue_ends_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		c.Name, c.TotalQuantity, string(c.Strategy), couponNullTime(c.IssueStartsAt), couponNullTime(c.IssueEndsAt), created)
	if err != nil {
		return fmt.Errorf("insert coupon: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("insert coupon: last insert id: %w", err)
	}
	c.ID, c.CreatedAt, c.IssuedQuantity = id, created, 0
	return nil
}

// DeleteUnissuedCoupon deletes the coupon if nothing was issued from it and
// reports whether it did: the undo of a creation whose gate could not be
// initialised.
func (db *DB) DeleteUnissuedCoupon(ctx context.Context, id int64) (bool, error) {
	res, err := db.ExecContext(ctx, `DELETE FROM coupons WHERE id = ? AND issued_quantity = 0
		AND NOT EXISTS (SELECT 1 FROM coupon_issues WHERE coupon_id = ?)`, id, id)
	if err != nil {
		return false, fmt.Errorf("delete coupon %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete coupon %d: %w", id, err)
	}
	return n == 1, nil
}

// FindCoupon returns the coupon with the given ID, or an ENOTFOUND error.
func (db *DB) FindCoupon(ctx context.Context, id int64) (*coupon.Coupon, error) {
	var (
		c            coupon.Coupon
		strategy     string
		starts, ends sql.NullTime
	)
	err := db.QueryRowContext(ctx, `SELECT `+couponSelectColumns+` FROM coupons WHERE id = ?`, id).Scan(
		&c.ID, &c.Name, &c.TotalQuantity, &c.IssuedQuantity, &strategy, &starts, &ends, &c.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, coupon.Errorf(coupon.ENOTFOUND, "Coupon %d does not exist.", id)
	} else if err != nil {
		return nil, fmt.Errorf("find coupon %d: %w", id, err)
	}
	c.Strategy = coupon.Strategy(strategy)
	c.IssueStartsAt, c.IssueEndsAt = couponTimePtr(starts), couponTimePtr(ends)
	return &c, nil
}

// IssuedCount returns how many issued rows the coupon has (rows, not the
// coupons.issued_quantity counter; the two agree when every writer keeps the
// counter in the same transaction as its rows).
func (db *DB) IssuedCount(ctx context.Context, couponID int64) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM coupon_issues WHERE coupon_id = ?`, couponID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count issues of coupon %d: %w", couponID, err)
	}
	return n, nil
}

// AdmissionSpan returns the earliest and the latest admitted_at of the
// coupon's issued rows (ok false when it has none). It reads every row of
// the coupon: the live page asks once, when the drop has sold out.
func (db *DB) AdmissionSpan(ctx context.Context, couponID int64) (first, last time.Time, ok bool, err error) {
	var f, l sql.NullTime
	if err := db.QueryRowContext(ctx, `SELECT MIN(admitted_at), MAX(admitted_at) FROM coupon_issues WHERE coupon_id = ?`, couponID).Scan(&f, &l); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("admission span of coupon %d: %w", couponID, err)
	}
	return f.Time, l.Time, f.Valid && l.Valid, nil
}

// FindIssue returns the user's issued row of the coupon, or an ENOTISSUED error.
func (db *DB) FindIssue(ctx context.Context, couponID, userID int64) (*coupon.Issue, error) {
	row := db.QueryRowContext(ctx, `SELECT coupon_id, user_id, issue_rank, admitted_at, issued_at, source_partition, source_offset
		FROM coupon_issues WHERE coupon_id = ? AND user_id = ?`, couponID, userID)
	is, err := scanIssueRow(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, coupon.Errorf(coupon.ENOTISSUED, "User %d holds no issue of coupon %d.", userID, couponID)
	} else if err != nil {
		return nil, fmt.Errorf("find issue of coupon %d to user %d: %w", couponID, userID, err)
	}
	return is, nil
}

// ListUserIssues returns the user's issued rows, newest coupon first, at
// most MaxUserIssues.
func (db *DB) ListUserIssues(ctx context.Context, userID int64) ([]*coupon.Issue, error) {
	rows, err := db.QueryContext(ctx, `SELECT coupon_id, user_id, issue_rank, admitted_at, issued_at, source_partition, source_offset
		FROM coupon_issues WHERE user_id = ? ORDER BY coupon_id DESC LIMIT ?`, userID, MaxUserIssues)
	if err != nil {
		return nil, fmt.Errorf("list issues of user %d: %w", userID, err)
	}
	defer rows.Close()
	out := []*coupon.Issue{}
	for rows.Next() {
		is, err := scanIssueRow(rows)
		if err != nil {
			return nil, fmt.Errorf("list issues of user %d: %w", userID, err)
		}
		out = append(out, is)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list issues of user %d: %w", userID, err)
	}
	return out, nil
}

type rowScanner interface{ Scan(dest ...any) error }

func scanIssueRow(s rowScanner) (*coupon.Issue, error) {
	var is coupon.Issue
	if err := s.Scan(&is.CouponID, &is.UserID, &is.Rank, &is.AdmittedAt, &is.IssuedAt, &is.Partition, &is.Offset); err != nil {
		return nil, err
	}
	return &is, nil
}

func couponNullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

func couponTimePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
