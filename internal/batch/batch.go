// Package batch runs concurrent calls in batches: each call queues its item
// and waits; a loop takes the items queued whenever one of its slots is
// free (a lone item goes out at once, batches grow with load) and runs the
// items whose callers still wait. A call may also queue its item without
// waiting (Go): its outcome is then handed to Config.Then by the goroutine
// that ran the batch, so one goroutine can pass a result on to the next
// batcher without waking the caller in between. The admission gate and the
// Kafka publisher batch with it.
package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Batcher.
type Config[T any] struct {
	Max   int // items per batch at most (>= 1)
	Slots int // batches running at once (>= 1)
	// Size and MaxSize, when set, also bound a batch: it ends once its
	// items' sizes reach MaxSize.
	Size    func(T) int64
	MaxSize int64
	// Linger, when positive, is how long a batch that is not full waits
	// for more items once a slot is free (one timer per batch).
	Linger time.Duration
	// WaitSent makes Do wait for the outcome of an item already taken into
	// a batch even when its context ends (the gate: a caller must learn an
	// admission that happened); otherwise Do returns the context's error.
	WaitSent bool
	// Run handles one batch: the items whose callers still wait, in queue
	// order. It reports each item's outcome in the item itself; Do returns
	// once Run has returned.
	Run func([]T)
	// Then receives the outcome of each item queued with Go, exactly once:
	// nil once Run has handled it; ErrNotSent wrapping its context's error
	// when that context had ended before a batch took it (it was never
	// run); ErrClosed after Close. It is called on the goroutine that ran
	// the item's batch (Go's caller's, for an item refused at once) and
	// must not block for long: the batch's other items wait for it.
	Then func(v T, err error)
}

// Batcher batches the calls of Do; see the package comment.
type Batcher[T any] struct {
	cfg       Config[T]
	reqs      chan *item[T]
	slots     chan struct{}
	mu        sync.RWMutex // held (read) while sending to reqs; Close takes it to close reqs
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type item[T any] struct {
	v       T
	claimed atomic.Bool // set by whoever decides first: the batch (run) or the caller (abandon)
	done    chan struct{}
	// ctx is a Go item's context (nil for Do's): nobody waits on it, so
	// the batch checks it when it takes the item.
	ctx context.Context
}

// ErrClosed is Do's answer after Close.
var ErrClosed = errors.New("batch: closed")

// ErrNotSent wraps the context's error of a call given up while its item
// was queued: it was never handed to Run.
var ErrNotSent = errors.New("batch: given up before it was sent")

// New starts a batcher's loop; Close stops it.
func New[T any](cfg Config[T]) *Batcher[T] {
	cfg.Max, cfg.Slots = max(cfg.Max, 1), max(cfg.Slots, 1)
	b := &Batcher[T]{cfg: cfg, reqs: make(chan *item[T], 4*cfg.Max), slots: make(chan struct{}, cfg.Slots)}
	b.wg.Add(1)
	go b.loop()
	return b
}

// Do queues v for the next batch and waits until Run handled it (nil). If
// ctx ends while v is queued, v is never run and the error wraps
// ErrNotSent and ctx's error; if it ends while v is in a batch, Do returns
// ctx's error (or, with WaitSent, waits for the batch).
func (b *Batcher[T]) Do(ctx context.Context, v T) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	it := &item[T]{v: v, done: make(chan struct{})}
	if err := b.queue(ctx, it); err != nil {
		return err
	}
	select {
	case <-it.done:
		return nil
	case <-ctx.Done():
		if it.claimed.CompareAndSwap(false, true) { // not taken yet: abandon it
			return fmt.Errorf("%w: %w", ErrNotSent, ctx.Err())
		}
		if b.cfg.WaitSent {
			<-it.done
			return nil
		}
		return ctx.Err()
	}
}

// Go queues v for the next batch like Do but returns at once: v's outcome
// goes to Config.Then (see there). ctx's end is noticed when a batch takes
// v (a v whose ctx has ended by then is not run); while the queue is full,
// Go waits for room or ctx's end.
func (b *Batcher[T]) Go(ctx context.Context, v T) {
	if err := ctx.Err(); err != nil {
		b.cfg.Then(v, fmt.Errorf("%w: %w", ErrNotSent, err))
		return
	}
	if err := b.queue(ctx, &item[T]{v: v, ctx: ctx}); err != nil {
		b.cfg.Then(v, err)
	}
}

// queue puts it in the queue, waiting for room while ctx lasts.
func (b *Batcher[T]) queue(ctx context.Context, it *item[T]) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	select {
	case b.reqs <- it: // room in the queue (the usual case): no select on ctx
		return nil
	default:
	}
	select {
	case b.reqs <- it:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotSent, ctx.Err())
	}
}

func (b *Batcher[T]) loop() {
	defer b.wg.Done()
	for first := range b.reqs {
		b.slots <- struct{}{} // wait for a free slot; items queue meanwhile
		batch := b.drain(first)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer func() { <-b.slots }()
			b.run(batch)
		}()
	}
}

// drain returns first and the items queued right now (or within Linger),
// up to Max items and MaxSize. Items already queued are taken even when
// the linger has just ended.
func (b *Batcher[T]) drain(first *item[T]) []*item[T] {
	batch := make([]*item[T], 1, min(b.cfg.Max, 64))
	batch[0] = first
	var size int64
	full := func(it *item[T]) bool {
		if b.cfg.Size == nil {
			return false
		}
		size += b.cfg.Size(it.v)
		return size >= b.cfg.MaxSize
	}
	if full(first) {
		return batch
	}
	var linger <-chan time.Time
	if b.cfg.Linger > 0 {
		t := time.NewTimer(b.cfg.Linger)
		defer t.Stop()
		linger = t.C
	}
	for len(batch) < b.cfg.Max {
		var it *item[T]
		var ok bool
		select {
		case it, ok = <-b.reqs: // queued already: no select on the linger
		default:
			if linger == nil {
				return batch
			}
			select {
			case it, ok = <-b.reqs:
			case <-linger:
				return batch
			}
		}
		if !ok {
			return batch
		}
		batch = append(batch, it)
		if full(it) {
			return batch
		}
	}
	return batch
}

// run hands Run the items whose callers still wait (or, queued with Go,
// whose context has not ended), then releases them.
func (b *Batcher[T]) run(batch []*item[T]) {
	live := make([]*item[T], 0, len(batch))
	vs := make([]T, 0, len(batch))
	for _, it := range batch {
		if it.ctx != nil {
			if err := it.ctx.Err(); err != nil {
				b.cfg.Then(it.v, fmt.Errorf("%w: %w", ErrNotSent, err))
				continue
			}
		} else if !it.claimed.CompareAndSwap(false, true) { // abandoned by its caller
			continue
		}
		live = append(live, it)
		vs = append(vs, it.v)
	}
	if len(live) == 0 {
		return
	}
	b.cfg.Run(vs)
	for _, it := range live {
		if it.ctx != nil {
			b.cfg.Then(it.v, nil)
		} else {
			close(it.done)
		}
	}
}

// Close stops taking items, runs those queued and waits for every batch.
func (b *Batcher[T]) Close() {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		close(b.reqs)
		b.mu.Unlock()
		b.wg.Wait()
	})
}

// Occupy takes one slot until release is called, as a running batch would
// (tests queue items behind it).
func (b *Batcher[T]) Occupy() (release func()) {
	b.slots <- struct{}{}
	return func() { <-b.slots }
}

// Queued is how many items wait for the loop to take them.
func (b *Batcher[T]) Queued() int { return len(b.reqs) }
