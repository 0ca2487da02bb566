package stack_test

import (
	"strings"
	"testing"

	"github.com/coupondrop/coupon/infra/stack"
)

// TestClientsEnv: what the gateway and sinker get for each shape (as `make
// run` starts them): the one Redis, every cluster node, or the Sentinels
// with the master name and one replica's acknowledgement per batch; every
// Kafka node; the profile's database.
func TestClientsEnv(t *testing.T) {
	for _, tc := range []struct {
		mode       string
		kafkaNodes int
		want       []string
	}{
		{stack.RedisStandalone, 1, []string{"COUPON_REDIS_ADDRS=127.0.0.1:16379",
			"COUPON_MYSQL_DSN=root@tcp(127.0.0.1:13306)/coupon_test?parseTime=true&loc=UTC&multiStatements=true",
			"COUPON_KAFKA_BROKERS=127.0.0.1:19092"}},
		{stack.RedisCluster, 1, []string{"COUPON_REDIS_ADDRS=127.0.0.1:16379,127.0.0.1:16380,127.0.0.1:16381,127.0.0.1:16382,127.0.0.1:16383,127.0.0.1:16384",
			"COUPON_MYSQL_DSN=root@tcp(127.0.0.1:13306)/coupon_test?parseTime=true&loc=UTC&multiStatements=true",
			"COUPON_KAFKA_BROKERS=127.0.0.1:19092"}},
		{stack.RedisSentinel, 3, []string{"COUPON_REDIS_ADDRS=127.0.0.1:16382,127.0.0.1:16383,127.0.0.1:16384",
			"COUPON_REDIS_MASTER_NAME=" + stack.SentinelMaster, "COUPON_REDIS_WAIT_REPLICAS=1",
			"COUPON_MYSQL_DSN=root@tcp(127.0.0.1:13306)/coupon_test?parseTime=true&loc=UTC&multiStatements=true",
			"COUPON_KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg, err := stack.Profile("test", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cfg.RedisMode, cfg.KafkaNodes = tc.mode, tc.kafkaNodes
			st, err := stack.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Clients("coupon_test").Env(); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("env:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
