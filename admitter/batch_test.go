package admitter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/lua"
)

// TestBatchSpanningCoupons sends one batch over four coupons (one sold out
// midway, one whose state is lost, one with a user repeated, one with a
// user already admitted): it takes one script call, and every request gets
// its own coupon's outcome, as if it had come alone in queue order.
func TestBatchSpanningCoupons(t *testing.T) {
	g := mustOpenGate(t, DefaultConfig())
	ctx := context.Background()
	small, lost, repeated, held := newCoupon(t, g), newCoupon(t, g), newCoupon(t, g), newCoupon(t, g)
	if _, err := g.Admit(ctx, held, 7, 10); err != nil {
		t.Fatal(err)
	}
	g.client.Del(ctx, UsersKey(lost))
	type want struct{ code, rank int64 }
	reqs := []struct {
		coupon, user, total int64
		want                want
	}{
		{small, 1, 2, want{lua.AdmitOK, 1}},
		{lost, 1, 10, want{lua.AdmitLost, 0}},
		{repeated, 5, 10, want{lua.AdmitOK, 1}},
		{small, 2, 2, want{lua.AdmitOK, 2}},
		{held, 8, 10, want{lua.AdmitOK, 2}},
		{repeated, 5, 10, want{lua.AdmitAlready, 1}},
		{small, 3, 2, want{lua.AdmitSoldOut, 0}},
		{held, 7, 10, want{lua.AdmitAlready, 1}},
		{lost, 2, 10, want{lua.AdmitLost, 0}},
		{repeated, 6, 10, want{lua.AdmitOK, 2}},
	}
	batch := make([]*admitReq, len(reqs))
	for i, r := range reqs {
		batch[i] = &admitReq{couponID: r.coupon, userID: r.user, total: r.total}
	}
	before := g.Stats()
	g.admitCalls(ctx, g.split(groupByCoupon(batch)))
	for i, r := range batch {
		if r.err != nil || r.code != reqs[i].want.code || r.rank != reqs[i].want.rank {
			t.Errorf("request %d (coupon %d user %d): code %d rank %d err %v; want %+v", i, r.couponID, r.userID, r.code, r.rank, r.err, reqs[i].want)
		}
	}
	// One call for the whole batch; on a Redis Cluster one per slot (a
	// call's keys must share one).
	wantCalls := int64(1)
	if g.cluster {
		slots := map[uint16]bool{}
		for _, r := range reqs {
			slots[slot(r.coupon)] = true
		}
		wantCalls = int64(len(slots))
	}
	if st := g.Stats(); st.Calls-before.Calls != wantCalls || st.Users-before.Users != int64(len(reqs)) {
		t.Errorf("%d script calls carrying %d users, want %d carrying %d", st.Calls-before.Calls, st.Users-before.Users, wantCalls, len(reqs))
	}
	if n, _ := g.client.Exists(ctx, UsersKey(lost)).Result(); n != 0 {
		t.Error("the lost coupon's state was written")
	}
	// The domain errors come from each request's own code.
	if _, err := g.Admit(ctx, lost, 3, 10); !errors.Is(err, coupon.ErrGateLost) {
		t.Errorf("admit to the lost coupon: %v, want the lost state", err)
	}
}

// TestBatchCallErrorStaysInItsCall: with one call per coupon (as in Redis
// Cluster with coupons on several slots), a call that fails (its script
// raises: a wrong-type key) fails its own requests only.
func TestBatchCallErrorStaysInItsCall(t *testing.T) {
	g := mustOpenGate(t, DefaultConfig())
	OneCallPerCoupon(g)
	ctx := context.Background()
	good, broken := newCoupon(t, g), newCoupon(t, g)
	if err := g.client.Set(ctx, UsersKey(broken), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	batch := []*admitReq{{couponID: broken, userID: 1, total: 10}, {couponID: good, userID: 1, total: 10}, {couponID: broken, userID: 2, total: 10}}
	g.admitCalls(ctx, g.split(groupByCoupon(batch)))
	if batch[0].err == nil || batch[2].err == nil {
		t.Errorf("requests of the broken coupon: %v, %v; want the script's error", batch[0].err, batch[2].err)
	}
	if r := batch[1]; r.err != nil || r.code != lua.AdmitOK || r.rank != 1 {
		t.Errorf("request of the good coupon: code %d rank %d err %v; want admitted with rank 1", r.code, r.rank, r.err)
	}
}

// TestAdmitThen: AdmitThen gives the same answers as Admit, each once, for
// callers that do not wait: concurrent admissions get ranks 1..n, a second
// admission of a user gets EALREADY with its rank, one past the total
// sold out, and a call whose context has ended admitted nobody (not an
// unknown outcome).
func TestAdmitThen(t *testing.T) {
	g := mustOpenGate(t, DefaultConfig())
	ctx := context.Background()
	const total = 50
	id := newCoupon(t, g)
	type answer struct {
		user, rank int64
		err        error
	}
	answers := make(chan answer, 2*total)
	admit := func(ctx context.Context, user int64) {
		g.AdmitThen(ctx, id, user, total, func(rank int64, err error) { answers <- answer{user, rank, err} })
	}
	for u := int64(1); u <= total; u++ {
		admit(ctx, u)
	}
	ranks := map[int64]int64{}
	seen := map[int64]bool{}
	for range total {
		a := <-answers
		if a.err != nil || a.rank < 1 || a.rank > total || seen[a.rank] {
			t.Fatalf("user %d: rank %d, %v; want a rank of its own in 1..%d", a.user, a.rank, a.err, total)
		}
		seen[a.rank], ranks[a.user] = true, a.rank
	}
	gone, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second)) // as the gateway's bounds end
	defer cancel()
	admit(gone, total+1)
	admit(ctx, 7)
	admit(ctx, total+2)
	got := map[int64]answer{}
	for range 3 {
		a := <-answers
		got[a.user] = a
	}
	if a := got[total+1]; coupon.ErrorCode(a.err) != coupon.EUNAVAILABLE || errors.Is(a.err, coupon.ErrGateUnknown) {
		t.Errorf("admit with an ended context: %v; want EUNAVAILABLE, not unknown", a.err)
	}
	if a := got[7]; coupon.ErrorCode(a.err) != coupon.EALREADY || a.rank != ranks[7] {
		t.Errorf("second admission of user 7: rank %d, %v; want EALREADY with rank %d", a.rank, a.err, ranks[7])
	}
	if a := got[total+2]; coupon.ErrorCode(a.err) != coupon.ESOLDOUT {
		t.Errorf("admission past the total: %v; want sold out", a.err)
	}
	if n, err := g.Admitted(ctx, id); err != nil || n != total {
		t.Errorf("admitted %d, %v; want %d", n, err, total)
	}
	select {
	case a := <-answers:
		t.Errorf("an extra answer: %+v", a)
	default:
	}
}
