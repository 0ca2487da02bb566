package baseline

import (
	"context"
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

// flood has users 1..users each ask twice at the same moment and returns
// the answers by code ("" for success) and the successes per user.
func flood(t *testing.T, iss coupon.Issuer, c *coupon.Coupon, users int) (map[string]int, map[int64]int, []*coupon.Issue) {
	t.Helper()
	var (
		mu     sync.Mutex
		codes  = map[string]int{}
		byUser = map[int64]int{}
		issues []*coupon.Issue
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	base := time.Now().UnixNano() % 1_000_000_000 * 1000 // distinct users per run
	for u := 1; u <= users; u++ {
		for range 2 {
			wg.Add(1)
			go func(uid int64) {
				defer wg.Done()
				<-start
				is, err := iss.Issue(context.Background(), c, uid, "")
				mu.Lock()
				defer mu.Unlock()
				code := coupon.ErrorCode(err)
				codes[code]++
				if err == nil {
					byUser[uid]++
					issues = append(issues, is)
				} else if code == coupon.EINTERNAL {
					t.Errorf("user %d: unexpected error: %v", uid, err)
				}
			}(base + int64(u))
		}
	}
	close(start)
	wg.Wait()
	return codes, byUser, issues
}

func checkFlood(t *testing.T, db *mysql.DB, c *coupon.Coupon, codes map[string]int, byUser map[int64]int, issues []*coupon.Issue, allowed ...string) {
	t.Helper()
	if codes[""] != int(c.TotalQuantity) {
		t.Errorf("successes = %d, want exactly %d (answers: %v)", codes[""], c.TotalQuantity, codes)
	}
	ok := map[string]bool{"": true, coupon.EALREADY: true, coupon.ESOLDOUT: true}
	for _, a := range allowed {
		ok[a] = true
	}
	for code, n := range codes {
		if !ok[code] {
			t.Errorf("%d answers %q, want only success, %v", n, code, []string{coupon.EALREADY, coupon.ESOLDOUT})
		}
	}
	for u, n := range byUser {
		if n > 1 {
			t.Errorf("user %d got %d successes", u, n)
		}
	}
	seen := map[int64]bool{}
	for _, is := range issues {
		if is.Rank < 1 || is.Rank > c.TotalQuantity || seen[is.Rank] {
			t.Errorf("answered rank %d: out of 1..%d or repeated", is.Rank, c.TotalQuantity)
		}
		seen[is.Rank] = true
		if is.Partition != -1 || is.Offset != -1 || is.IssuedAt.IsZero() {
			t.Errorf("answered issue %+v: want partition/offset -1 and IssuedAt set", is)
		}
	}
	checkCoupon(t, db, c.ID, int(c.TotalQuantity))
	// Every answered rank is the persisted one.
	rows, err := db.IssuedRanks(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, is := range issues {
		if rows[is.UserID] != is.Rank {
			t.Errorf("user %d: persisted rank %d, answered %d", is.UserID, rows[is.UserID], is.Rank)
		}
	}
}

func TestDBLockConcurrency(t *testing.T) {
	db := testenv.MustOpenStore(t)
	c := mustCreateCoupon(t, db, coupon.StrategyDBLock, 100, nil, nil)
	iss := NewDBLock(db, DBLockConfig{Retries: 10}, testenv.Logger(t))
	codes, byUser, issues := flood(t, iss, c, 400)
	t.Logf("answers: %v", codes)
	checkFlood(t, db, c, codes, byUser, issues)
}

func TestRedisLockConcurrency(t *testing.T) {
	db := testenv.MustOpenStore(t)
	rdb := testenv.MustOpenRedis(t)
	c := mustCreateCoupon(t, db, coupon.StrategyRedisLock, 100, nil, nil)
	cfg := DefaultRedisLockConfig()
	cfg.Wait = time.Minute // generous: this test is about correctness, not the bound
	iss, err := NewRedisLock(db, rdb, cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	codes, byUser, issues := flood(t, iss, c, 400)
	t.Logf("answers: %v", codes)
	checkFlood(t, db, c, codes, byUser, issues)
	if n, err := rdb.Exists(context.Background(), LockKey(c.ID)).Result(); err != nil || n != 0 {
		t.Errorf("lock key left behind: exists=%d err=%v", n, err)
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
