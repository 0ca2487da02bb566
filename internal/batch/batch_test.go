package batch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
)

type call struct {
	n      int
	result int
}

// TestBatchesGrowWithLoad: calls queued while the only slot is busy go out
// together in queue order, up to Max, and each caller gets its own result.
func TestBatchesGrowWithLoad(t *testing.T) {
	var mu sync.Mutex
	var batches [][]int
	b := New(Config[*call]{Max: 4, Slots: 1, Size: func(c *call) int64 { return int64(c.n) }, MaxSize: 1000,
		Run: func(cs []*call) {
			mu.Lock()
			defer mu.Unlock()
			var ns []int
			for _, c := range cs {
				c.result = c.n * 10
				ns = append(ns, c.n)
			}
			batches = append(batches, ns)
		}})
	defer b.Close()
	release := b.Occupy()
	var wg sync.WaitGroup
	calls := make([]*call, 6)
	for i := range calls {
		calls[i] = &call{n: i + 1}
		wg.Go(func() {
			if err := b.Do(context.Background(), calls[i]); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
		// One at a time, so the queue order is known.
		testenv.Eventually(t, 5*time.Second, func() error {
			if b.Queued() != min(i, 5) && b.Queued() != i+1 {
				return errors.New("not queued yet")
			}
			return nil
		})
	}
	release()
	wg.Wait()
	for _, c := range calls {
		if c.result != c.n*10 {
			t.Errorf("call %d: result %d", c.n, c.result)
		}
	}
	// Calls 2..6 were queued one after the other (call 1 may have raced
	// call 2 to the queue): they run in that order.
	var order []int
	for _, ns := range batches {
		if len(ns) > 4 {
			t.Errorf("batch %v over Max", ns)
		}
		for _, n := range ns {
			if n > 1 {
				order = append(order, n)
			}
		}
	}
	if len(order) != 5 || len(batches) > 3 || !slices.IsSorted(order) {
		t.Errorf("batches %v: want 6 calls in 2 or 3 batches, in queue order", batches)
	}
}

// TestGivenUpWhileQueued: calls whose context ends while they are queued
// (one held by the loop waiting for a slot, one still in the queue) are
// never run and say so; with WaitSent, a call already in a batch waits for
// its outcome when its context ends.
func TestGivenUpWhileQueued(t *testing.T) {
	ran := make(chan int, 4)
	started, hold := make(chan struct{}), make(chan struct{})
	b := New(Config[*call]{Max: 1, Slots: 1, WaitSent: true, Run: func(cs []*call) {
		for _, c := range cs {
			if c.n == 1 {
				close(started)
				<-hold
			}
			ran <- c.n
		}
	}})
	defer b.Close()
	var once sync.Once
	unhold := func() { once.Do(func() { close(hold) }) }
	defer unhold() // before Close, even when the test fails early

	ctx1, cancel1 := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- b.Do(ctx1, &call{n: 1}) }()
	<-started // call 1 runs and holds the only slot
	ctx2, cancel2 := context.WithCancel(context.Background())
	later := make(chan error, 2)
	go func() { later <- b.Do(ctx2, &call{n: 2}) }()
	testenv.Eventually(t, 5*time.Second, func() error {
		if b.Queued() != 0 {
			return errors.New("call 2 not taken by the loop")
		}
		return nil
	})
	go func() { later <- b.Do(ctx2, &call{n: 3}) }()
	testenv.Eventually(t, 5*time.Second, func() error {
		if b.Queued() != 1 {
			return errors.New("call 3 not queued")
		}
		return nil
	})
	cancel2()
	for range 2 {
		if err := <-later; !errors.Is(err, ErrNotSent) || !errors.Is(err, context.Canceled) {
			t.Errorf("queued call cancelled: %v, want ErrNotSent and context.Canceled", err)
		}
	}
	cancel1() // in a batch already: WaitSent waits for it
	unhold()
	if err := <-first; err != nil {
		t.Errorf("call in a batch: %v, want its outcome", err)
	}
	b.Close()
	close(ran)
	for n := range ran {
		if n != 1 {
			t.Errorf("the abandoned call %d ran", n)
		}
	}
	if err := b.Do(context.Background(), &call{n: 4}); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
}

// TestFullQueueHonoursContext: a call that finds the queue full waits for
// room only as long as its context lives, and is then refused without
// being run; the calls queued before it still run.
func TestFullQueueHonoursContext(t *testing.T) {
	var mu sync.Mutex
	var ran []int
	b := New(Config[*call]{Max: 1, Slots: 1, Run: func(cs []*call) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			ran = append(ran, c.n)
		}
	}})
	defer b.Close()
	release := b.Occupy()
	// The loop takes call 1 and waits for the slot; calls 2.. fill the queue.
	var wg sync.WaitGroup
	for n := 1; ; n++ {
		wg.Go(func() {
			if err := b.Do(context.Background(), &call{n: n}); err != nil {
				t.Errorf("call %d: %v", n, err)
			}
		})
		testenv.Eventually(t, 5*time.Second, func() error {
			if b.Queued() != n-1 {
				return errors.New("not queued yet")
			}
			return nil
		})
		if b.Queued() == cap(b.reqs) {
			break
		}
	}
	queued := 1 + cap(b.reqs)
	ctx, cancel := context.WithCancel(context.Background())
	// Live when Do checks it on entry, ended when Do finds the queue full.
	if err := b.Do(&cancelAfterCheck{Context: ctx, cancel: cancel}, &call{n: queued + 1}); !errors.Is(err, ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("call on a full queue, context cancelled: %v, want ErrNotSent and context.Canceled", err)
	}
	release()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(ran) != queued || slices.Contains(ran, queued+1) {
		t.Errorf("ran %v, want the %d calls queued before the refused one", ran, queued)
	}
}

// cancelAfterCheck is a context cancelled by its first Err call: Do's entry
// check passes, and the context has ended by the time Do waits for room.
type cancelAfterCheck struct {
	context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelAfterCheck) Err() error {
	err := c.Context.Err()
	c.once.Do(c.cancel)
	return err
}

// TestGoHandsOutcomeToThen: items queued with Go run in batches with Do's,
// and Then gets each one's outcome exactly once, on the batch's goroutine
// after Run set it; one whose context ended while it was queued is never
// run (ErrNotSent), nor one queued after Close (ErrClosed).
func TestGoHandsOutcomeToThen(t *testing.T) {
	type outcome struct {
		n, result int
		err       error
	}
	outcomes := make(chan outcome, 8)
	var mu sync.Mutex
	var ran []int
	b := New(Config[*call]{Max: 8, Slots: 1,
		Run: func(cs []*call) {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range cs {
				c.result = c.n * 10
				ran = append(ran, c.n)
			}
		},
		Then: func(c *call, err error) { outcomes <- outcome{c.n, c.result, err} }})
	defer b.Close()

	release := b.Occupy()
	gone, cancel := context.WithCancel(context.Background())
	b.Go(context.Background(), &call{n: 1}) // the loop takes it and waits for the slot
	testenv.Eventually(t, 5*time.Second, func() error {
		if b.Queued() != 0 {
			return errors.New("item 1 not taken by the loop")
		}
		return nil
	})
	b.Go(gone, &call{n: 2})
	b.Go(context.Background(), &call{n: 3})
	done := make(chan error, 1)
	go func() { done <- b.Do(context.Background(), &call{n: 4}) }()
	testenv.Eventually(t, 5*time.Second, func() error {
		if b.Queued() != 3 {
			return errors.New("items 2-4 not queued")
		}
		return nil
	})
	cancel() // item 2's context ends while it is queued
	release()
	if err := <-done; err != nil {
		t.Errorf("Do beside Go items: %v", err)
	}
	got := map[int]outcome{}
	for range 3 {
		o := <-outcomes
		if _, twice := got[o.n]; twice {
			t.Errorf("item %d: Then called twice", o.n)
		}
		got[o.n] = o
	}
	for _, n := range []int{1, 3} {
		if o := got[n]; o.err != nil || o.result != n*10 {
			t.Errorf("item %d: Then got result %d, %v; want %d, nil", n, o.result, o.err, n*10)
		}
	}
	if o := got[2]; !errors.Is(o.err, ErrNotSent) || !errors.Is(o.err, context.Canceled) || o.result != 0 {
		t.Errorf("item 2, its context cancelled while queued: result %d, %v; want not run, ErrNotSent and context.Canceled", o.result, o.err)
	}
	b.Close()
	b.Go(context.Background(), &call{n: 5})
	if o := <-outcomes; o.n != 5 || !errors.Is(o.err, ErrClosed) {
		t.Errorf("Go after Close: item %d, %v; want item 5, ErrClosed", o.n, o.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(ran, 2) || slices.Contains(ran, 5) || len(ran) != 3 {
		t.Errorf("ran %v, want items 1, 3 and 4", ran)
	}
	select {
	case o := <-outcomes:
		t.Errorf("extra Then call: %+v", o)
	default:
	}
}
