package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

// publishThen calls PublishThen and waits for its one outcome.
func publishThen(ctx context.Context, p *Publisher, a coupon.Admission) error {
	done := make(chan error, 2)
	p.PublishThen(ctx, a, func(err error) { done <- err })
	err := <-done
	select {
	case again := <-done:
		return fmt.Errorf("then called twice: %v, then %v", err, again)
	default:
	}
	return err
}

// TestPublishThenOutcomes: PublishThen keeps Publish's contract against the
// real broker: nil once the record is acknowledged (and it is in the topic),
// ErrPublishUnknown when the ack is lost (and the record is in the topic),
// ErrPublishFailed after every attempt when no broker takes connections,
// and a certain failure for a record whose context ended before it was
// sent and for a closed publisher.
func TestPublishThenOutcomes(t *testing.T) {
	if n := testenv.KafkaBrokerCount(t); n > 1 {
		t.Skipf("the proxy stands in for the only broker; the test Kafka has %d (COUPON_STACK_KAFKA_NODES=3)", n)
	}
	topic := testenv.MustCreateTopic(t, 1)
	p, px := mustNewProxiedPublisher(t, topic)
	ctx := context.Background()
	adm := func(user int64) coupon.Admission {
		return coupon.Admission{CouponID: 5, UserID: user, Rank: user, AdmittedAt: time.Now()}
	}
	testenv.Eventually(t, 10*time.Second, func() error { return publishThen(ctx, p, adm(1)) })

	px.DropReplies.Store(true)
	err := publishThen(ctx, p, adm(2))
	if !errors.Is(err, coupon.ErrPublishUnknown) || errors.Is(err, coupon.ErrPublishFailed) {
		t.Fatalf("publish whose ack was lost: %v; want ErrPublishUnknown", err)
	}
	users := map[int64]bool{}
	for _, m := range readAll(t, topic, 1, 2) {
		if a, err := coupon.UnmarshalAdmission(m.Value); err == nil {
			users[a.UserID] = true
		}
	}
	if !users[1] || !users[2] {
		t.Errorf("the topic holds users %v; want 1 (acknowledged) and 2 (ack lost)", users)
	}

	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := publishThen(gone, p, adm(3)); !errors.Is(err, coupon.ErrPublishFailed) || !errors.Is(err, context.Canceled) {
		t.Errorf("publish with an ended context: %v; want ErrPublishFailed and context.Canceled", err)
	}

	cfg := testConfig("nowhere")
	cfg.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	refused := mustNewPublisher(t, cfg)
	err = publishThen(ctx, refused, adm(4))
	if !errors.Is(err, coupon.ErrPublishFailed) || errors.Is(err, coupon.ErrPublishUnknown) {
		t.Fatalf("publish to a closed port: %v; want ErrPublishFailed", err)
	}
	if want := fmt.Sprintf("after %d attempt(s)", cfg.MaxAttempts); !strings.Contains(err.Error(), want) {
		t.Errorf("publish to a closed port: %v; want it retried (%q)", err, want)
	}
	_ = refused.Close()
	if err := publishThen(ctx, refused, adm(5)); !errors.Is(err, coupon.ErrPublishFailed) || errors.Is(err, coupon.ErrPublishUnknown) {
		t.Errorf("publish on a closed publisher: %v; want ErrPublishFailed", err)
	}
}
