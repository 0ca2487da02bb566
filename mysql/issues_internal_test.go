package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
)

func TestBuildInsert(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))
	rows := []coupon.Issue{{CouponID: 7, UserID: 9, Rank: 1, AdmittedAt: at, Partition: 2, Offset: 11}}
	b, n := buildInsert(nil, "coupon_issues", rows)
	want := "INSERT INTO coupon_issues (coupon_id,user_id,issue_rank,admitted_at,source_partition,source_offset) VALUES " +
		"(7,9,1,'2025-01-02 02:04:05.000006',2,11) ON DUPLICATE KEY UPDATE coupon_id = coupon_id"
	if n != 1 || string(b) != want {
		t.Fatalf("got %d rows:\n%s\nwant\n%s", n, b, want)
	}

	many := make([]coupon.Issue, maxRowsPerStmt+5)
	for i := range many {
		many[i] = coupon.Issue{CouponID: 1, UserID: int64(i + 1), Rank: int64(i + 1), AdmittedAt: at}
	}
	b, n = buildInsert(nil, "t", many)
	if n != maxRowsPerStmt || strings.Count(string(b), "),(") != maxRowsPerStmt-1 || len(b) > maxStmtBytes {
		t.Fatalf("a statement covers %d rows in %d bytes, want %d rows under %d bytes", n, len(b), maxRowsPerStmt, maxStmtBytes)
	}
}

func TestGroupIssues(t *testing.T) {
	at := time.Now()
	rows := []coupon.Issue{
		{CouponID: 2, UserID: 5, Rank: 3, AdmittedAt: at},
		{CouponID: 1, UserID: 8, Rank: 2, AdmittedAt: at},
		{CouponID: 2, UserID: 4, Rank: 4, AdmittedAt: at},
		{CouponID: 2, UserID: 5, Rank: 1, AdmittedAt: at}, // the same user again, lower rank: kept
		{CouponID: 1, UserID: 3, Rank: 1, AdmittedAt: at},
	}
	groups, dups := groupIssues(rows)
	if dups != 1 || len(groups) != 2 || groups[0].couponID != 1 || groups[1].couponID != 2 {
		t.Fatalf("groups %+v dups %d", groups, dups)
	}
	if g := groups[1].rows; len(g) != 2 || g[0].UserID != 4 || g[1].UserID != 5 || g[1].Rank != 1 {
		t.Fatalf("coupon 2 rows %+v: want users 4, 5 (rank 1) sorted by user", g)
	}
}
