package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
)

// beforePublish runs before each publish of the publisher it wraps (which
// then has no PublishThen: Issue publishes itself, after the admission).
type beforePublish struct {
	coupon.Publisher
	before func()
}

func (p beforePublish) Publish(ctx context.Context, a coupon.Admission) error {
	p.before()
	return p.Publisher.Publish(ctx, a)
}

// TestPublishFailedReleaseNotDurable runs the async issuer on a gate
// through Redis Sentinel that waits for one replica (WaitReplicas 1), and a
// publisher to an address no broker listens on (a certain failure). With
// the replicas up, the release is acknowledged: "retry", the slot free, no
// mark. With both replicas stopped after the admission and before the
// publish, the release stands on the primary only: a failover could bring
// the slot back with no record, so the answer is the unknown outcome
// ("check the status"), never "retry", and the admission is marked pending
// for reconciliation.
func TestPublishFailedReleaseNotDurable(t *testing.T) {
	st := testenv.MustStartPrivateShape(t, testenv.Shape{RedisMode: stack.RedisSentinel}, stack.Redis)
	cfg := admitter.DefaultConfig()
	cfg.Addrs, cfg.MasterName = st.SentinelAddrs(), stack.SentinelMaster
	// A wait long enough for a replica of a loaded machine (the phase with
	// the replicas up must not fall short), below the read timeout (1 s).
	cfg.WaitReplicas, cfg.WaitTimeout = 1, 500*time.Millisecond
	gate, err := admitter.New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gate.Close() })
	bad := kafka.DefaultConfig()
	bad.Brokers, bad.Topic = []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}, "coupon.none"
	ctx := context.Background()
	stopReplicas := false
	pub := beforePublish{handoffPublisher(t, bad), func() {
		if !stopReplicas {
			return
		}
		for _, n := range []string{"redis-2", "redis-3"} {
			if err := st.Stop(ctx, n); err != nil {
				t.Error(err)
			}
		}
	}}
	iss := gateway.NewAsyncIssuer(gate, pub, 10*time.Second, 15*time.Second, testenv.Logger(t))
	c := handoffCoupon(t, gate, 10)

	_, err = iss.Issue(ctx, c, 1, "")
	if coupon.ErrorCode(err) != coupon.EUNAVAILABLE || !strings.Contains(coupon.ErrorMessage(err), "please retry") {
		t.Fatalf("user 1, replicas up: %v; want unavailable, retry", err)
	}
	stopReplicas = true
	_, err = iss.Issue(ctx, c, 2, "")
	if msg := coupon.ErrorMessage(err); coupon.ErrorCode(err) != coupon.EUNAVAILABLE || !strings.Contains(msg, "unknown") ||
		!strings.Contains(msg, fmt.Sprintf("check GET /v1/coupons/%d/issues/2", c.ID)) {
		t.Fatalf("user 2, release not acknowledged: %v; want unavailable, unknown outcome", err)
	}

	s, _, err := gate.State(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Users) != 0 {
		t.Errorf("gate users %v; want none (both released on the primary)", s.Users)
	}
	if len(s.Pending) != 1 || s.Pending[2] != 2 {
		t.Errorf("pending marks %v; want user 2 with rank 2 only", s.Pending)
	}
	if gs := gate.Stats(); gs.UnackedReleases != 1 || gs.UnackedPending != 1 {
		t.Errorf("gate stats %+v; want one unacknowledged release and one pending mark", gs)
	}
}
