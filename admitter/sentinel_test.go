package admitter

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
)

// TestGateOnRedisSentinel runs the gate through the Sentinels (MasterName,
// the Sentinels' addresses) waiting for one replica per batch
// (WaitReplicas 1). It admits on the primary; with both replicas stopped an
// admission is not acknowledged, so Admit answers an unknown outcome
// (ErrGateUnknown, never a rank) and the admission is released on the
// primary, and a release and a pending mark stand on the primary but say
// they are not durable (ErrGateUnacked); with the replicas back it admits
// and releases again. After kill -9 of the
// primary it admits on the replica the Sentinels promote, which holds every
// admission the gate returned.
func TestGateOnRedisSentinel(t *testing.T) {
	st := testenv.MustStartPrivateShape(t, testenv.Shape{RedisMode: stack.RedisSentinel}, stack.Redis)
	g, err := New(configWith(func(c *Config) {
		c.Addrs, c.MasterName = st.SentinelAddrs(), stack.SentinelMaster
		c.WaitReplicas, c.WaitTimeout = 1, 100*time.Millisecond
	}), testenv.Logger(t))
	if err != nil {
		t.Fatalf("gate through the Sentinels: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	ctx := context.Background()
	id := testenv.RandomCouponID()
	if err := g.Init(ctx, id, 100); err != nil {
		t.Fatal(err)
	}
	if rank, err := g.Admit(ctx, id, 1, 100); err != nil || rank != 1 {
		t.Fatalf("admit on the primary: rank %d, %v", rank, err)
	}

	// A second coupon for the release and the pending mark: users 1 and 2.
	other := testenv.RandomCouponID()
	if err := g.Init(ctx, other, 100); err != nil {
		t.Fatal(err)
	}
	for u := int64(1); u <= 2; u++ {
		if rank, err := g.Admit(ctx, other, u, 100); err != nil || rank != u {
			t.Fatalf("admit user %d to the second coupon: rank %d, %v", u, rank, err)
		}
	}

	// No replica acknowledges: no rank, an unknown outcome, the slot free.
	for _, n := range []string{"redis-2", "redis-3"} {
		if err := st.Stop(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	rank, err := g.Admit(ctx, id, 2, 100)
	if !errors.Is(err, coupon.ErrGateUnknown) || coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Fatalf("admit without replicas: rank %d, %v; want an unknown outcome", rank, err)
	}
	if r, ok, err := g.Rank(ctx, id, 2); err != nil || ok {
		t.Fatalf("user 2 after the unacknowledged admission: rank %d, admitted %v, %v; want released", r, ok, err)
	}

	// A release and a pending mark without replicas: both stand on the
	// primary and say they are not durable; a release that removes nothing
	// writes nothing and is no error.
	released, err := g.Release(ctx, other, 1, 1)
	if !released || !errors.Is(err, coupon.ErrGateUnacked) || coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Fatalf("release without replicas: released %v, %v; want released, unacknowledged", released, err)
	}
	if released, err := g.Release(ctx, other, 1, 1); released || err != nil {
		t.Fatalf("release of a slot already released: released %v, %v; want false, nil", released, err)
	}
	if err := g.MarkPending(ctx, other, 2, 2); !errors.Is(err, coupon.ErrGateUnacked) {
		t.Fatalf("pending mark without replicas: %v; want unacknowledged", err)
	}
	if st, _, err := g.State(ctx, other); err != nil || len(st.Users) != 1 || st.Users[2] != 2 || len(st.Pending) != 1 || st.Pending[2] != 2 {
		t.Fatalf("second coupon on the primary: %+v, %v; want user 2 (rank 2) only, marked pending", st, err)
	}
	if s := g.Stats(); s.UnackedAdmits != 1 || s.UnackedReleases != 1 || s.UnackedPending != 1 {
		t.Fatalf("stats %+v; want one unacknowledged admission, release and pending mark", s)
	}
	for _, n := range []string{"redis-2", "redis-3"} {
		if err := st.Start(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 60*time.Second, func() error {
		// The same user each try: an unacknowledged try is released.
		if rank, err = g.Admit(ctx, id, 2, 100); err != nil {
			return fmt.Errorf("admit with the replicas back: %w", err)
		}
		return nil
	})
	if rank != 3 {
		t.Fatalf("user 2 admitted as rank %d, want 3 (rank 2 went to the released try)", rank)
	}
	if released, err := g.Release(ctx, other, 2, 2); !released || err != nil {
		t.Fatalf("release with the replicas back: released %v, %v; want released, acknowledged", released, err)
	}

	if err := st.Kill("redis-1"); err != nil {
		t.Fatal(err)
	}
	user := int64(2)
	testenv.Eventually(t, 90*time.Second, func() error {
		user++ // a fresh user each try: a try with an unknown outcome may have admitted its user
		rank, err = g.Admit(ctx, id, user, 100)
		if err != nil {
			return fmt.Errorf("admit after the kill: %w", err)
		}
		return nil
	})
	if rank < 4 {
		t.Fatalf("rank %d after the failover, want > 3", rank)
	}
	for u, want := range map[int64]int64{1: 1, 2: 3} {
		if r, ok, err := g.Rank(ctx, id, u); err != nil || !ok || r != want {
			t.Fatalf("user %d after the failover: rank %d, admitted %v, %v; want %d", u, r, ok, err, want)
		}
	}
	t.Logf("admitted again after the failover as rank %d (user %d)", rank, user)
}
