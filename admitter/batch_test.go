package admitter

import (
	"context"
	"errors"
	"testing"

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
	if st := g.Stats(); st.Calls-before.Calls != 1 || st.Users-before.Users != int64(len(reqs)) {
		t.Errorf("%d script calls carrying %d users, want 1 carrying %d", st.Calls-before.Calls, st.Users-before.Users, len(reqs))
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
