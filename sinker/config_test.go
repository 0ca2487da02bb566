package sinker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/sinker"
)

func TestConfigValidate(t *testing.T) {
	good := sinker.Config{
		Brokers: "127.0.0.1:9092", Topic: "t", DLQTopic: "t.dlq", GroupID: "g",
		MySQLDSN: "root@tcp(127.0.0.1:3306)/coupon", MySQLConns: 4, BatchSize: 5000, Workers: 1,
		BatchWait: 20 * time.Millisecond, SessionTimeout: 10 * time.Second, ShutdownTimeout: 15 * time.Second, MaxBytes: 8 << 20,
		MinBytes: 64 << 10, MaxWait: 100 * time.Millisecond,
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*sinker.Config)
		want   string
	}{
		{"no brokers", func(c *sinker.Config) { c.Brokers = " , " }, "COUPON_KAFKA_BROKERS"},
		{"dead letters into the topic", func(c *sinker.Config) { c.DLQTopic = c.Topic }, "COUPON_DLQ_TOPIC"},
		{"no group", func(c *sinker.Config) { c.GroupID = "" }, "COUPON_GROUP_ID"},
		{"batch too large", func(c *sinker.Config) { c.BatchSize = 1_000_000 }, "COUPON_BATCH_SIZE"},
		{"negative wait", func(c *sinker.Config) { c.BatchWait = -time.Second }, "COUPON_BATCH_WAIT"},
		{"fetch min over max", func(c *sinker.Config) { c.MinBytes = c.MaxBytes + 1 }, "COUPON_FETCH_MIN_BYTES"},
		{"fetch wait too short", func(c *sinker.Config) { c.MaxWait = time.Millisecond }, "COUPON_FETCH_MAX_WAIT"},
		{"fewer connections than workers", func(c *sinker.Config) { c.Workers, c.MySQLConns = 4, 2 }, "COUPON_MYSQL_CONNS"},
		{"bad DSN", func(c *sinker.Config) { c.MySQLDSN = "tcp(" }, "COUPON_MYSQL_DSN"},
		{"clientFoundRows", func(c *sinker.Config) { c.MySQLDSN += "?clientFoundRows=true" }, "clientFoundRows"},
		{"short session", func(c *sinker.Config) { c.SessionTimeout = time.Millisecond }, "COUPON_SESSION_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
