// Package testenv opens the real servers of the test stack (started by
// `make test` / `couponctl stack up --profile test`) for integration tests.
package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/cli"
	couponmysql "github.com/coupondrop/coupon/mysql"
	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

// Addresses of the test stack; overridable by environment variables.
var (
	RedisAddr = env("COUPON_TEST_REDIS_ADDR", "127.0.0.1:16379")
	MySQLDSN  = env("COUPON_TEST_MYSQL_DSN", "root@tcp(127.0.0.1:13306)/coupon_test?parseTime=true&loc=UTC&multiStatements=true")
	// KafkaBrokers lists every broker of the test Kafka
	// (COUPON_TEST_KAFKA_BROKERS is comma-separated).
	KafkaBrokers = cli.List(env("COUPON_TEST_KAFKA_BROKERS", "127.0.0.1:19092"))
)

// RedisCluster says the test Redis is a Redis Cluster (make test with
// COUPON_STACK_REDIS_MODE=cluster sets COUPON_TEST_REDIS_CLUSTER): clients
// must be cluster clients, RedisAddr is a seed node.
var RedisCluster = os.Getenv("COUPON_TEST_REDIS_CLUSTER") != ""

// RedisOptions returns the client options of the test Redis: its address,
// the cluster client when RedisCluster. Callers may adjust them.
func RedisOptions() *redis.UniversalOptions {
	return &redis.UniversalOptions{Addrs: []string{RedisAddr}, IsClusterMode: RedisCluster}
}

// RedisNodeOf returns the address of the test Redis node that holds key:
// RedisAddr, or on a Redis Cluster the primary of the key's slot (for tools
// that talk to one node, like redis-benchmark).
func RedisNodeOf(tb testing.TB, key string) string {
	tb.Helper()
	if !RedisCluster {
		return RedisAddr
	}
	c := MustOpenRedis(tb).(*redis.ClusterClient)
	node, err := c.MasterForKey(context.Background(), key)
	if err != nil {
		tb.Fatalf("the Redis Cluster node of %s: %v", key, err)
	}
	return node.Options().Addr
}

// RedisGatewayEnv is the environment that points a gateway or couponctl
// process at the test Redis.
func RedisGatewayEnv() []string {
	env := []string{"COUPON_REDIS_ADDRS=" + RedisAddr}
	if RedisCluster {
		env = append(env, "COUPON_REDIS_CLUSTER=true")
	}
	return env
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Integration skips tb under -short.
func Integration(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: needs the test stack (skipped with -short)")
	}
}

// Logger returns a logger that writes to the test log only on -v.
func Logger(tb testing.TB) *slog.Logger {
	tb.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// RandomID returns a random hex string, for key prefixes and topic names.
func RandomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomCouponID returns a random coupon ID far above MySQL's AUTO_INCREMENT
// range, for tests that touch Redis only.
func RandomCouponID() int64 {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return 1<<40 + int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3])
}

// MustOpenRedis returns a client of the test Redis (a cluster client when
// RedisCluster), closed at cleanup.
func MustOpenRedis(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	Integration(tb)
	c := redis.NewUniversalClient(RedisOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		tb.Fatalf("test Redis at %s: %v (start the test stack: make up-test)", RedisAddr, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// MustOpenDB returns a pool on the migrated test database, closed at
// cleanup. Tests share the database: create your own coupons and touch only them.
func MustOpenDB(tb testing.TB) *sql.DB {
	tb.Helper()
	Integration(tb)
	cfg, err := mysql.ParseDSN(MySQLDSN)
	if err != nil {
		tb.Fatalf("parse test DSN: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Create and migrate the database on first use.
	if err := couponmysql.Migrate(ctx, MySQLDSN, Logger(tb)); err != nil {
		tb.Fatalf("migrate test MySQL at %s: %v (start the test stack: make up-test)", cfg.Addr, err)
	}
	db, err := sql.Open("mysql", MySQLDSN)
	if err != nil {
		tb.Fatalf("open test MySQL: %v", err)
	}
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// MustOpenPrivateDB creates and migrates a database of its own,
// coupon_test_<random>, on the test MariaDB, dropped at cleanup: for tests
// that truncate, swap or break tables. It returns the pool and its DSN.
func MustOpenPrivateDB(tb testing.TB) (*sql.DB, string) {
	tb.Helper()
	shared := MustOpenDB(tb) // skips under -short, creates the server's first database
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "coupon_test_" + RandomID()
	if _, err := shared.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		tb.Fatalf("create private database: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := shared.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			tb.Errorf("drop private database %s: %v", name, err)
		}
	})
	cfg, err := mysql.ParseDSN(MySQLDSN)
	if err != nil {
		tb.Fatalf("parse test DSN: %v", err)
	}
	cfg.DBName = name
	dsn := cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatalf("open private database: %v", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	tb.Cleanup(func() { _ = db.Close() })
	if err := couponmysql.Migrate(ctx, dsn, Logger(tb)); err != nil {
		tb.Fatalf("migrate private database: %v", err)
	}
	return db, dsn
}

// MustOpenStore returns the store on the migrated test database (see
// MustOpenDB), closed at cleanup.
func MustOpenStore(tb testing.TB) *couponmysql.DB {
	tb.Helper()
	MustOpenDB(tb)
	return MustOpenStoreOn(tb, MySQLDSN)
}

// MustOpenPrivateStore is MustOpenPrivateDB as a store: a database of its
// own, dropped at cleanup, and its DSN.
func MustOpenPrivateStore(tb testing.TB) (*couponmysql.DB, string) {
	tb.Helper()
	_, dsn := MustOpenPrivateDB(tb)
	return MustOpenStoreOn(tb, dsn), dsn
}

// MustOpenStoreOn returns the store on a migrated database, closed at cleanup.
func MustOpenStoreOn(tb testing.TB, dsn string) *couponmysql.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := couponmysql.Open(ctx, couponmysql.Config{DSN: dsn, MaxConns: 32})
	if err != nil {
		tb.Fatalf("open the test store: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// MustCreateTopic creates a fresh topic named test-<random> with the given
// partitions on the test broker, deleted at cleanup, and returns its name.
func MustCreateTopic(tb testing.TB, partitions int) string {
	tb.Helper()
	return MustCreateTopicOn(tb, KafkaBrokers, partitions)
}

// MustCreateTopicOn is MustCreateTopic on another cluster, such as a
// private stack's.
func MustCreateTopicOn(tb testing.TB, brokers []string, partitions int) string {
	tb.Helper()
	Integration(tb)
	topic := "test-" + RandomID()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	res, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
	}}})
	if err != nil {
		tb.Fatalf("Kafka at %s: create topic: %v (start the test stack: make up-test)", brokers, err)
	}
	if err := res.Errors[topic]; err != nil {
		tb.Fatalf("create topic %s: %v", topic, err)
	}
	mustWaitTopicOn(tb, cl, topic, partitions)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	})
	return topic
}

// KafkaBrokerCount is the number of brokers of the test Kafka.
func KafkaBrokerCount(tb testing.TB) int {
	tb.Helper()
	Integration(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(KafkaBrokers...), Timeout: 5 * time.Second}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		tb.Fatalf("test Kafka at %s: metadata: %v", KafkaBrokers, err)
	}
	return len(md.Brokers)
}

// MustWaitTopic waits until every partition of topic has a leader.
func MustWaitTopic(tb testing.TB, topic string, partitions int) {
	tb.Helper()
	mustWaitTopicOn(tb, &kafka.Client{Addr: kafka.TCP(KafkaBrokers...), Timeout: 5 * time.Second}, topic, partitions)
}

func mustWaitTopicOn(tb testing.TB, cl *kafka.Client, topic string, partitions int) {
	tb.Helper()
	Eventually(tb, 30*time.Second, func() error {
		md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return err
		}
		if len(md.Topics) != 1 || md.Topics[0].Error != nil {
			return fmt.Errorf("topic %s not ready", topic)
		}
		n := 0
		for _, p := range md.Topics[0].Partitions {
			if p.Error == nil && p.Leader.Host != "" {
				n++
			}
		}
		if n != partitions {
			return fmt.Errorf("topic %s: %d of %d partitions have a leader", topic, n, partitions)
		}
		// The metadata can name a leader before that broker leads the
		// partition (a produce then gets NOT_LEADER_OR_FOLLOWER, for long
		// on a loaded machine): each leader must answer for its partition.
		req := make([]kafka.OffsetRequest, partitions)
		for i := range req {
			req[i] = kafka.FirstOffsetOf(i)
		}
		offs, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
		if err != nil {
			return fmt.Errorf("topic %s: list offsets: %w", topic, err)
		}
		for _, p := range offs.Topics[topic] {
			if p.Error != nil {
				return fmt.Errorf("topic %s: partition %d: %w", topic, p.Partition, p.Error)
			}
		}
		if len(offs.Topics[topic]) != partitions {
			return fmt.Errorf("topic %s: %d of %d partitions answered", topic, len(offs.Topics[topic]), partitions)
		}
		return nil
	})
}

// Eventually calls cond until it returns nil or the deadline passes, then
// fails tb with the last error. It is the way to wait: never sleep.
func Eventually(tb testing.TB, within time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(within)
	delay := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s: %v", within, err)
		}
		time.Sleep(delay) // polling interval, not synchronisation
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Itoa is strconv.FormatInt(n, 10).
func Itoa(n int64) string { return strconv.FormatInt(n, 10) }

// AssertIdleClosed makes one keep-alive GET of path on a new connection to
// addr, then fails tb unless the server closes the idle connection within
// the given time.
func AssertIdleClosed(tb testing.TB, addr, path string, within time.Duration) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		tb.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.Close {
		tb.Fatalf("GET %s: the server closed at once (Connection: close); want a keep-alive answer", path)
	}
	_ = conn.SetReadDeadline(time.Now().Add(within))
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		tb.Fatalf("%s kept an idle keep-alive connection open for %s", addr, within)
	} else if err == nil {
		tb.Fatalf("%s sent bytes on an idle connection", addr)
	}
}
