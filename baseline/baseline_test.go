package baseline

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/mysql"
)

// mustCreateCoupon creates a coupon of the given strategy and total and
// returns it; the test owns it.
func mustCreateCoupon(tb testing.TB, db *mysql.DB, strategy coupon.Strategy, total int64, starts, ends *time.Time) *coupon.Coupon {
	tb.Helper()
	c := &coupon.Coupon{Name: "baseline test " + testenv.RandomID(), TotalQuantity: total, Strategy: strategy, IssueStartsAt: starts, IssueEndsAt: ends}
	if err := db.CreateCoupon(context.Background(), c); err != nil {
		tb.Fatalf("create coupon: %v", err)
	}
	return c
}

// checkCoupon asserts the persisted state of a coupon: want rows, one per
// user, ranks exactly 1..want, issued_quantity == want.
func checkCoupon(tb testing.TB, db *mysql.DB, couponID int64, want int) {
	tb.Helper()
	a, err := db.Audit(context.Background(), couponID)
	if err != nil {
		tb.Fatalf("audit coupon %d: %v", couponID, err)
	}
	w := int64(want)
	if a.Rows != w || int64(len(a.Users)) != w || a.DupGroups != 0 || a.RepeatedRanks != 0 || a.IssuedQuantity != w ||
		(w > 0 && (a.MinRank != 1 || a.MaxRank != w)) {
		tb.Fatalf("coupon %d: rows=%d users=%d (%d twice) repeated ranks=%d (min %d max %d) issued_quantity=%d; want %d of each, ranks 1..%d",
			couponID, a.Rows, len(a.Users), a.DupGroups, a.RepeatedRanks, a.MinRank, a.MaxRank, a.IssuedQuantity, want, want)
	}
}

// Without any lock at all, the guarded UPDATE alone keeps the guarantees:
// what a lost Redis lease (two holders at once) would come down to.
func TestUnlockedTransactionsAreFenced(t *testing.T) {
	db := testenv.MustOpenStore(t)
	c := mustCreateCoupon(t, db, coupon.StrategyRedisLock, 50, nil, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for u := int64(1); u <= 150; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := runWithRetry(context.Background(), db, coupon.StrategyRedisLock, c.ID, u, false, 0, time.Now)
			mu.Lock()
			codes[coupon.ErrorCode(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("answers without a lock: %v", codes)
	checkCoupon(t, db, c.ID, codes[""])
	if codes[""] > 50 {
		t.Fatalf("%d successes for a total of 50", codes[""])
	}
	for code, n := range codes {
		switch code {
		case "", coupon.ESOLDOUT, coupon.EUNAVAILABLE:
		default:
			t.Errorf("%d answers %q", n, code)
		}
	}
}

func TestRedisLockBusyAnswersUnavailable(t *testing.T) {
	db := testenv.MustOpenStore(t)
	rdb := testenv.MustOpenRedis(t)
	ctx := context.Background()
	c := mustCreateCoupon(t, db, coupon.StrategyRedisLock, 10, nil, nil)
	// Someone else holds the lock.
	if err := rdb.Set(ctx, LockKey(c.ID), "someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), LockKey(c.ID)) })
	cfg := DefaultRedisLockConfig()
	cfg.Wait = 50 * time.Millisecond
	iss, err := NewRedisLock(db, rdb, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Issue(ctx, c, 1, ""); coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Fatalf("busy lock: err = %v, want %s", err, coupon.EUNAVAILABLE)
	}
	checkCoupon(t, db, c.ID, 0)
	// The other holder's lock is intact: compare-and-delete spared it.
	if v, err := rdb.Get(ctx, LockKey(c.ID)).Result(); err != nil || v != "someone-else" {
		t.Fatalf("foreign lock = %q, %v; want it untouched", v, err)
	}
	// Once it is released, the same request succeeds.
	rdb.Del(ctx, LockKey(c.ID))
	if is, err := iss.Issue(ctx, c, 1, ""); err != nil || is.Rank != 1 {
		t.Fatalf("after release: %+v, %v", is, err)
	}
	checkCoupon(t, db, c.ID, 1)
}

func TestIssueOutcomes(t *testing.T) {
	db := testenv.MustOpenStore(t)
	rdb := testenv.MustOpenRedis(t)
	ctx := context.Background()
	rl, err := NewRedisLock(db, rdb, DefaultRedisLockConfig(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	issuers := map[string]coupon.Issuer{"db-lock": NewDBLock(db, DefaultDBLockConfig(), testenv.Logger(t)), "redis-lock": rl}
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for name, iss := range issuers {
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				name         string
				starts, ends *time.Time
				total        int64
				prior        []int64 // users issued before
				user         int64
				want         string
			}{
				{name: "first issue", total: 2, user: 7, want: ""},
				{name: "duplicate", total: 2, prior: []int64{7}, user: 7, want: coupon.EALREADY},
				{name: "duplicate on a sold-out coupon", total: 1, prior: []int64{7}, user: 7, want: coupon.EALREADY},
				{name: "sold out", total: 1, prior: []int64{8}, user: 7, want: coupon.ESOLDOUT},
				{name: "not started", starts: &future, total: 2, user: 7, want: coupon.ENOTSTARTED},
				{name: "ended", starts: &past, ends: &past, total: 2, user: 7, want: coupon.EENDED},
				{name: "inside the window", starts: &past, ends: &future, total: 2, user: 7, want: ""},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c := mustCreateCoupon(t, db, coupon.Strategy(name), tt.total, tt.starts, tt.ends)
					for _, u := range tt.prior {
						if _, err := iss.Issue(ctx, c, u, ""); err != nil {
							t.Fatalf("prior issue to %d: %v", u, err)
						}
					}
					is, err := iss.Issue(ctx, c, tt.user, "req-1")
					if got := coupon.ErrorCode(err); got != tt.want {
						t.Fatalf("err = %v (code %q), want code %q", err, got, tt.want)
					}
					if tt.want == "" && is.Rank != int64(len(tt.prior)+1) {
						t.Fatalf("rank = %d, want %d", is.Rank, len(tt.prior)+1)
					}
					want := len(tt.prior)
					if tt.want == "" {
						want++
					}
					checkCoupon(t, db, c.ID, want)
				})
			}
			t.Run("coupon of another strategy", func(t *testing.T) {
				c := mustCreateCoupon(t, db, coupon.StrategyAsync, 5, nil, nil)
				if _, err := iss.Issue(ctx, c, 1, ""); coupon.ErrorCode(err) != coupon.ECONFLICT {
					t.Fatalf("err = %v, want %s", err, coupon.ECONFLICT)
				}
				checkCoupon(t, db, c.ID, 0)
			})
			t.Run("unknown coupon", func(t *testing.T) {
				_, err := iss.Issue(ctx, &coupon.Coupon{ID: 1 << 50, TotalQuantity: 5}, 1, "")
				if coupon.ErrorCode(err) != coupon.ENOTFOUND {
					t.Fatalf("err = %v, want %s", err, coupon.ENOTFOUND)
				}
			})
		})
	}
}

// TestDBLockTimeout: an issue waiting for a coupon row another transaction
// holds gives up at its own timeout (not MySQL's 50 s lock wait), writing
// nothing.
func TestDBLockTimeout(t *testing.T) {
	db := testenv.MustOpenStore(t)
	c := mustCreateCoupon(t, db, coupon.StrategyDBLock, 5, nil, nil)
	holder, err := testenv.MustOpenDB(t).BeginTx(context.Background(), nil) // raw: holds the row as a slow writer would
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec("SELECT id FROM coupons WHERE id = ? FOR UPDATE", c.ID); err != nil {
		t.Fatal(err)
	}
	iss := NewDBLock(db, DBLockConfig{Timeout: 200 * time.Millisecond}, testenv.Logger(t))
	if is, err := iss.Issue(context.Background(), c, 1, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("issue behind a held row: %+v, %v; want its own deadline exceeded", is, err)
	}
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	checkCoupon(t, db, c.ID, 0)
}
