package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/coupondrop/coupon"
)

// Audit is what MySQL holds for one coupon, counted rather than assumed:
// duplicates are looked for with GROUP BY even though the primary key
// forbids them.
type Audit struct {
	Total          int64 // coupons.total_quantity
	IssuedQuantity int64 // coupons.issued_quantity
	Rows           int64 // coupon_issues rows
	DupGroups      int64 // (coupon, user) groups with more than one row
	RepeatedRanks  int64 // issue_rank values used by more than one row
	MinRank        int64 // the lowest and highest issue_rank (0 without rows)
	MaxRank        int64
	FirstIssued    time.Time       // the earliest and latest issued_at (zero without rows)
	LastIssued     time.Time       //
	Users          map[int64]int64 // user -> rows
}

// Audit reads the coupon's Audit; ENOTFOUND when there is no such coupon.
func (db *DB) Audit(ctx context.Context, couponID int64) (Audit, error) {
	a := Audit{Users: map[int64]int64{}}
	c, err := db.FindCoupon(ctx, couponID)
	if err != nil {
		return a, err
	}
	a.Total, a.IssuedQuantity = c.TotalQuantity, c.IssuedQuantity
	var first, last sql.NullTime
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MIN(issue_rank), 0), COALESCE(MAX(issue_rank), 0),
		MIN(issued_at), MAX(issued_at) FROM coupon_issues WHERE coupon_id = ?`, couponID).
		Scan(&a.Rows, &a.MinRank, &a.MaxRank, &first, &last); err != nil {
		return a, fmt.Errorf("count rows of coupon %d: %w", couponID, err)
	}
	a.FirstIssued, a.LastIssued = first.Time, last.Time
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT coupon_id, user_id FROM coupon_issues WHERE coupon_id = ?
		GROUP BY coupon_id, user_id HAVING COUNT(*) > 1) d`, couponID).Scan(&a.DupGroups); err != nil {
		return a, fmt.Errorf("find duplicates of coupon %d: %w", couponID, err)
	}
	if err := db.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT issue_rank FROM coupon_issues WHERE coupon_id = ?
		GROUP BY issue_rank HAVING COUNT(*) > 1) d`, couponID).Scan(&a.RepeatedRanks); err != nil {
		return a, fmt.Errorf("find repeated ranks of coupon %d: %w", couponID, err)
	}
	err = db.scanPairs(ctx, func(u, _ int64) { a.Users[u]++ },
		`SELECT user_id, issue_rank FROM coupon_issues WHERE coupon_id = ?`, couponID)
	if err != nil {
		return a, fmt.Errorf("list users of coupon %d: %w", couponID, err)
	}
	return a, nil
}

// IssuedRanks returns the coupon's issued rows as userId -> rank.
func (db *DB) IssuedRanks(ctx context.Context, couponID int64) (map[int64]int64, error) {
	out := map[int64]int64{}
	err := db.scanPairs(ctx, func(u, r int64) { out[u] = r },
		`SELECT user_id, issue_rank FROM coupon_issues WHERE coupon_id = ?`, couponID)
	if err != nil {
		return nil, fmt.Errorf("issued rows of coupon %d: %w", couponID, err)
	}
	return out, nil
}

// IssuedQuantity returns the coupons' issued_quantity, summed: how many
// rows the writers have committed (they raise it in the transaction that
// inserts the rows). It is one query reading a primary-key row per coupon,
// cheap enough to poll while the sinker writes, whatever the number of
// coupons (bench polls a thousand every 25 ms). A coupon that does not exist
// is an error.
func (db *DB) IssuedQuantity(ctx context.Context, couponIDs ...int64) (int64, error) {
	ids := slices.Clone(couponIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return 0, nil
	}
	q := make([]byte, 0, 96+len(ids)*8)
	q = append(q, "SELECT COUNT(*), COALESCE(SUM(issued_quantity), 0) FROM coupons WHERE id "...)
	if first, last := ids[0], ids[len(ids)-1]; last-first == int64(len(ids)-1) {
		// Consecutive IDs (coupons created one after another): a range
		// scan of the primary key, where MariaDB turns a long IN list into
		// a join costing it ~1.6 ms per call at 1,000 coupons.
		q = append(q, "BETWEEN "...)
		q = strconv.AppendInt(q, first, 10)
		q = append(q, " AND "...)
		q = strconv.AppendInt(q, last, 10)
	} else {
		q = append(q, "IN ("...)
		q = appendIDs(q, ids, func(id int64) int64 { return id })
		q = append(q, ')')
	}
	var found, total int64
	if err := db.db.QueryRowContext(ctx, string(q)).Scan(&found, &total); err != nil {
		return 0, fmt.Errorf("issued quantity of %d coupons: %w", len(ids), err)
	}
	if found != int64(len(ids)) {
		return 0, fmt.Errorf("issued quantity of %d coupons: %d of them do not exist", len(ids), int64(len(ids))-found)
	}
	return total, nil
}

// CouponIDs returns the IDs of every coupon of the strategy, in order.
func (db *DB) CouponIDs(ctx context.Context, strategy coupon.Strategy) ([]int64, error) {
	var ids []int64
	err := db.scanPairs(ctx, func(id, _ int64) { ids = append(ids, id) },
		`SELECT id, 0 FROM coupons WHERE strategy = ? ORDER BY id`, string(strategy))
	if err != nil {
		return nil, fmt.Errorf("list %s coupons: %w", strategy, err)
	}
	return ids, nil
}

// scanPairs runs a query of two integer columns and calls f for each row.
func (db *DB) scanPairs(ctx context.Context, f func(a, b int64), query string, args ...any) error {
	rs, err := db.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		var a, b int64
		if err := rs.Scan(&a, &b); err != nil {
			return err
		}
		f(a, b)
	}
	return rs.Err()
}
