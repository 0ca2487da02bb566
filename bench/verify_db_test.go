package bench

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
)

// mustPrivateDB is testenv.MustOpenPrivateDB with the store on it: the raw
// pool breaks the tables behind the store's back.
func mustPrivateDB(t *testing.T) (*mysql.DB, *sql.DB) {
	t.Helper()
	raw, dsn := testenv.MustOpenPrivateDB(t)
	return testenv.MustOpenStoreOn(t, dsn), raw
}

// A database that over-issued and holds duplicate rows (possible only with
// the CHECK and the primary key dropped) must be reported as such.
func TestCollectReportsOverIssueAndDuplicates(t *testing.T) {
	db, raw := mustPrivateDB(t)
	ctx := context.Background()
	for _, q := range []string{
		"ALTER TABLE coupons DROP CONSTRAINT coupons_issued_within_total",
		"ALTER TABLE coupon_issues DROP PRIMARY KEY",
		"INSERT INTO coupons (id, name, total_quantity, issued_quantity) VALUES (1, 'over', 3, 5), (2, 'clean', 3, 2)",
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	now := time.Now().UTC()
	rows := []struct{ coupon, user, rank int64 }{
		{1, 10, 1}, {1, 11, 2}, {1, 12, 3}, {1, 13, 4}, {1, 13, 4}, // 5 rows for 3: one duplicate user, one repeated rank
		{2, 20, 1}, {2, 21, 2},
	}
	for i, r := range rows {
		if _, err := raw.ExecContext(ctx, `INSERT INTO coupon_issues (coupon_id, user_id, issue_rank, admitted_at, issued_at) VALUES (?, ?, ?, ?, ?)`,
			r.coupon, r.user, r.rank, now, now.Add(time.Duration(i)*time.Millisecond)); err != nil {
			t.Fatalf("insert row %+v: %v", r, err)
		}
	}
	var states []DBState
	for _, id := range []int64{1, 2} {
		st, err := Collect(ctx, db, id)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, st)
	}
	if st := states[0]; st.Rows != 5 || st.DupGroups != 1 || st.RepeatedRanks != 1 || st.Total != 3 || st.IssuedQuantity != 5 || st.Users[13] != 2 {
		t.Fatalf("coupon 1 state %+v", st)
	}
	if !states[0].LastIssued.After(states[0].FirstIssued) {
		t.Fatalf("issued_at span not read: %v .. %v", states[0].FirstIssued, states[0].LastIssued)
	}
	accepted := map[Key]int{{1, 10}: 1, {1, 11}: 1, {1, 12}: 1, {1, 13}: 2, {2, 20}: 1, {2, 21}: 1}
	v := Verify(states, accepted)
	if v.OverIssued != 2 || v.DupRows != 1 || v.AcceptedTwice != 1 || v.Duplicates != 2 || v.RepeatedRanks != 1 || v.OK() {
		t.Fatalf("verdict %+v: want over-issued 2, duplicates 2, repeated ranks 1, not OK", v)
	}
	// IssuedCount reads the counters, not the rows: make them differ.
	if _, err := raw.ExecContext(ctx, "UPDATE coupons SET issued_quantity = 1 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if n, err := IssuedCount(ctx, db, []int64{1, 2}); err != nil || n != 6 {
		t.Fatalf("IssuedCount = %d, %v; want 6 (issued_quantity 5 + 1)", n, err)
	}
	// The clean coupon alone passes.
	if v := Verify(states[1:], map[Key]int{{2, 20}: 1, {2, 21}: 1}); !v.OK() || v.OverIssued != 0 {
		t.Fatalf("clean coupon: %+v", v)
	}
}
