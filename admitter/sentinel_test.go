package admitter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
)

// TestGateOnRedisSentinel runs the gate through the Sentinels (MasterName,
// the Sentinels' addresses): it admits on the primary, and after kill -9 of
// the primary it admits again on the replica the Sentinels promote, which
// holds the admissions its replicas had acknowledged (WAIT) before.
func TestGateOnRedisSentinel(t *testing.T) {
	st := testenv.MustStartPrivateShape(t, testenv.Shape{RedisMode: stack.RedisSentinel}, stack.Redis)
	g, err := New(Config{Addrs: st.SentinelAddrs(), MasterName: stack.SentinelMaster}, testenv.Logger(t))
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
	if n, err := g.client.Do(ctx, "WAIT", 2, 5000).Int(); err != nil || n != 2 {
		t.Fatalf("WAIT 2: %d replicas, %v", n, err)
	}
	if err := st.Kill("redis-1"); err != nil {
		t.Fatal(err)
	}
	user := int64(1)
	var rank int64
	testenv.Eventually(t, 90*time.Second, func() error {
		user++ // a fresh user each try: a failed try may have admitted its user
		rank, err = g.Admit(ctx, id, user, 100)
		if err != nil {
			return fmt.Errorf("admit after the kill: %w", err)
		}
		return nil
	})
	if rank < 2 {
		t.Fatalf("rank %d after the failover, want > 1", rank)
	}
	if r, ok, err := g.Rank(ctx, id, 1); err != nil || !ok || r != 1 {
		t.Fatalf("user 1 after the failover: rank %d, admitted %v, %v", r, ok, err)
	}
	t.Logf("admitted again after the failover as rank %d (user %d)", rank, user)
}
