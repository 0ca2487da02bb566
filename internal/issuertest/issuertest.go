// Package issuertest is the one test suite every coupon.Issuer passes, run
// against each strategy (async, db-lock, redis-lock) in the style of
// watermill's universal Pub/Sub tests: the guarantees are checked from
// MySQL, where the rows end up.
package issuertest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/mysql"
)

// Subject is one issuer under test and what the suite needs around it.
type Subject struct {
	// Issuer is the issuer under test.
	Issuer coupon.Issuer
	// Broken is an issuer of the same strategy on the same state whose
	// last dependency fails certainly (async: the broker refuses every
	// publish; the baselines: MySQL is unreachable): its requests fail
	// with an outcome that is not unknown.
	Broken coupon.Issuer
	// Store is the database the rows end up in.
	Store *mysql.DB
	// NewCoupon creates a coupon of the strategy with the given total,
	// ready to issue (async: its gate initialised).
	NewCoupon func(t *testing.T, total int64) *coupon.Coupon
	// Settle waits until every accepted issue is a row (async: the sinker
	// has caught up); nil when Issue commits the row itself.
	Settle func(t *testing.T)
	// Status is what a success of the issuer is: StatusPending (admitted,
	// the row written later) or StatusIssued (the row committed).
	Status coupon.IssueStatus
	// Check, when set, runs the strategy's own checks after the flood (the
	// records in the topic, no lock left behind), given the Issue each
	// accepted user was answered.
	Check func(t *testing.T, c *coupon.Coupon, accepted map[int64]*coupon.Issue)
	// Supply and Users size the flood: Users distinct users, each asking
	// twice at the same moment, for Supply units (defaults 100 and 400).
	Supply, Users int
}

// Run runs the suite against the subject newSubject returns (once; the
// sub-tests use coupons of their own).
func Run(t *testing.T, newSubject func(t *testing.T) Subject) {
	s := newSubject(t)
	if s.Supply == 0 {
		s.Supply = 100
	}
	if s.Users == 0 {
		s.Users = 400
	}
	t.Run("flood", func(t *testing.T) { testFlood(t, s) })
	t.Run("ranks increase in admission order", func(t *testing.T) { testRanksIncrease(t, s) })
	t.Run("failed request does not burn a slot", func(t *testing.T) { testFailedRequest(t, s) })
}

// answer is one Issue call's outcome.
type answer struct {
	user int64
	is   *coupon.Issue
	err  error
}

// testFlood: every user asks twice at the same moment for a coupon of
// Supply units; the sub-tests check the answers and the rows.
func testFlood(t *testing.T, s Subject) {
	c := s.NewCoupon(t, int64(s.Supply))
	answers := make([]answer, 0, 2*s.Users)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for u := int64(1); u <= int64(s.Users); u++ {
		for range 2 {
			wg.Go(func() {
				<-start
				is, err := s.Issuer.Issue(context.Background(), c, u, fmt.Sprintf("flood-%d", u))
				mu.Lock()
				answers = append(answers, answer{u, is, err})
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()

	accepted := map[int64]*coupon.Issue{} // user -> the Issue answered
	codes := map[string]int{}
	twice, odd := 0, 0
	for _, a := range answers {
		code := coupon.ErrorCode(a.err)
		codes[code]++
		if a.err != nil {
			continue
		}
		if _, dup := accepted[a.user]; dup {
			twice++
		}
		if a.is.CouponID != c.ID || a.is.UserID != a.user || a.is.Status() != s.Status {
			if odd++; odd <= 5 {
				t.Errorf("user %d was answered %+v (status %s); want coupon %d, the user, status %s", a.user, a.is, a.is.Status(), c.ID, s.Status)
			}
		}
		accepted[a.user] = a.is
	}
	t.Logf("answers by code: %v", codes)
	settle(t, s)
	audit := mustAudit(t, s.Store, c.ID)
	rows := mustRanks(t, s.Store, c.ID)

	t.Run("supply never exceeded", func(t *testing.T) {
		if codes[""] != s.Supply {
			t.Errorf("%d successes for a supply of %d (answers %v)", codes[""], s.Supply, codes)
		}
		if audit.Rows != int64(s.Supply) || audit.IssuedQuantity != int64(s.Supply) {
			t.Errorf("MySQL holds %d rows, issued_quantity %d; want %d of each", audit.Rows, audit.IssuedQuantity, s.Supply)
		}
		if other := len(answers) - codes[""] - codes[coupon.EALREADY] - codes[coupon.ESOLDOUT]; other != 0 {
			t.Errorf("%d answers neither success, already issued nor sold out: %v", other, codes)
		}
	})
	t.Run("one per user", func(t *testing.T) {
		if twice != 0 {
			t.Errorf("%d users succeeded twice", twice)
		}
		if audit.DupGroups != 0 || int64(len(audit.Users)) != audit.Rows {
			t.Errorf("%d users hold more than one row (%d users for %d rows)", audit.DupGroups, len(audit.Users), audit.Rows)
		}
		for u := range audit.Users {
			if _, ok := accepted[u]; !ok {
				t.Errorf("user %d has a row but was never answered success", u)
			}
		}
	})
	t.Run("ranks distinct, 1 to supply, kept to the row", func(t *testing.T) {
		seen := map[int64]int64{}
		for u, is := range accepted {
			r := is.Rank
			if other, dup := seen[r]; dup || r < 1 || r > int64(s.Supply) {
				t.Errorf("rank %d answered to user %d (and %d): repeated or out of 1..%d", r, u, other, s.Supply)
			}
			seen[r] = u
			if rows[u] != r {
				t.Errorf("user %d: answered rank %d, row rank %d", u, r, rows[u])
			}
		}
		if audit.RepeatedRanks != 0 || audit.Rows > 0 && (audit.MinRank != 1 || audit.MaxRank != int64(s.Supply)) {
			t.Errorf("rows' ranks: %d repeated, %d..%d; want 1..%d once each", audit.RepeatedRanks, audit.MinRank, audit.MaxRank, s.Supply)
		}
	})
	if s.Check != nil {
		t.Run("strategy checks", func(t *testing.T) { s.Check(t, c, accepted) })
	}
}

// testRanksIncrease: users asking one after another get increasing ranks,
// each kept to the row.
func testRanksIncrease(t *testing.T, s Subject) {
	const n = 20
	c := s.NewCoupon(t, n)
	var last int64
	answered := map[int64]int64{}
	for u := int64(1); u <= n; u++ {
		is, err := s.Issuer.Issue(context.Background(), c, u, "")
		if err != nil {
			t.Fatalf("user %d: %v", u, err)
		}
		if is.Rank <= last {
			t.Fatalf("user %d got rank %d after rank %d", u, is.Rank, last)
		}
		last, answered[u] = is.Rank, is.Rank
	}
	settle(t, s)
	rows := mustRanks(t, s.Store, c.ID)
	for u, r := range answered {
		if rows[u] != r {
			t.Errorf("user %d: answered rank %d, row rank %d", u, r, rows[u])
		}
	}
}

// testFailedRequest: a request that certainly failed leaves no row and
// its slot free: the whole supply is still issued afterwards, the failed
// user included.
func testFailedRequest(t *testing.T, s Subject) {
	const supply = 3
	c := s.NewCoupon(t, supply)
	is, err := s.Broken.Issue(context.Background(), c, 1, "")
	if err == nil || coupon.ErrorCode(err) == coupon.EALREADY || coupon.ErrorCode(err) == coupon.ESOLDOUT {
		t.Fatalf("the broken issuer answered %+v, %v; want a failure", is, err)
	}
	for u := int64(1); u <= supply; u++ {
		if _, err := s.Issuer.Issue(context.Background(), c, u, ""); err != nil {
			t.Fatalf("user %d after the failed request: %v (the failure burned a slot?)", u, err)
		}
	}
	if _, err := s.Issuer.Issue(context.Background(), c, supply+1, ""); coupon.ErrorCode(err) != coupon.ESOLDOUT {
		t.Fatalf("user %d: %v; want sold out", supply+1, err)
	}
	settle(t, s)
	if a := mustAudit(t, s.Store, c.ID); a.Rows != supply || a.IssuedQuantity != supply || a.Users[1] != 1 {
		t.Fatalf("MySQL holds %d rows (user 1: %d), issued_quantity %d; want %d, user 1 among them", a.Rows, a.Users[1], a.IssuedQuantity, supply)
	}
}

func settle(t *testing.T, s Subject) {
	t.Helper()
	if s.Settle != nil {
		s.Settle(t)
	}
}

func mustAudit(t *testing.T, db *mysql.DB, couponID int64) mysql.Audit {
	t.Helper()
	a, err := db.Audit(context.Background(), couponID)
	if err != nil {
		t.Fatalf("audit coupon %d: %v", couponID, err)
	}
	return a
}

func mustRanks(t *testing.T, db *mysql.DB, couponID int64) map[int64]int64 {
	t.Helper()
	rows, err := db.IssuedRanks(context.Background(), couponID)
	if err != nil {
		t.Fatalf("issued rows of coupon %d: %v", couponID, err)
	}
	return rows
}
