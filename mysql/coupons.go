package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coupondrop/coupon"
)

// MaxUserIssues bounds the rows ListUserIssues returns.
const MaxUserIssues = 1000

const couponSelectColumns = `id, name, total_quantity, issued_quantity, strategy, issue_starts_at, issue_ends_at, created_at, revision`

// scanCoupon scans one row of couponSelectColumns.
func scanCoupon(s rowScanner) (*coupon.Coupon, error) {
	var (
		c            coupon.Coupon
		strategy     string
		starts, ends sql.NullTime
	)
	if err := s.Scan(&c.ID, &c.Name, &c.TotalQuantity, &c.IssuedQuantity, &strategy, &starts, &ends, &c.CreatedAt, &c.Revision); err != nil {
		return nil, err
	}
	c.Strategy = coupon.Strategy(strategy)
	c.IssueStartsAt, c.IssueEndsAt = couponTimePtr(starts), couponTimePtr(ends)
	return &c, nil
}

// CreateCoupon inserts c and fills its ID and CreatedAt. An empty strategy
// is stored as coupon.StrategyAsync. The caller validates c.
func (db *DB) CreateCoupon(ctx context.Context, c *coupon.Coupon) error {
	if c.Strategy == "" {
		c.Strategy = coupon.StrategyAsync
	}
	created := time.Now().UTC().Truncate(time.Microsecond)
	res, err := db.db.ExecContext(ctx, `INSERT INTO coupons
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
	c.ID, c.CreatedAt, c.IssuedQuantity, c.Revision = id, created, 0, 1
	return nil
}

// DeleteUnissuedCoupon deletes the coupon if nothing was issued from it and
// reports whether it did: the undo of a creation whose gate could not be
// initialised.
func (db *DB) DeleteUnissuedCoupon(ctx context.Context, id int64) (bool, error) {
	res, err := db.db.ExecContext(ctx, `DELETE FROM coupons WHERE id = ? AND issued_quantity = 0
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
	c, err := scanCoupon(db.db.QueryRowContext(ctx, `SELECT `+couponSelectColumns+` FROM coupons WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, coupon.Errorf(coupon.ENOTFOUND, "Coupon %d does not exist.", id)
	} else if err != nil {
		return nil, fmt.Errorf("find coupon %d: %w", id, err)
	}
	return c, nil
}

// ListCoupons returns up to limit coupons past cursor in order: IDs above
// cursor by ascending ID (OrderAsc, or ""), IDs below it by descending ID
// (OrderDesc; cursor 0 starts at the newest coupon).
// With a state it returns the coupons that may be in that state at now
// judged by MySQL alone (a superset: an async coupon's state also depends
// on its admitted count, which only the gate knows, so sold_out keeps every
// async coupon that started); the caller judges each with Coupon.StateOf
// and continues past the last ID returned, whatever it kept.
func (db *DB) ListCoupons(ctx context.Context, cursor int64, limit int, order coupon.Order, state coupon.State, now time.Time) ([]*coupon.Coupon, error) {
	const (
		soldOut = `issued_quantity >= total_quantity`
		started = `(issue_starts_at IS NULL OR issue_starts_at <= ?)`
		running = `(issue_ends_at IS NULL OR issue_ends_at > ?)`
	)
	where, by, args := `id > ?`, `id`, []any{cursor}
	switch order {
	case "", coupon.OrderAsc:
	case coupon.OrderDesc:
		where, by = `id < ?`, `id DESC`
		if cursor == 0 {
			where, args = `TRUE`, nil
		}
	default:
		return nil, fmt.Errorf("list coupons: unknown order %q", order)
	}
	now = now.UTC()
	switch state {
	case "":
	case coupon.StateSoldOut:
		where += ` AND (` + soldOut + ` OR (strategy = ? AND ` + started + `))`
		args = append(args, string(coupon.StrategyAsync), now)
	case coupon.StateUpcoming:
		where += ` AND NOT ` + soldOut + ` AND issue_starts_at > ?`
		args = append(args, now)
	case coupon.StateEnded:
		where += ` AND NOT ` + soldOut + ` AND ` + started + ` AND issue_ends_at <= ?`
		args = append(args, now, now)
	case coupon.StateOpen:
		where += ` AND NOT ` + soldOut + ` AND ` + started + ` AND ` + running
		args = append(args, now, now)
	default:
		return nil, fmt.Errorf("list coupons: unknown state %q", state)
	}
	args = append(args, limit)
	return db.queryCoupons(ctx, "list coupons", `SELECT `+couponSelectColumns+` FROM coupons WHERE `+where+` ORDER BY `+by+` LIMIT ?`, args...)
}

// MaxAdmittingCoupons bounds the coupons AdmittingCoupons returns.
const MaxAdmittingCoupons = 1000

// AdmittingCoupons returns the async coupons that may hold admissions not
// yet written (started, fewer rows than their total: a coupon whose every
// unit is issued has none), newest first, at most MaxAdmittingCoupons.
func (db *DB) AdmittingCoupons(ctx context.Context, now time.Time) ([]*coupon.Coupon, error) {
	return db.queryCoupons(ctx, "list admitting coupons", `SELECT `+couponSelectColumns+` FROM coupons
		WHERE strategy = ? AND issued_quantity < total_quantity AND (issue_starts_at IS NULL OR issue_starts_at <= ?)
		ORDER BY id DESC LIMIT ?`, string(coupon.StrategyAsync), now.UTC(), MaxAdmittingCoupons)
}

func (db *DB) queryCoupons(ctx context.Context, what, query string, args ...any) ([]*coupon.Coupon, error) {
	rows, err := db.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := []*coupon.Coupon{}
	for rows.Next() {
		c, err := scanCoupon(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// UpdateCoupon applies p to coupon id in one transaction holding the
// coupon's row lock (the lock the sinker takes before raising
// issued_quantity): it reads the coupon, applies and validates p, refuses a
// total below the rows issued (ECONFLICT; the CHECK constraint would too),
// writes the new fields with the revision raised by one, then runs hold,
// still under the lock, and commits. An error from p or hold rolls back
// everything. It returns the coupon before and after.
func (db *DB) UpdateCoupon(ctx context.Context, id int64, p coupon.Patch, hold func(ctx context.Context, old, updated *coupon.Coupon) error) (old, updated *coupon.Coupon, err error) {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("update coupon %d: begin: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	old, err = scanCoupon(tx.QueryRowContext(ctx, `SELECT `+couponSelectColumns+` FROM coupons WHERE id = ? FOR UPDATE`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, coupon.Errorf(coupon.ENOTFOUND, "Coupon %d does not exist.", id)
	} else if err != nil {
		return nil, nil, fmt.Errorf("update coupon %d: lock: %w", id, err)
	}
	u, err := p.Apply(*old)
	if err != nil {
		return nil, nil, err
	}
	if u.TotalQuantity < old.IssuedQuantity {
		return nil, nil, overIssued(id, u.TotalQuantity, old.IssuedQuantity)
	}
	u.Revision = old.Revision + 1
	_, err = tx.ExecContext(ctx, `UPDATE coupons SET name = ?, total_quantity = ?, issue_starts_at = ?, issue_ends_at = ?, revision = ? WHERE id = ?`,
		u.Name, u.TotalQuantity, couponNullTime(u.IssueStartsAt), couponNullTime(u.IssueEndsAt), u.Revision, id)
	if IsCheckViolation(err) {
		return nil, nil, overIssued(id, u.TotalQuantity, old.IssuedQuantity)
	} else if err != nil {
		return nil, nil, fmt.Errorf("update coupon %d: %w", id, err)
	}
	if hold != nil {
		if err = hold(ctx, old, &u); err != nil {
			return nil, nil, err
		}
	}
	if err = tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("update coupon %d: commit: %w", id, err)
	}
	return old, &u, nil
}

func overIssued(id, total, issued int64) error {
	return coupon.Errorf(coupon.ECONFLICT, "totalQuantity %d is below the %d units of coupon %d already issued.", total, issued, id)
}

// IssuedCount returns how many issued rows the coupon has (rows, not the
// coupons.issued_quantity counter; the two agree when every writer keeps the
// counter in the same transaction as its rows).
func (db *DB) IssuedCount(ctx context.Context, couponID int64) (int64, error) {
	var n int64
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM coupon_issues WHERE coupon_id = ?`, couponID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count issues of coupon %d: %w", couponID, err)
	}
	return n, nil
}

// AdmissionSpan returns the earliest and the latest admitted_at of the
// coupon's issued rows (ok false when it has none). It reads every row of
// the coupon: the live page asks once, when the drop has sold out.
func (db *DB) AdmissionSpan(ctx context.Context, couponID int64) (first, last time.Time, ok bool, err error) {
	var f, l sql.NullTime
	if err := db.db.QueryRowContext(ctx, `SELECT MIN(admitted_at), MAX(admitted_at) FROM coupon_issues WHERE coupon_id = ?`, couponID).Scan(&f, &l); err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("admission span of coupon %d: %w", couponID, err)
	}
	return f.Time, l.Time, f.Valid && l.Valid, nil
}

// FindIssue returns the user's issued row of the coupon, or an ENOTISSUED error.
func (db *DB) FindIssue(ctx context.Context, couponID, userID int64) (*coupon.Issue, error) {
	row := db.db.QueryRowContext(ctx, `SELECT coupon_id, user_id, issue_rank, admitted_at, issued_at, source_partition, source_offset
		FROM coupon_issues WHERE coupon_id = ? AND user_id = ?`, couponID, userID)
	is, err := scanIssueRow(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, coupon.Errorf(coupon.ENOTISSUED, "User %d holds no issue of coupon %d.", userID, couponID)
	} else if err != nil {
		return nil, fmt.Errorf("find issue of coupon %d to user %d: %w", couponID, userID, err)
	}
	return is, nil
}

// FindIssues returns the issued rows among users (coupon ID -> user IDs),
// in one query whatever the number of coupons; users without a row are
// absent from the result.
func (db *DB) FindIssues(ctx context.Context, users map[int64][]int64) ([]*coupon.Issue, error) {
	ids := make([]int64, 0, len(users))
	for id, us := range users {
		if len(us) > 0 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	var q strings.Builder
	q.WriteString(`SELECT coupon_id, user_id, issue_rank, admitted_at, issued_at, source_partition, source_offset
		FROM coupon_issues WHERE `)
	args := make([]any, 0, 2*len(ids))
	for i, id := range ids {
		if i > 0 {
			q.WriteString(" OR ")
		}
		q.WriteString("(coupon_id = ? AND user_id IN (?")
		q.WriteString(strings.Repeat(",?", len(users[id])-1))
		q.WriteString("))")
		args = append(args, id)
		for _, u := range users[id] {
			args = append(args, u)
		}
	}
	rows, err := db.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("find issues of %d coupons: %w", len(ids), err)
	}
	defer rows.Close()
	var out []*coupon.Issue
	for rows.Next() {
		is, err := scanIssueRow(rows)
		if err != nil {
			return nil, fmt.Errorf("find issues of %d coupons: %w", len(ids), err)
		}
		out = append(out, is)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find issues of %d coupons: %w", len(ids), err)
	}
	return out, nil
}

// ListUserIssues returns the user's issued rows with their coupons' names,
// newest coupon first, at most MaxUserIssues.
func (db *DB) ListUserIssues(ctx context.Context, userID int64) ([]coupon.Holding, error) {
	rows, err := db.db.QueryContext(ctx, `SELECT i.coupon_id, c.name, i.issue_rank, i.admitted_at, i.issued_at
		FROM coupon_issues i JOIN coupons c ON c.id = i.coupon_id
		WHERE i.user_id = ? ORDER BY i.coupon_id DESC LIMIT ?`, userID, MaxUserIssues)
	if err != nil {
		return nil, fmt.Errorf("list issues of user %d: %w", userID, err)
	}
	defer rows.Close()
	out := []coupon.Holding{}
	for rows.Next() {
		h := coupon.Holding{Status: coupon.StatusIssued}
		var admitted, issued time.Time
		if err := rows.Scan(&h.CouponID, &h.Name, &h.Rank, &admitted, &issued); err != nil {
			return nil, fmt.Errorf("list issues of user %d: %w", userID, err)
		}
		h.AdmittedAt, h.IssuedAt = &admitted, &issued
		out = append(out, h)
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
