package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

// TestSharedDeadlines: calls within a grain share one context, whose
// deadline is the bound rounded up to the grain; it ends with
// DeadlineExceeded (and contexts derived from it with it), carries the
// caller's values, and the caller's end does not end it.
func TestSharedDeadlines(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	values := context.WithoutCancel(parent)

	long := newSharedDeadlines(time.Minute, time.Hour)
	before := time.Now()
	a, b := long.ctx(values), long.ctx(values)
	if a.Done() != b.Done() {
		t.Fatal("two calls within a grain got two deadlines")
	}
	if bg := long.ctx(context.Background()); bg.Done() != a.Done() || bg.Value(ctxKey{}) != nil {
		t.Fatal("a caller without values did not get the shared deadline alone")
	}
	if dl, ok := a.Deadline(); !ok || dl.Before(before.Add(time.Minute)) || dl.After(time.Now().Add(time.Minute+time.Hour)) {
		t.Fatalf("deadline %v, %v; want from now+1m to now+1m+1h", dl, ok)
	}
	cancelParent()
	if a.Err() != nil || a.Value(ctxKey{}) != "v" {
		t.Fatalf("after the caller's end: err %v, value %v; want nil, v", a.Err(), a.Value(ctxKey{}))
	}

	short := newSharedDeadlines(time.Millisecond, time.Millisecond)
	c := short.ctx(values)
	child, cancel := context.WithCancel(c)
	defer cancel()
	for _, x := range []context.Context{c, child} {
		select {
		case <-x.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the 1ms bound did not end within 5s")
		}
		if !errors.Is(x.Err(), context.DeadlineExceeded) {
			t.Fatalf("err %v; want DeadlineExceeded", x.Err())
		}
	}
	if d := short.ctx(values); d.Done() == c.Done() || d.Err() != nil {
		t.Fatalf("a call after the deadline got the ended one (err %v)", d.Err())
	}
}
