package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/coupondrop/coupon/mysql"
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

// Collect reads a coupon's DBState (mysql.DB.Audit: it counts, never
// assumes).
func Collect(ctx context.Context, db *mysql.DB, couponID int64) (DBState, error) {
	a, err := db.Audit(ctx, couponID)
	if err != nil {
		return DBState{CouponID: couponID}, fmt.Errorf("collect: %w", err)
	}
	return DBState{CouponID: couponID, Total: a.Total, IssuedQuantity: a.IssuedQuantity, Rows: a.Rows,
		DupGroups: a.DupGroups, RepeatedRanks: a.RepeatedRanks, FirstIssued: a.FirstIssued, LastIssued: a.LastIssued,
		Users: a.Users}, nil
}

// IssuedCount returns the coupons' issued_quantity, summed: how many rows
// the writers have committed (they raise it in the transaction that inserts
// the rows; Verify checks the two agree). The phase polls it every few
// milliseconds while the sinker writes, so it reads one primary-key row per
// coupon: counting the rows themselves (a range scan of up to the supply)
// cost MariaDB a third of a core during a 20k req/s phase.
func IssuedCount(ctx context.Context, db *mysql.DB, couponIDs []int64) (int64, error) {
	return db.IssuedQuantity(ctx, couponIDs...)
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
