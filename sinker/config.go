package sinker

import (
	"errors"
	"fmt"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/internal/sidehttp"
	"github.com/coupondrop/coupon/mysql"
	driver "github.com/go-sql-driver/mysql"
)

// Config is the sinker's configuration. Start from DefaultConfig.
type Config struct {
	Brokers     []string      // Kafka bootstrap addresses
	Topic       string        // the admitted-request topic
	DLQTopic    string        // the dead-letter topic
	GroupID     string        // the consumer group every sinker process joins
	MySQL       mysql.Config  // the store; its pool needs a connection per worker
	BatchSize   int           // records per batch (one transaction over one worker's partitions) at most
	Workers     int           // batches settled at once, each on its own partitions
	BatchWait   time.Duration // how long a batch waits for more records after its first
	MetricsAddr string        // /metrics, /healthz, /readyz; empty disables

	// SessionTimeout is the consumer-group session: how long a dead sinker
	// keeps its partitions before the group gives them to the others.
	SessionTimeout time.Duration
	// ShutdownTimeout bounds the finish of the batch in flight after SIGTERM.
	ShutdownTimeout time.Duration
	// MaxBytes is the largest fetch response per partition (kafka-go MaxBytes).
	MaxBytes int
	// MinBytes and MaxWait: the broker answers a fetch once it has MinBytes
	// for the partition or MaxWait has passed. A larger MinBytes means fewer,
	// fuller fetches under load (with 1, the hot partition was fetched after
	// nearly every produce request), at the price of up to MaxWait of
	// delay before a batch starts when traffic is light. Every partition
	// has its own fetch, so an idle or lightly loaded one is answered every
	// MaxWait: 500 ms (the Java consumer's fetch.max.wait.ms) instead of
	// 100 ms cut the broker's and the sinker's CPU per accepted request by
	// about 3-7 and 1-2 µs, and MariaDB's by 1-5 (fewer, larger
	// transactions), on the 2-core reference machine (couponctl bench with
	// --system-env COUPON_FETCH_MAX_WAIT, hot and 1,000 coupons); a burst's
	// last rows reach MySQL up to 0.4 s later.
	MinBytes int
	MaxWait  time.Duration
	// MetricsTimeouts bound the metrics listener's connections (zero
	// fields: sidehttp.Metrics). Set in code only: tests shorten them.
	MetricsTimeouts sidehttp.Timeouts
}

// DefaultConfig is the production configuration against the dev stack.
func DefaultConfig() Config {
	db := mysql.DefaultConfig()
	db.MaxConns = 4
	return Config{
		Brokers:  []string{"127.0.0.1:9092"},
		Topic:    coupon.DefaultTopic,
		DLQTopic: coupon.DefaultDeadLetterTopic,
		GroupID:  coupon.DefaultSinkerGroup,
		MySQL:    db,
		// A batch is one worker's partitions' records (fetch.go); 10,000
		// instead of 5,000 gains only ~5% on the 2-core reference machine
		// (BenchmarkSink).
		BatchSize: 5000,
		// Two workers: two transactions at once gain 7-28% on the 2-core
		// reference machine (BenchmarkSink).
		Workers:         2,
		BatchWait:       100 * time.Millisecond,
		MetricsAddr:     "127.0.0.1:9464",
		SessionTimeout:  10 * time.Second,
		ShutdownTimeout: 15 * time.Second,
		MaxBytes:        8 << 20,
		MinBytes:        64 << 10,
		MaxWait:         500 * time.Millisecond,
	}
}

// Bind binds every field to a flag whose default comes from COUPON_* env,
// else from c's value.
func (c *Config) Bind(fs *cli.FlagSet) {
	fs.KafkaBrokersVar(&c.Brokers)
	fs.TopicVar(&c.Topic)
	fs.DLQTopicVar(&c.DLQTopic, "")
	fs.GroupIDVar(&c.GroupID)
	c.MySQL.Bind(fs)
	fs.IntVar(&c.BatchSize, "batch-size", "COUPON_BATCH_SIZE", c.BatchSize, "records per batch (one transaction over one worker's partitions) at most")
	fs.IntVar(&c.Workers, "workers", "COUPON_SINK_WORKERS", c.Workers, "batches written at once, each worker owning partition % workers")
	fs.DurationVar(&c.BatchWait, "batch-wait", "COUPON_BATCH_WAIT", c.BatchWait, "how long a batch waits for more records after its first")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "COUPON_METRICS_ADDR", c.MetricsAddr, "address of /metrics, /healthz and /readyz (empty: off)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", "COUPON_SESSION_TIMEOUT", c.SessionTimeout, "consumer-group session timeout")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", "COUPON_SHUTDOWN_TIMEOUT", c.ShutdownTimeout, "bound on finishing the batch in flight after SIGTERM")
	fs.IntVar(&c.MaxBytes, "fetch-max-bytes", "COUPON_FETCH_MAX_BYTES", c.MaxBytes, "largest fetch response per partition, bytes")
	fs.IntVar(&c.MinBytes, "fetch-min-bytes", "COUPON_FETCH_MIN_BYTES", c.MinBytes, "bytes a partition's fetch waits for (up to fetch-max-wait) before the broker answers")
	fs.DurationVar(&c.MaxWait, "fetch-max-wait", "COUPON_FETCH_MAX_WAIT", c.MaxWait, "longest a fetch waits for fetch-min-bytes")
}

// Validate reports every problem at once, naming each setting.
func (c Config) Validate() error {
	var errs []error
	add := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	add(len(c.Brokers) == 0, "kafka-brokers (COUPON_KAFKA_BROKERS) is required")
	add(c.Topic == "", "topic (COUPON_TOPIC) is required")
	add(c.DLQTopic == "" || c.DLQTopic == c.Topic, "dlq-topic (COUPON_DLQ_TOPIC) is required and must differ from the topic")
	add(c.GroupID == "", "group-id (COUPON_GROUP_ID) is required")
	add(c.Workers < 1 || c.Workers > 64, "workers (COUPON_SINK_WORKERS) must be 1..64, got %d", c.Workers)
	add(c.MySQL.MaxConns < c.Workers, "mysql-conns (COUPON_MYSQL_CONNS) must be at least workers (%d), got %d", c.Workers, c.MySQL.MaxConns)
	add(c.BatchSize < 1 || c.BatchSize > 100_000, "batch-size (COUPON_BATCH_SIZE) must be 1..100000, got %d", c.BatchSize)
	add(c.BatchWait < 0 || c.BatchWait > time.Minute, "batch-wait (COUPON_BATCH_WAIT) must be 0..1m, got %s", c.BatchWait)
	add(c.SessionTimeout < time.Second, "session-timeout (COUPON_SESSION_TIMEOUT) must be at least 1s, got %s", c.SessionTimeout)
	add(c.ShutdownTimeout <= 0, "shutdown-timeout (COUPON_SHUTDOWN_TIMEOUT) must be positive, got %s", c.ShutdownTimeout)
	add(c.MaxBytes < 1<<16, "fetch-max-bytes (COUPON_FETCH_MAX_BYTES) must be at least 65536, got %d", c.MaxBytes)
	add(c.MinBytes < 1 || c.MinBytes > c.MaxBytes, "fetch-min-bytes (COUPON_FETCH_MIN_BYTES) must be 1..fetch-max-bytes (%d), got %d", c.MaxBytes, c.MinBytes)
	add(c.MaxWait < 10*time.Millisecond || c.MaxWait > 5*time.Second, "fetch-max-wait (COUPON_FETCH_MAX_WAIT) must be 10ms..5s, got %s", c.MaxWait)
	if err := c.MySQL.Validate(); err != nil {
		errs = append(errs, err)
	} else if dsn, _ := driver.ParseDSN(c.MySQL.DSN); dsn.ClientFoundRows {
		// RowsAffected must count inserted rows only, not matched duplicates.
		errs = append(errs, errors.New("mysql-dsn (COUPON_MYSQL_DSN): clientFoundRows=true is not supported by the sinker"))
	}
	return errors.Join(errs...)
}
