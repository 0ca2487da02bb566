package gateway

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
)

// findCounter is a Store whose FindCoupon knows coupon 1 only, counting calls.
type findCounter struct {
	Store
	finds atomic.Int64
}

func (f *findCounter) FindCoupon(_ context.Context, id int64) (*coupon.Coupon, error) {
	f.finds.Add(1)
	if id == 1 {
		return &coupon.Coupon{ID: 1, Name: "one", TotalQuantity: 10}, nil
	}
	return nil, coupon.Errorf(coupon.ENOTFOUND, "Coupon %d does not exist.", id)
}

// TestCacheLoadAfterAnotherCallerLoaded: a caller that missed the cache
// just before another caller's load filled it and left the singleflight
// group reaches load on its own; it must take what the cache now holds, a
// coupon or "no such coupon", not read the store again. (Under load this
// made TestCouponCacheLoadsOnce see two loads of a missing coupon.)
func TestCacheLoadAfterAnotherCallerLoaded(t *testing.T) {
	store := &findCounter{}
	cfg := DefaultConfig()
	cfg.CacheTTL, cfg.NegativeCacheTTL = time.Minute, time.Minute
	cc, err := newCouponCache(store, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx := context.Background()
	for _, id := range []int64{1, 2} {
		before := store.finds.Load()
		_, first := cc.Get(ctx, id) // loads and caches
		_, late := cc.load(ctx, id) // the late caller
		if n := store.finds.Load() - before; n != 1 {
			t.Fatalf("coupon %d: %d store reads, want 1", id, n)
		}
		if coupon.ErrorCode(first) != coupon.ErrorCode(late) {
			t.Fatalf("coupon %d: the late caller got %v, the first %v", id, late, first)
		}
	}
}

// TestCouponCacheAge: with a change feed confirming, an entry is reread
// after CacheMaxAge, not CacheTTL; once the feed stops confirming, after
// CacheTTL again; without a feed, after CacheTTL. The cache's clock is the
// test's, so no time passes for real.
func TestCouponCacheAge(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CacheTTL, cfg.CacheMaxAge = 2*time.Second, time.Minute
	for _, tt := range []struct {
		name    string
		watched bool
		steps   []func(clock *time.Duration, cc *couponCache) // each then Get; wantReads after each
		reads   []int64
	}{
		{"feed confirming", true, []func(*time.Duration, *couponCache){
			func(c *time.Duration, cc *couponCache) { *c = time.Second; cc.confirm() },
			func(c *time.Duration, cc *couponCache) { *c = 30 * time.Second; cc.confirm() }, // past the TTL: kept
			func(c *time.Duration, cc *couponCache) { *c = 59 * time.Second; cc.confirm() },
			func(c *time.Duration, cc *couponCache) { *c = 61 * time.Second; cc.confirm() }, // past the max age
			func(c *time.Duration, cc *couponCache) { *c = 62 * time.Second; cc.invalidate(1) },
		}, []int64{1, 1, 1, 2, 3}},
		{"feed stops confirming", true, []func(*time.Duration, *couponCache){
			func(c *time.Duration, cc *couponCache) { *c = 10 * time.Second; cc.confirm() }, // kept
			func(c *time.Duration, cc *couponCache) { *c = 11 * time.Second },               // confirmed 1s ago: kept
			func(c *time.Duration, cc *couponCache) { *c = 12 * time.Second },               // 2s ago: reread
			func(c *time.Duration, cc *couponCache) { *c = 13 * time.Second },               // young entry
			func(c *time.Duration, cc *couponCache) { *c = 15 * time.Second },               // TTL again
		}, []int64{1, 1, 2, 2, 3}},
		{"no feed", false, []func(*time.Duration, *couponCache){
			func(c *time.Duration, cc *couponCache) { *c = time.Second; cc.confirm() },
			func(c *time.Duration, cc *couponCache) { *c = 3 * time.Second; cc.confirm() },
		}, []int64{1, 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &findCounter{}
			cc, err := newCouponCache(store, cfg, tt.watched)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			var clock time.Duration
			cc.now = func() time.Duration { return clock }
			cc.confirm()
			get := func() {
				t.Helper()
				if _, err := cc.Get(context.Background(), 1); err != nil {
					t.Fatal(err)
				}
			}
			get()
			if n := store.finds.Load(); n != 1 {
				t.Fatalf("first get: %d reads; want 1", n)
			}
			for i, step := range tt.steps {
				step(&clock, cc)
				get()
				if n := store.finds.Load(); n != tt.reads[i] {
					t.Fatalf("step %d (clock %s): %d reads; want %d", i, clock, n, tt.reads[i])
				}
			}
		})
	}
}
