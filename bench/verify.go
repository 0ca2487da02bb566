package bench

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// DBState is what MySQL holds for one coupon after a run, read by Collect.
type DBState struct {
	CouponID       int64           `json:"couponId"`
	Total          int64           `json:"total"`          // coupons.total_quantity
	IssuedQuantity int64           `json:"issuedQuantity"` // coupons.issued_quantity
	Rows           int64           `json:"rows"`           // coupon_issues rows
	DupGroups      int64           `json:"dupGroups"`      // (coupon, user) groups with more than one row
	RepeatedRanks  int64           `json:"repeatedRanks"`  // issue_rank values used by more than one row
	FirstIssued    time.Time       `json:"firstIssued"`
	LastIssued     time.Time       `json:"lastIssued"`
	Users          map[int64]int64 `json:"-"` // user -> rows
}

// Collect reads a coupon's DBState. It counts, never assumes: duplicates
// are looked for with GROUP BY even though the primary key forbids them.
func Collect(ctx context.Context, db *sql.DB, couponID int64) (DBState, error) {
	st := DBState{CouponID: couponID, Users: map[int64]int64{}}
	if err := db.QueryRowContext(ctx, `SELECT total_quantity, issued_quantity FROM coupons WHERE id = ?`, couponID).
		Scan(&st.Total, &st.IssuedQuantity); err != nil {
		return st, fmt.Errorf("read coupon %d: %w", couponID, err)
	}
	var first, last sql.NullTime
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(issued_at), MAX(issued_at) FROM coupon_issues WHERE coupon_id = ?`, couponID).
		Scan(&st.Rows, &first, &last); err != nil {
		return st, fmt.Errorf("count rows of coupon %d: %w", couponID, err)
	}
	st.FirstIssued, st.LastIssued = first.Time, last.Time
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT coupon_id, user_id FROM coupon_issues WHERE coupon_id = ?
		GROUP BY coupon_id, user_id HAVING COUNT(*) > 1) d`, couponID).Scan(&st.DupGroups); err != nil {
		return st, fmt.Errorf("find duplicates of coupon %d: %w", couponID, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT issue_rank FROM coupon_issues WHERE coupon_id = ?
		GROUP BY issue_rank HAVING COUNT(*) > 1) d`, couponID).Scan(&st.RepeatedRanks); err != nil {
		return st, fmt.Errorf("find repeated ranks of coupon %d: %w", couponID, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT user_id FROM coupon_issues WHERE coupon_id = ?`, couponID)
	if err != nil {
		return st, fmt.Errorf("list users of coupon %d: %w", couponID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var u int64
		if err := rows.Scan(&u); err != nil {
			return st, fmt.Errorf("list users of coupon %d: %w", couponID, err)
		}
		st.Users[u]++
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("list users of coupon %d: %w", couponID, err)
	}
	return st, nil
}

// IssuedCount returns the coupons' issued_quantity, summed: how many rows
// the writers have committed (they raise it in the transaction that inserts
// the rows; Verify checks the two agree). The phase polls it every few
// milliseconds while the sinker writes, so it reads one primary-key row per
// coupon: counting the rows themselves (a range scan of up to the supply)
// cost MariaDB a third of a core during a 20k req/s phase.
func IssuedCount(ctx context.Context, db *sql.DB, couponIDs []int64) (int64, error) {
	var total int64
	for _, id := range couponIDs {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT issued_quantity FROM coupons WHERE id = ?`, id).Scan(&n); err != nil {
			return 0, fmt.Errorf("issued count of coupon %d: %w", id, err)
		}
		total += n
	}
	return total, nil
}

// Verdict is the correctness check of one phase: the database's state set
// against what clients were told.
type Verdict struct {
	Total          int64 `json:"total"`          // supply, summed over the phase's coupons
	Rows           int64 `json:"rows"`           // issued rows
	IssuedQuantity int64 `json:"issuedQuantity"` // coupons.issued_quantity, summed
	Accepted       int64 `json:"accepted"`       // 2xx answers

	// Violations of the guarantees; any non-zero fails the run.
	OverIssued      int64 `json:"overIssued"`      // rows (or issued_quantity) beyond the total, summed per coupon
	Duplicates      int64 `json:"duplicates"`      // DupRows + AcceptedTwice
	DupRows         int64 `json:"dupRows"`         // (coupon, user) pairs with more than one row
	AcceptedTwice   int64 `json:"acceptedTwice"`   // (coupon, user) pairs answered 2xx more than once
	LostAccepted    int64 `json:"lostAccepted"`    // 2xx answers with no row
	RepeatedRanks   int64 `json:"repeatedRanks"`   // ranks used twice within a coupon
	CounterMismatch int64 `json:"counterMismatch"` // coupons whose issued_quantity differs from their rows

	// RowsNotAccepted counts rows of users who got no 2xx: requests whose
	// outcome was unknown to the client (timeout, 503 "check status"). Not
	// a violation, but it makes accepted != rows, so it is shown.
	RowsNotAccepted int64 `json:"rowsNotAccepted"`

	Problems []string `json:"problems,omitempty"`
}

// OK reports that no guarantee was violated.
func (v Verdict) OK() bool { return len(v.Problems) == 0 }

// AcceptedMatchesRows reports accepted == rows.
func (v Verdict) AcceptedMatchesRows() bool { return v.Accepted == v.Rows }

// Verify checks the coupons' DB states against the 2xx answers clients got
// (accepted counts 2xx answers per (coupon, user)). Pure.
func Verify(states []DBState, accepted map[Key]int) Verdict {
	var v Verdict
	known := map[int64]bool{}
	for _, st := range states {
		known[st.CouponID] = true
		v.Total += st.Total
		v.Rows += st.Rows
		v.IssuedQuantity += st.IssuedQuantity
		v.OverIssued += max(0, st.Rows-st.Total, st.IssuedQuantity-st.Total)
		v.DupRows += st.DupGroups
		v.RepeatedRanks += st.RepeatedRanks
		if st.IssuedQuantity != st.Rows {
			v.CounterMismatch++
		}
		for u := range st.Users {
			if accepted[Key{st.CouponID, u}] == 0 {
				v.RowsNotAccepted++
			}
		}
	}
	byCoupon := map[int64]DBState{}
	for _, st := range states {
		byCoupon[st.CouponID] = st
	}
	for k, n := range accepted {
		v.Accepted += int64(n)
		if n > 1 {
			v.AcceptedTwice++
		}
		if !known[k.CouponID] || byCoupon[k.CouponID].Users[k.UserID] == 0 {
			v.LostAccepted++
		}
	}
	v.Duplicates = v.DupRows + v.AcceptedTwice

	add := func(n int64, format string) {
		if n != 0 {
			v.Problems = append(v.Problems, fmt.Sprintf(format, n))
		}
	}
	add(v.OverIssued, "over-issued: %d rows beyond the total")
	add(v.DupRows, "duplicates: %d (coupon, user) pairs hold more than one row")
	add(v.AcceptedTwice, "duplicates: %d users were answered 2xx more than once")
	add(v.LostAccepted, "lost: %d requests answered 2xx have no row")
	add(v.RepeatedRanks, "ranks: %d ranks are used by more than one row")
	add(v.CounterMismatch, "counter: %d coupons' issued_quantity differs from their row count")
	return v
}
