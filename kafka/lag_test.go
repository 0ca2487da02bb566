package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
	kafkago "github.com/segmentio/kafka-go"
)

// TestLag: a coupon's lag is its partition's records past the group's
// committed offset (all of them before any commit); callers within MaxAge
// share one round of broker calls.
func TestLag(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := testenv.KafkaBrokers
	topic := testenv.MustCreateTopic(t, 2)
	group := "test-lag-" + testenv.RandomID()
	cfg := kafka.DefaultConfig()
	cfg.Brokers, cfg.Topic = brokers, topic
	pub, err := kafka.New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	couponID := testenv.RandomCouponID()
	for u := range int64(4) {
		if err := pub.Publish(ctx, coupon.Admission{CouponID: couponID, UserID: u + 1, Rank: u + 1, AdmittedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	want := kafka.PartitionOf(couponID, 2)

	// A fresh stack's first group call may meet a coordinator still
	// loading (a retriable error): wait for the first answer.
	first := kafka.NewLag(brokers, topic, group, 10*time.Millisecond)
	testenv.Eventually(t, 30*time.Second, func() error {
		p, n, err := first.Coupon(ctx, couponID)
		if err != nil || p != want || n != 4 {
			return fmt.Errorf("before any commit: partition %d lag %d, %v; want partition %d lag 4", p, n, err, want)
		}
		return nil
	})
	lag := kafka.NewLag(brokers, topic, group, time.Hour)
	for range 20 {
		if _, n, err := lag.Coupon(ctx, couponID); err != nil || n != 4 {
			t.Fatalf("lag %d, %v; want 4", n, err)
		}
	}
	if r := lag.Rounds(); r != 1 {
		t.Errorf("20 calls within MaxAge ran %d rounds, want 1", r)
	}

	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := cl.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: group, GenerationID: -1,
		Topics: map[string][]kafkago.OffsetCommit{topic: {{Partition: want, Offset: 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("commit: %v", p.Error)
		}
	}
	fresh := kafka.NewLag(brokers, topic, group, 10*time.Millisecond)
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, n, err := fresh.Coupon(ctx, couponID); err != nil || n != 1 {
			return fmt.Errorf("after committing offset 3 of 4: lag %d, %v; want 1", n, err)
		}
		return nil
	})

	missing := kafka.NewLag(brokers, "no-such-topic-"+testenv.RandomID(), group, time.Second)
	if _, _, err := missing.Coupon(ctx, couponID); err == nil {
		t.Error("lag of a topic that does not exist: no error")
	}
}
