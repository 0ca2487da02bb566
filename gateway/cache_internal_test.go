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
	cc, err := newCouponCache(store, cfg)
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
