package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
)

// TestPprofListenerTimeouts: the opt-in pprof listener closes a keep-alive
// connection left idle, like the gateway's API listener.
func TestPprofListenerTimeouts(t *testing.T) {
	saved := pprofTimeouts
	pprofTimeouts.Idle = 300 * time.Millisecond
	t.Cleanup(func() { pprofTimeouts = saved })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if err := servePprof(ctx, addr, nil, testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	testenv.AssertIdleClosed(t, addr, "/debug/pprof/cmdline", 5*time.Second)
}
