package mysql_test

import (
	"context"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

func TestCouponQueries(t *testing.T) {
	db := mustOpenStore(t)
	ctx := context.Background()
	start := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.FixedZone("KST", 9*3600))
	end := start.Add(time.Hour)

	c := &coupon.Coupon{Name: "Spring drop ✿", TotalQuantity: 3, IssueStartsAt: &start, IssueEndsAt: &end}
	if err := db.CreateCoupon(ctx, c); err != nil {
		t.Fatalf("create: %v", err)
	}
	if c.ID < 1 || c.CreatedAt.IsZero() || c.Strategy != coupon.StrategyAsync {
		t.Fatalf("created %+v: want an ID, a creation time and the async default", c)
	}
	got, err := db.FindCoupon(ctx, c.ID)
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	if got.Name != c.Name || got.TotalQuantity != 3 || got.IssuedQuantity != 0 || got.Strategy != coupon.StrategyAsync ||
		!got.IssueStartsAt.Equal(start) || !got.IssueEndsAt.Equal(end) || !got.CreatedAt.Equal(c.CreatedAt) {
		t.Fatalf("found %+v; want %+v", got, c)
	}

	open := &coupon.Coupon{Name: "open", TotalQuantity: 1, Strategy: coupon.StrategyDBLock}
	if err := db.CreateCoupon(ctx, open); err != nil {
		t.Fatalf("create: %v", err)
	}
	if got, err := db.FindCoupon(ctx, open.ID); err != nil || got.IssueStartsAt != nil || got.IssueEndsAt != nil || got.Strategy != coupon.StrategyDBLock {
		t.Fatalf("found %+v, %v; want no window, db-lock", got, err)
	}
	if _, err := db.FindCoupon(ctx, 1<<62); coupon.ErrorCode(err) != coupon.ENOTFOUND {
		t.Fatalf("missing coupon: %v; want %s", err, coupon.ENOTFOUND)
	}

	user := testenv.RandomCouponID()
	if _, err := db.FindIssue(ctx, c.ID, user); coupon.ErrorCode(err) != coupon.ENOTISSUED {
		t.Fatalf("missing issue: %v; want %s", err, coupon.ENOTISSUED)
	}
	if n, err := db.IssuedCount(ctx, c.ID); err != nil || n != 0 {
		t.Fatalf("issued count %d, %v; want 0", n, err)
	}
	if _, err := db.InsertIssues(ctx, append(issues(c.ID, user, 1, 2), issues(open.ID, user, 7, 1)...)); err != nil {
		t.Fatalf("insert issues: %v", err)
	}
	if n, err := db.IssuedCount(ctx, c.ID); err != nil || n != 2 {
		t.Fatalf("issued count %d, %v; want 2", n, err)
	}
	is, err := db.FindIssue(ctx, c.ID, user+1)
	if err != nil || is.Rank != 2 || is.CouponID != c.ID || is.UserID != user+1 || is.IssuedAt.IsZero() || is.Partition != 3 {
		t.Fatalf("found issue %+v, %v", is, err)
	}
	list, err := db.ListUserIssues(ctx, user)
	if err != nil || len(list) != 2 || list[0].CouponID != open.ID || list[0].Rank != 7 || list[1].CouponID != c.ID || list[1].Rank != 1 {
		t.Fatalf("user issues %v, %v; want coupon %d rank 7 then coupon %d rank 1", list, err, open.ID, c.ID)
	}
	if list, err := db.ListUserIssues(ctx, user+100); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("user without issues: %v, %v; want an empty, non-nil list", list, err)
	}
}
