package stack_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

// roles maps node name -> role of the stack's running, answering nodes.
func roles(t *testing.T, st *stack.Stack) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, s := range st.Status(context.Background()) {
		if s.Running && s.Answers && s.PID > 0 {
			m[s.Name] = s.Role
		}
	}
	return m
}

// TestKafkaThreeNodes: three combined broker+controller nodes on
// consecutive ports; a topic gets three replicas and min.insync.replicas
// 2, the offsets topic too; with one node killed -9 an acks=all write still
// succeeds, and the node comes back with Start.
func TestKafkaThreeNodes(t *testing.T) {
	st := testenv.MustStartPrivateShape(t, testenv.Shape{KafkaNodes: 3}, stack.Kafka)
	brokers := st.KafkaBrokers()
	cfg := st.Config()
	for i, b := range brokers {
		if want := fmt.Sprintf("127.0.0.1:%d", cfg.KafkaPort+2*i); b != want {
			t.Fatalf("broker %d at %s, want %s", i+1, b, want)
		}
	}
	if r := roles(t, st); len(r) != 3 || r["kafka-2"] != "broker+controller" {
		t.Fatalf("status roles %v, want kafka-1..3 broker+controller", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 20 * time.Second}
	topic := "rf3-" + testenv.RandomID()
	res, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 3, ReplicationFactor: st.ReplicationFactor()}}})
	if err != nil || res.Errors[topic] != nil {
		t.Fatalf("create topic: %v %v", err, res.Errors)
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	write := func(what string) {
		t.Helper()
		testenv.Eventually(t, 90*time.Second, func() error {
			return w.WriteMessages(ctx, kafka.Message{Key: []byte(what), Value: []byte(what)})
		})
	}
	write("before") // the offsets topic is created by the group below
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, GroupID: "g-" + testenv.RandomID(), StartOffset: kafka.FirstOffset})
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("group fetch: %v", err)
	}
	_ = r.CommitMessages(ctx, m)
	_ = r.Close()

	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic, "__consumer_offsets"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			if len(p.Replicas) != 3 {
				t.Fatalf("%s/%d has %d replicas, want 3", tp.Name, p.ID, len(p.Replicas))
			}
		}
	}
	dc, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"}}}})
	if err != nil || len(dc.Resources) != 1 || len(dc.Resources[0].ConfigEntries) != 1 || dc.Resources[0].ConfigEntries[0].ConfigValue != "2" {
		t.Fatalf("min.insync.replicas of %s: %+v %v, want 2", topic, dc, err)
	}

	if err := st.Kill("kafka-2"); err != nil {
		t.Fatal(err)
	}
	if r := roles(t, st); len(r) != 2 {
		t.Fatalf("after kill -9 of kafka-2 the status shows %v", r)
	}
	write("one node down") // two replicas in sync: acks=all still succeeds
	if err := st.Start(ctx, "kafka-2"); err != nil {
		t.Fatalf("restart kafka-2: %v", err)
	}
	if r := roles(t, st); len(r) != 3 {
		t.Fatalf("after the restart the status shows %v", r)
	}
}

// TestRedisSentinelShape: a primary, two replicas and three Sentinels; a
// write reaches both replicas; kill -9 of the primary makes the Sentinels
// promote a replica, and the old primary restarts as a replica.
func TestRedisSentinelShape(t *testing.T) {
	st := testenv.MustStartPrivateShape(t, testenv.Shape{RedisMode: stack.RedisSentinel}, stack.Redis)
	r := roles(t, st)
	if r["redis-1"] != "primary" || !strings.HasPrefix(r["redis-2"], "replica of "+st.RedisAddr()) ||
		!strings.HasPrefix(r["redis-3"], "replica of ") || !strings.HasPrefix(r["sentinel-3"], "sentinel (primary "+st.RedisAddr()) {
		t.Fatalf("status roles %v", r)
	}
	ctx := context.Background()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: stack.SentinelMaster, SentinelAddrs: st.SentinelAddrs()})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, "WAIT", 2, 5000).Int(); err != nil || n != 2 {
		t.Fatalf("WAIT 2: %d replicas acknowledged, %v", n, err)
	}
	if err := st.Kill("redis-1"); err != nil {
		t.Fatal(err)
	}
	var primary string
	testenv.Eventually(t, 60*time.Second, func() error {
		for n, role := range roles(t, st) {
			if role == "primary" && n != "redis-1" {
				primary = n
				return nil
			}
		}
		return fmt.Errorf("no replica promoted yet: %v", roles(t, st))
	})
	t.Logf("the Sentinels promoted %s", primary)
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET through the Sentinels after the failover: %q %v", v, err)
	}
	if err := st.Start(ctx, "redis-1"); err != nil {
		t.Fatalf("restart redis-1: %v", err)
	}
	testenv.Eventually(t, 60*time.Second, func() error {
		if r := roles(t, st)["redis-1"]; !strings.HasPrefix(r, "replica of ") {
			return fmt.Errorf("redis-1 is %q", r)
		}
		return nil
	})
}

// TestRedisClusterShape: three primaries with a replica each, every slot
// served; a second Up changes nothing.
func TestRedisClusterShape(t *testing.T) {
	st := testenv.MustStartPrivateShape(t, testenv.Shape{RedisMode: stack.RedisCluster}, stack.Redis)
	count := map[string]int{}
	for _, role := range roles(t, st) {
		count[strings.Fields(role)[0]]++
	}
	if count["primary"] != 3 || count["replica"] != 3 {
		t.Fatalf("status roles %v, want 3 primaries and 3 replicas", roles(t, st))
	}
	ctx := context.Background()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: st.RedisAddrs()})
	defer c.Close()
	for i := range 100 {
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	before := st.PIDs()
	if err := st.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if after := st.PIDs(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a second Up changed the nodes: %v -> %v", before, after)
	}
}

// TestOtherShapeRefused: a state folder running standalone Redis refuses
// an Up in sentinel mode, and a Down in that mode stops the old server.
func TestOtherShapeRefused(t *testing.T) {
	testenv.Integration(t)
	dir := t.TempDir()
	ps := ports(t)
	ctx := context.Background()
	single := newStack(t, dir, ps, stack.Redis)
	t.Cleanup(func() { _ = single.Down(context.Background()) })
	if err := single.Up(ctx); err != nil {
		t.Fatal(err)
	}
	pid := single.PIDs()[stack.Redis]
	cfg := single.Config()
	cfg.RedisMode, cfg.RedisPort = stack.RedisSentinel, testenv.FreePort(t)
	other, err := stack.New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Up(ctx); err == nil || !strings.Contains(err.Error(), "runs redis of another shape") {
		t.Fatalf("Up in sentinel mode over a running standalone Redis: %v", err)
	}
	if err := other.Down(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if !gone(pid) {
			return fmt.Errorf("standalone redis pid %d still runs", pid)
		}
		return nil
	})
}
