package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	coupon "github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/kafka"
	couponmysql "github.com/coupondrop/coupon/mysql"
)

func init() {
	register("migrate", "create the database and apply SQL migrations, create the Kafka topics", runMigrate)
	register("topics", "create the admitted-request and dead-letter Kafka topics", runTopics)
}

// topicFlags are the Kafka settings of migrate and topics (brokers come
// from their servers).
type topicFlags struct {
	brokers        []string
	topic, dlq     string
	partitions, rf int
	skip           bool
}

func (f *topicFlags) bind(fs *cli.FlagSet) {
	f.topic, f.dlq = coupon.DefaultTopic, coupon.DefaultDeadLetterTopic
	fs.TopicVar(&f.topic)
	fs.DLQTopicVar(&f.dlq, "")
	fs.IntVar(&f.partitions, "partitions", "COUPON_TOPIC_PARTITIONS", 12, "partitions of a new admitted-request topic")
	fs.IntVar(&f.rf, "replication-factor", "COUPON_TOPIC_REPLICATION_FACTOR", 0, "replication factor of new topics (0: the cluster's brokers, at most 3)")
}

func (f *topicFlags) ensure(ctx context.Context) error {
	brokers := f.brokers
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rf := f.rf
	if rf == 0 {
		n, err := kafka.BrokerCount(ctx, brokers)
		if err != nil {
			return err
		}
		rf = min(n, 3)
	}
	for _, t := range []kafka.TopicSpec{
		kafka.AdmittedTopic(f.topic, f.partitions, rf),
		kafka.DeadLetterTopic(f.dlq, f.partitions, rf),
	} {
		created, err := kafka.Ensure(ctx, brokers, t)
		if err != nil {
			return err
		}
		n, err := kafka.Partitions(ctx, brokers, t.Name)
		if err != nil {
			return err
		}
		verb := "exists"
		if created {
			verb = "created"
		}
		fmt.Printf("topic %s %s (%d partitions)\n", t.Name, verb, n)
	}
	return nil
}

func runMigrate(ctx context.Context, args []string) error {
	fs := cli.New("migrate")
	var s servers
	var tf topicFlags
	s.bind(fs, true, false) // the DSN's database is created if missing
	tf.bind(fs)
	fs.BoolVar(&tf.skip, "skip-topics", "COUPON_MIGRATE_SKIP_TOPICS", false, "apply SQL migrations only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := s.prepare(ctx, "migrate", &tf); err != nil {
		return err
	}
	if err := migrateDB(ctx, s.resolvedDSN); err != nil {
		return err
	}
	if tf.skip {
		return nil
	}
	return tf.ensure(ctx)
}

func runTopics(ctx context.Context, args []string) error {
	fs := cli.New("topics")
	var s servers
	var tf topicFlags
	s.bind(fs, false, false)
	tf.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := s.prepare(ctx, "topics", &tf); err != nil {
		return err
	}
	return tf.ensure(ctx)
}

// prepare resolves and announces the servers of migrate and topics, which
// change them, and hands the brokers to tf.
func (s *servers) prepare(ctx context.Context, command string, tf *topicFlags) error {
	if err := s.resolve(); err != nil {
		return err
	}
	s.announce(os.Stderr, command, true)
	if err := s.mayChange(ctx, nil); err != nil {
		return err
	}
	tf.brokers = s.resolvedKB
	return nil
}

// migrateDB creates the DSN's database when missing and applies the
// embedded migrations.
func migrateDB(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return couponmysql.Migrate(ctx, dsn, slog.New(slog.NewTextHandler(os.Stdout, nil)))
}
