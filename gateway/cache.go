package gateway

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/dgraph-io/ristretto/v2"
	"golang.org/x/sync/singleflight"
)

// couponCache keeps coupon metadata (total, window, strategy). An entry is
// used for ttl after its load; past that, for up to maxAge while the change
// feed keeps confirming (confirm) that no change was missed, since a change
// drops the entry (invalidate): a coupon is reread every maxAge rather than
// every ttl, yet a gateway whose feed stops confirming (Redis unreachable)
// falls back to ttl within ttl. A miss loads from the store once however
// many requests wait for it; an unknown coupon is remembered as such for a
// moment (negTTL).
type couponCache struct {
	store               Store
	cache               *ristretto.Cache[int64, cacheEntry]
	group               singleflight.Group
	ttl, maxAge, negTTL time.Duration
	loadTimeout         time.Duration
	// gen counts invalidations: a load that began before one does not
	// cache what it read (it may be older than the change).
	gen atomic.Uint64
	// now is the cache's clock (monotonic, from its creation); confirmed is
	// its reading at the feed's last confirmation (0: never).
	now       func() time.Duration
	confirmed atomic.Int64
}

// cacheEntry is a coupon, or nil for "no such coupon", and when it was
// loaded (the cache's clock).
type cacheEntry struct {
	c  *coupon.Coupon
	at time.Duration
}

// newCouponCache returns the cache; watched says a change feed will call
// invalidate and confirm (without one, entries live ttl).
func newCouponCache(store Store, cfg Config, watched bool) (*couponCache, error) {
	rc, err := ristretto.NewCache(&ristretto.Config[int64, cacheEntry]{
		NumCounters: 10 * int64(cfg.CacheMaxCoupons),
		MaxCost:     int64(cfg.CacheMaxCoupons),
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("coupon cache: %w", err)
	}
	maxAge := cfg.CacheTTL
	if watched {
		maxAge = max(cfg.CacheMaxAge, cfg.CacheTTL)
	}
	start := time.Now()
	return &couponCache{store: store, cache: rc, ttl: cfg.CacheTTL, maxAge: maxAge, negTTL: cfg.NegativeCacheTTL,
		loadTimeout: cfg.StoreTimeout, now: func() time.Duration { return time.Since(start) }}, nil
}

// fresh reports whether e may still be used: younger than ttl, or younger
// than maxAge with the feed's last confirmation under ttl ago.
func (cc *couponCache) fresh(e cacheEntry) bool {
	now := cc.now()
	if e.c == nil || now-e.at < cc.ttl { // "no such coupon" lives negTTL
		return true
	}
	c := cc.confirmed.Load()
	return now-e.at < cc.maxAge && c != 0 && now-time.Duration(c) < cc.ttl
}

// confirm records that the change feed has just confirmed that every
// change up to now was delivered (invalidate called for it).
func (cc *couponCache) confirm() {
	cc.confirmed.Store(int64(max(cc.now(), 1)))
}

// Get returns the coupon (shared: callers must not modify it) or an
// ENOTFOUND error. Store failures are not cached.
func (cc *couponCache) Get(ctx context.Context, id int64) (*coupon.Coupon, error) {
	if e, ok := cc.cache.Get(id); ok && cc.fresh(e) {
		return e.found(id)
	}
	return cc.load(ctx, id)
}

// load reads coupon id from the store once for every caller that missed
// the cache at the same time, and caches what it read.
func (cc *couponCache) load(ctx context.Context, id int64) (*coupon.Coupon, error) {
	v, err, _ := cc.group.Do(strconv.FormatInt(id, 10), func() (any, error) {
		// A caller that missed the cache just before an earlier load put
		// its result there and left the group starts a new call: it finds
		// that result here instead of loading again.
		if e, ok := cc.cache.Get(id); ok && cc.fresh(e) {
			return e, nil
		}
		// Detached from the first caller: the others wait on this load too.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cc.loadTimeout)
		defer cancel()
		gen := cc.gen.Load()
		c, err := cc.store.FindCoupon(lctx, id)
		switch {
		case err == nil:
			cc.putIf(c, gen)
		case coupon.ErrorCode(err) == coupon.ENOTFOUND:
			if cc.gen.Load() == gen {
				cc.cache.SetWithTTL(id, cacheEntry{at: cc.now()}, 1, cc.negTTL)
				cc.cache.Wait()
			}
		default:
			return nil, err
		}
		return cacheEntry{c: c}, nil
	})
	if err != nil {
		return nil, joinCause(coupon.Errorf(coupon.EUNAVAILABLE, "Coupon %d could not be loaded; retry later.", id), err)
	}
	return v.(cacheEntry).found(id)
}

// put caches c (a coupon just created or changed here).
func (cc *couponCache) put(c *coupon.Coupon) {
	cc.cache.SetWithTTL(c.ID, cacheEntry{c: c, at: cc.now()}, 1, cc.maxAge)
	cc.cache.Wait()
}

// putIf caches c unless the cache was invalidated since gen.
func (cc *couponCache) putIf(c *coupon.Coupon, gen uint64) {
	if cc.gen.Load() == gen {
		cc.put(c)
	}
}

// invalidate drops coupon id (0: every coupon), and makes loads in flight
// neither cache nor share what they read: the next Get reads MySQL again.
func (cc *couponCache) invalidate(id int64) {
	cc.gen.Add(1)
	if id == 0 {
		cc.cache.Clear()
		return
	}
	cc.group.Forget(strconv.FormatInt(id, 10))
	cc.cache.Del(id)
}

func (e cacheEntry) found(id int64) (*coupon.Coupon, error) {
	if e.c == nil {
		return nil, coupon.Errorf(coupon.ENOTFOUND, "Coupon %d does not exist.", id)
	}
	return e.c, nil
}

func (cc *couponCache) Close() { cc.cache.Close() }
