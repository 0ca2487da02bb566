package ops

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestPauseShowsProgress: a wait over a second says what it waits for as
// it starts and when it ends; a shorter one prints nothing.
func TestPauseShowsProgress(t *testing.T) {
	var b bytes.Buffer
	if err := pause(context.Background(), &b, "grace for late publishes", 1100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "grace for late publishes: 1s left\n") || !strings.HasSuffix(out, "grace for late publishes: waited 1.1s\n") {
		t.Fatalf("pause printed %q", out)
	}
	b.Reset()
	if err := pause(context.Background(), &b, "short", 50*time.Millisecond); err != nil || b.Len() != 0 {
		t.Fatalf("a short pause printed %q (%v)", b.String(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pause(ctx, &b, "cancelled", time.Minute); err != context.Canceled {
		t.Fatalf("a cancelled pause returned %v", err)
	}
}
