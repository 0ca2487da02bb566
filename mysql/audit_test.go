package mysql_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/mysql"
)

// TestReads: the reads the operator procedures and the verifiers build on
// (CouponIDs, IssuedRanks, IssuedQuantity, Audit) see what was written.
func TestReads(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()
	a := &coupon.Coupon{Name: "reads async", TotalQuantity: 5}
	b := &coupon.Coupon{Name: "reads db-lock", TotalQuantity: 5, Strategy: coupon.StrategyDBLock}
	for _, c := range []*coupon.Coupon{a, b} {
		if err := db.CreateCoupon(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := db.InsertIssues(ctx, []coupon.Issue{
		{CouponID: a.ID, UserID: 7, Rank: 1, AdmittedAt: at, Partition: -1, Offset: -1},
		{CouponID: a.ID, UserID: 9, Rank: 2, AdmittedAt: at, Partition: -1, Offset: -1},
		{CouponID: b.ID, UserID: 7, Rank: 1, AdmittedAt: at, Partition: -1, Offset: -1},
	}); err != nil {
		t.Fatal(err)
	}
	ids, err := db.CouponIDs(ctx, coupon.StrategyAsync)
	if err != nil || !slices.Contains(ids, a.ID) || slices.Contains(ids, b.ID) || !slices.IsSorted(ids) {
		t.Errorf("async coupons %v (%v): want %d among them in order, not %d", ids, err, a.ID, b.ID)
	}
	if ranks, err := db.IssuedRanks(ctx, a.ID); err != nil || len(ranks) != 2 || ranks[7] != 1 || ranks[9] != 2 {
		t.Errorf("issued ranks %v (%v); want 7:1 9:2", ranks, err)
	}
	if n, err := db.IssuedQuantity(ctx, a.ID, b.ID); err != nil || n != 3 {
		t.Errorf("issued quantity %d (%v); want 3", n, err)
	}
	if n, err := db.IssuedQuantity(ctx, b.ID, a.ID, b.ID); err != nil || n != 3 {
		t.Errorf("issued quantity with a repeated coupon %d (%v); want 3 (each coupon once)", n, err)
	}
	if n, err := db.IssuedQuantity(ctx, 1<<50+1, 1<<50); err == nil { // consecutive: the range query
		t.Errorf("issued quantity of a range of coupons that do not exist: %d, no error", n)
	}
	if n, err := db.IssuedQuantity(ctx, a.ID, 1<<50); err == nil {
		t.Errorf("issued quantity with a coupon that does not exist: %d, no error", n)
	}
	au, err := db.Audit(ctx, a.ID)
	if err != nil || au.Total != 5 || au.IssuedQuantity != 2 || au.Rows != 2 || au.DupGroups != 0 || au.RepeatedRanks != 0 ||
		au.MinRank != 1 || au.MaxRank != 2 || len(au.Users) != 2 || au.FirstIssued.IsZero() {
		t.Errorf("audit %+v (%v)", au, err)
	}
	if _, err := db.Audit(ctx, 1<<50); coupon.ErrorCode(err) != coupon.ENOTFOUND {
		t.Errorf("audit of no coupon: %v; want %s", err, coupon.ENOTFOUND)
	}
}

// TestDropOldIssuesRefusesOtherTables: only a table a replay kept can be
// dropped through the store.
func TestDropOldIssuesRefusesOtherTables(t *testing.T) {
	db := mustOpenStore(t)
	for _, name := range []string{"coupons", "coupon_issues", mysql.OldIssuesPrefix + "x; DROP TABLE coupons", mysql.OldIssuesPrefix + "x`"} {
		if err := db.DropOldIssues(context.Background(), name); err == nil {
			t.Errorf("DropOldIssues(%q) was not refused", name)
		}
	}
	if err := db.DropOldIssues(context.Background(), mysql.OldIssuesPrefix+"never_made"); err != nil {
		t.Errorf("dropping a missing old table: %v", err)
	}
}
