package kafka_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
	kafkago "github.com/segmentio/kafka-go"
)

// TestEnsureTopicIdempotent creates an admitted-style topic twice: the first
// call creates it with 12 partitions and infinite retention, the second
// finds it and changes nothing.
func TestEnsureTopicIdempotent(t *testing.T) {
	testenv.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers := testenv.KafkaBrokers
	spec := kafka.AdmittedTopic("test-admitted-"+testenv.RandomID(), 12, 1)
	t.Cleanup(func() {
		cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
		_, _ = cl.DeleteTopics(context.Background(), &kafkago.DeleteTopicsRequest{Topics: []string{spec.Name}})
	})

	created, err := kafka.Ensure(ctx, brokers, spec)
	if err != nil {
		t.Fatalf("first ensure: %v", err)
	}
	if !created {
		t.Fatal("first ensure: created=false for a new topic")
	}
	created, err = kafka.Ensure(ctx, brokers, spec)
	if err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	if created {
		t.Fatal("second ensure: created=true for an existing topic")
	}
	n, err := kafka.Partitions(ctx, brokers, spec.Name)
	if err != nil || n != 12 {
		t.Fatalf("partitions = %d, %v; want 12", n, err)
	}
	for _, c := range []string{"retention.ms", "retention.bytes"} {
		v, err := kafka.TopicConfig(ctx, brokers, spec.Name, c)
		if err != nil || v != "-1" {
			t.Fatalf("%s = %q, %v; want -1 (keep forever)", c, v, err)
		}
	}
}

// TestEnsureTopicErrors covers invalid arguments and an unreachable broker.
func TestEnsureTopicErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name    string
		brokers []string
		topic   string
		parts   int
		rf      int
		want    string
	}{
		{"no broker", nil, "t", 1, 1, "no broker"},
		{"no name", []string{"127.0.0.1:1"}, "", 1, 1, "need a name"},
		{"zero partitions", []string{"127.0.0.1:1"}, "t", 0, 1, "partitions"},
		{"zero replication", []string{"127.0.0.1:1"}, "t", 1, 0, "replication"},
		{"unreachable", []string{"127.0.0.1:1"}, "t", 1, 1, "create topic t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kafka.EnsureTopic(ctx, tt.brokers, tt.topic, tt.parts, tt.rf, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
