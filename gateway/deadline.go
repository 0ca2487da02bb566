package gateway

import (
	"context"
	"sync"
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

	mu     sync.Mutex
	tick   int64           // the current bucket's deadline, in grains since start
	cur    context.Context // the current bucket: its deadline is start+tick*grain
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
// releases its timer when it passes.
func (d *sharedDeadlines) ctx(values context.Context) context.Context {
	tick := int64((time.Since(d.start) + d.timeout + d.grain - 1) / d.grain)
	d.mu.Lock()
	if d.cur == nil || tick > d.tick {
		// A call that computed a tick just below the current one (it was
		// preempted) takes the current bucket: a grain later at most.
		d.tick = tick
		// The bucket ends at its deadline, which releases its timer; the
		// cancel is kept only for that bucket's lifetime, never called
		// early (requests hold it).
		d.cur, d.cancel = context.WithDeadline(context.Background(), d.start.Add(time.Duration(tick)*d.grain))
	}
	bucket := d.cur
	d.mu.Unlock()
	return deadlineCtx{Context: bucket, values: values}
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
