// Package testsink runs a sinker in the test's process, for integration
// tests of the packages that feed or read what it writes.
package testsink

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/sinker"
)

// Config is the production configuration (sinker.DefaultConfig) on the
// test stack: its Kafka and database, topic and dlq, a fresh group named
// group-<random>, no metrics listener (tests run many sinkers at once), and
// a 6 s session (Kafka's default group.min.session.timeout.ms),
// so that a killed sinker's partitions move on sooner.
func Config(group, topic, dlq string) sinker.Config {
	cfg := sinker.DefaultConfig()
	cfg.Brokers, cfg.Topic, cfg.DLQTopic = testenv.KafkaBrokers, topic, dlq
	cfg.GroupID = group + "-" + testenv.RandomID()
	cfg.MySQL.DSN = testenv.MySQLDSN
	cfg.MetricsAddr = ""
	cfg.SessionTimeout = 6 * time.Second
	return cfg
}

// Start runs a sinker with cfg until the returned stop is called or the
// test ends; stop finishes the batch in flight, commits and leaves the
// group, and reports a failed run or close as a test error.
func Start(tb testing.TB, cfg sinker.Config) (stop func()) {
	tb.Helper()
	s, err := sinker.New(cfg, testenv.Logger(tb))
	if err != nil {
		tb.Fatalf("sinker.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("sinker.Run: %v", err)
			}
			if err := s.Close(); err != nil {
				tb.Errorf("sinker.Close: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// StartGroup runs a sinker from topic into the database at dsn, dead
// letters to dlq, in a fresh consumer group, until the test ends, and
// returns the group.
func StartGroup(tb testing.TB, dsn, topic, dlq string) string {
	tb.Helper()
	cfg := Config("test", topic, dlq)
	cfg.MySQL.DSN = dsn
	Start(tb, cfg)
	return cfg.GroupID
}

// WaitCaughtUp waits until group has committed the topic's end offsets (as
// they are now): every record published before is written.
func WaitCaughtUp(tb testing.TB, topic *couponkafka.Topic, group string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := topic.Partitions(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	first, end, err := topic.Offsets(ctx, n)
	if err != nil {
		tb.Fatal(err)
	}
	if err := topic.WaitCaughtUp(ctx, group, first, end, nil); err != nil {
		tb.Fatal(err)
	}
}
