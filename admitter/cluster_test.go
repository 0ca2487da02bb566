package admitter

import (
	"context"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// TestGateOnRedisCluster runs the gate on a real three-master Redis Cluster
// through the same UniversalClient a cluster address list selects: a
// coupon's keys share its {id} hash tag, so each script call, pipeline
// group and state restore stays on one node while coupons spread over all.
func TestGateOnRedisCluster(t *testing.T) {
	addrs := testenv.MustStartRedisCluster(t, 3)
	g, err := New(configWith(func(c *Config) { c.Addrs = addrs }), testenv.Logger(t))
	if err != nil {
		t.Fatalf("gate on the cluster: %v", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	if _, ok := g.client.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want the cluster client", g.client)
	}
	ctx := context.Background()

	// Coupons until every master owns one.
	cc := g.client.(*redis.ClusterClient)
	owners := map[string]bool{}
	var ids []int64
	for len(owners) < len(addrs) && len(ids) < 200 {
		id := testenv.RandomCouponID()
		node, err := cc.MasterForKey(ctx, usersKey(id))
		if err != nil {
			t.Fatal(err)
		}
		if addr := node.Options().Addr; !owners[addr] {
			owners[addr] = true
			ids = append(ids, id)
		}
	}
	if len(owners) < len(addrs) {
		t.Fatalf("coupons reach %d of %d masters", len(owners), len(addrs))
	}
	// A batch makes one script call per slot: slot must be the cluster's.
	for _, id := range ids {
		if s, err := cc.ClusterKeySlot(ctx, usersKey(id)).Result(); err != nil || s != int64(slot(id)) {
			t.Errorf("coupon %d: CLUSTER KEYSLOT %d (%v), slot %d", id, s, err, slot(id))
		}
	}
	for _, id := range ids {
		if err := g.Init(ctx, id, 50); err != nil { // the supply below
			t.Fatal(err)
		}
	}

	// Concurrent admissions of every coupon share batches.
	const supply, users = 50, 120
	supplies := map[int64]int64{}
	for _, id := range ids {
		supplies[id] = supply
	}
	admitConcurrently(t, g, supplies, users)

	// Release, pending marks and rank lookups on one coupon.
	id := ids[0]
	var user, rank int64
	for u := int64(1); u <= users && user == 0; u++ {
		r, ok, err := g.Rank(ctx, id, u)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			user, rank = u, r
		}
	}
	if err := g.MarkPending(ctx, id, user, rank); err != nil {
		t.Fatal(err)
	}
	if released, err := g.Release(ctx, id, user, rank); err != nil || !released {
		t.Fatalf("release: %v, %v; want released", released, err)
	}
	if _, ok, err := g.Rank(ctx, id, user); err != nil || ok {
		t.Fatalf("user %d still admitted after the release (%v)", user, err)
	}
	if next, err := g.Admit(ctx, id, 1000, supply); err != nil || next != supply+1 {
		t.Fatalf("admit after a release: rank %d, %v; want %d (ranks never repeat)", next, err, supply+1)
	}

	// A lost state is refused, then restored atomically on its node.
	g.client.Del(ctx, usersKey(id))
	if _, err := g.Admit(ctx, id, 2000, supply); coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Fatalf("admit on a lost state: %v", err)
	}
	if ok, err := g.Restore(ctx, id, State{Users: map[int64]int64{7: 3, 8: 9}, Seq: 9}, true); err != nil || !ok {
		t.Fatalf("restore: %v %v", ok, err)
	}
	if next, err := g.Admit(ctx, id, 2000, supply); err != nil || next != 10 {
		t.Fatalf("admit after the restore: rank %d, %v; want 10", next, err)
	}
	// The resize script runs on the coupon's node too.
	if _, err := g.Resize(ctx, id, 2, 2); coupon.ErrorCode(err) != coupon.ECONFLICT {
		t.Fatalf("resize below the 3 admitted: %v; want conflict", err)
	}
	if _, err := g.Resize(ctx, id, 3, 2); err != nil {
		t.Fatalf("resize to the admitted: %v", err)
	}
	if _, err := g.Admit(ctx, id, 3000, supply); coupon.ErrorCode(err) != coupon.ESOLDOUT {
		t.Fatalf("admit past the resized total: %v; want sold_out", err)
	}
}
