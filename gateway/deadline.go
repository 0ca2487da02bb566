package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// sharedDeadlines hands out deadline contexts for one bound without a
// timer per request: every call within the same grain gets the same
// deadline, rounded up to the grain, and shares its context (one timer per
// grain, not per request). A context from it ends at least timeout and at
// most timeout+grain after the call.
type sharedDeadlines struct {
	timeout, grain time.Duration
	start          time.Time // the clock's origin (monotonic)

	cur atomic.Pointer[deadlineBucket] // the current bucket (nil before the first call)
	mu  sync.Mutex                     // held to replace cur
}

// deadlineBucket is one shared deadline: start+tick*grain.
type deadlineBucket struct {
	tick int64 // in grains since start
	ctx  context.Context
	// cancel is kept for the bucket's lifetime, never called early
	// (requests hold ctx): the deadline releases the timer.
	cancel context.CancelFunc
}

// deadlineGrain is the rounding of the async issuer's bounds.
const deadlineGrain = time.Millisecond

func newSharedDeadlines(timeout, grain time.Duration) *sharedDeadlines {
	return &sharedDeadlines{timeout: timeout, grain: grain, start: time.Now()}
}

// ctx returns a context carrying values' values that ends (DeadlineExceeded)
// at the bound's deadline. values must not end (context.WithoutCancel): its
// end is not passed on. The context needs no cancel: the shared deadline
// releases its timer when it passes. The current bucket is read without a
// lock (every request reads it; one per grain replaces it), and a caller
// whose values are context.Background's (none) gets the bucket itself.
func (d *sharedDeadlines) ctx(values context.Context) context.Context {
	tick := int64((time.Since(d.start) + d.timeout + d.grain - 1) / d.grain)
	b := d.cur.Load()
	if b == nil || tick > b.tick {
		b = d.advance(tick)
	}
	if values == context.Background() {
		return b.ctx
	}
	return deadlineCtx{Context: b.ctx, values: values}
}

// advance returns the bucket for tick: a new one, unless another call made
// it (or a later one) meanwhile. A call that computed a tick just below
// the current one (it was preempted) takes the current bucket: a grain
// later at most.
func (d *sharedDeadlines) advance(tick int64) *deadlineBucket {
	d.mu.Lock()
	defer d.mu.Unlock()
	if b := d.cur.Load(); b != nil && tick <= b.tick {
		return b
	}
	b := &deadlineBucket{tick: tick}
	b.ctx, b.cancel = context.WithDeadline(context.Background(), d.start.Add(time.Duration(tick)*d.grain))
	d.cur.Store(b)
	return b
}

// deadlineCtx is a shared deadline (Deadline, Done, Err, and the cancel
// machinery, so that contexts derived from it hang on the shared one
// without a goroutine) with a request's values.
type deadlineCtx struct {
	context.Context
	values context.Context
}

func (c deadlineCtx) Value(key any) any {
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}
