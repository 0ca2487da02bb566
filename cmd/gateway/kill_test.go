//go:build cluster

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/droptest"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/ops"
)

// TestClusterKillEachNodeUnderLoad runs the whole system replicated: a three-node
// Kafka cluster (replication factor 3, min.insync.replicas 2), Redis with a
// primary, two replicas and three Sentinels (the gateways wait for one
// replica per admission batch), two gateway processes and two sinker
// processes in one group, all on the shared MariaDB. Each scenario issues a
// fresh coupon through both gateways until it sells out and kills -9 one
// kind of node when a quarter is accepted: the Kafka broker leading the
// coupon's partition, the Redis primary (the Sentinels fail over), a
// gateway, the sinker writing the coupon's partition (the group
// rebalances), and a gateway and a sinker at once. Then, from MySQL: every
// 202 is its row with its rank, the other rows are unknown outcomes, rows
// within the supply, one per user, ranks distinct; and no user answered
// "retry" holds a slot in the gate. The killed node is started again
// before the next scenario.
//
//	make test-cluster (go test -tags cluster -run TestClusterKillEachNodeUnderLoad ./cmd/gateway)
func TestClusterKillEachNodeUnderLoad(t *testing.T) {
	testenv.Integration(t)
	st := testenv.MustStartPrivateShape(t, testenv.Shape{KafkaNodes: 3, RedisMode: stack.RedisSentinel}, stack.Kafka, stack.Redis)
	logMemory(t, st)
	store := testenv.MustOpenStore(t)
	bins := buildBinaries(t, "gateway", "sinker")
	ctx := context.Background()
	brokers := strings.Join(st.KafkaBrokers(), ",")
	topic, dlq := "kill-"+testenv.RandomID(), "kill-dlq-"+testenv.RandomID()
	for _, tp := range []string{topic, dlq} {
		if _, err := kafka.EnsureTopic(ctx, st.KafkaBrokers(), tp, 6, 3, nil); err != nil {
			t.Fatalf("create topic %s: %v", tp, err)
		}
	}
	gcfg := admitter.DefaultConfig()
	gcfg.Addrs, gcfg.MasterName = st.SentinelAddrs(), stack.SentinelMaster
	gate, err := admitter.New(gcfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gate.Close() })

	const token = "kill-test-admin-token"
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	type node struct {
		proc *binProc
		base string // gateway: its URL; sinker: its metrics URL
	}
	gatewayEnv := []string{
		"COUPON_REDIS_ADDRS=" + strings.Join(st.SentinelAddrs(), ","), "COUPON_REDIS_MASTER_NAME=" + stack.SentinelMaster,
		"COUPON_REDIS_CLUSTER=false", "COUPON_REDIS_WAIT_REPLICAS=1", "COUPON_KAFKA_BROKERS=" + brokers, "COUPON_PUBLISH_TIMEOUT=10s",
	}
	startGW := func(name string) node {
		p, base := startGateway(t, name, bins["gateway"], client, token, topic, gatewayEnv...)
		return node{p, base}
	}
	group := "kill-" + testenv.RandomID()
	newSinker := func(name string) node {
		p, base := startSinker(t, name, bins["sinker"], topic, dlq, group, "COUPON_KAFKA_BROKERS="+brokers,
			"COUPON_SESSION_TIMEOUT=6s", "COUPON_BATCH_WAIT=20ms", "COUPON_FETCH_MIN_BYTES=1", "COUPON_FETCH_MAX_WAIT=50ms")
		return node{p, base}
	}
	gateways := []node{startGW("gateway-a"), startGW("gateway-b")}
	sinkers := []node{newSinker("sinker-a"), newSinker("sinker-b")}

	// busySinker waits until one sinker writes rows of the running
	// scenario (its rows counter passes its value at the start) and
	// returns its index: the owner of the coupon's partition.
	busySinker := func(t *testing.T, before []float64) int {
		t.Helper()
		busy := -1
		testenv.Eventually(t, 60*time.Second, func() error {
			for i, s := range sinkers {
				if n := sinkerRows(s.base); n > before[i] {
					busy = i
					return nil
				}
			}
			return fmt.Errorf("no sinker wrote rows yet")
		})
		return busy
	}
	rowsNow := func() []float64 {
		out := make([]float64, len(sinkers))
		for i, s := range sinkers {
			out[i] = sinkerRows(s.base)
		}
		return out
	}

	scenarios := []struct {
		name string
		// kill kills its node(s) and returns what to do once the load
		// ended to start them again (nil: a stack node, started again by
		// name).
		kill func(t *testing.T, couponID int64, rows []float64) (what string, restart func())
	}{
		{"kafka broker", func(t *testing.T, id int64, _ []float64) (string, func()) {
			victim := droptest.LeaderOf(t, st.KafkaBrokers(), topic, kafka.PartitionOf(id, 6))
			return killNode(t, st, victim) + " leading the coupon's partition", nil
		}},
		{"redis primary", func(t *testing.T, _ int64, _ []float64) (string, func()) {
			return killNode(t, st, redisPrimary(t, st)), nil
		}},
		{"gateway", func(t *testing.T, _ int64, _ []float64) (string, func()) {
			gateways[0].proc.kill(t)
			return gateways[0].proc.name, func() { gateways[0] = startGW("gateway-a2") }
		}},
		{"sinker", func(t *testing.T, _ int64, rows []float64) (string, func()) {
			i := busySinker(t, rows)
			sinkers[i].proc.kill(t)
			name := sinkers[i].proc.name
			return name + " (writing the coupon's partition)", func() { sinkers[i] = newSinker(name + "2") }
		}},
		{"gateway and sinker", func(t *testing.T, _ int64, rows []float64) (string, func()) {
			i := busySinker(t, rows)
			gateways[1].proc.kill(t)
			sinkers[i].proc.kill(t)
			name := sinkers[i].proc.name
			return gateways[1].proc.name + " and " + name, func() {
				gateways[1] = startGW("gateway-b2")
				sinkers[i] = newSinker(name + "2")
			}
		}},
	}
	const supply = 2000
	var coupons []int64
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			id := createCoupon(t, client, gateways[0].base, token, "kill "+sc.name, supply)
			coupons = append(coupons, id)
			rows := rowsNow()
			load := droptest.Start(droptest.Config{
				Client: client, Bases: []string{gateways[0].base, gateways[1].base}, CouponID: id,
				UntilSoldOut: true, GatewaysMayDie: true,
			})
			testenv.Eventually(t, 2*time.Minute, load.AtLeast(droptest.Accepted, supply/4))
			what, restart := sc.kill(t, id, rows)
			if restart == nil {
				node, _, _ := strings.Cut(what, " ")
				restart = func() {
					if err := st.Start(ctx, node); err != nil {
						t.Fatalf("start %s again: %v", node, err)
					}
				}
			}
			atKill := load.Count(droptest.Accepted)
			start := time.Now()
			res := load.Wait(t)
			if !res.SoldOut {
				t.Fatalf("the coupon did not sell out within the load's 3 minutes after killing %s: %s", what, res)
			}
			soldOutAfter := time.Since(start)
			c := droptest.Check(t, store, gate, id, supply, res, 2*time.Minute)
			t.Logf("killed %s at %d accepted; sold out %s later. %s; rows %d = %d accepted + %d of the unknown; %d retry users hold no slot",
				what, atKill, soldOutAfter.Round(time.Millisecond), res, c.Rows, res.Counts[droptest.Accepted], c.FromUnknown, c.RetryNotInGate)
			restart()
		})
	}

	// Reconciliation settles the unknown outcomes: after --fix each
	// coupon's gate holds exactly its rows.
	rs, err := ops.Reconcile(ctx, store, kafka.NewTopic(st.KafkaBrokers(), topic), gate, coupons,
		ops.ReconcileOptions{Group: group, Fix: true, Grace: 2 * time.Second}, testenv.Logger(t))
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	released := 0
	for _, r := range rs {
		if len(r.Mismatches) > 0 {
			t.Errorf("coupon %d: %s", r.CouponID, strings.Join(r.Mismatches, "; "))
		}
		if r.Gate != r.Rows || r.Pending != 0 {
			t.Errorf("coupon %d after reconcile --fix: gate %d, pending %d, rows %d", r.CouponID, r.Gate, r.Pending, r.Rows)
		}
		released += len(r.Released)
	}
	t.Logf("reconcile --fix: %s; released %d unpublished admissions", ops.Verdict(rs), released)
}

// killNode kills -9 a node of the stack and returns its name and role.
func killNode(t *testing.T, st *stack.Stack, name string) string {
	t.Helper()
	role := "?"
	for _, s := range st.Status(context.Background()) {
		if s.Name == name {
			role = s.Role
		}
	}
	if err := st.Kill(name); err != nil {
		t.Fatalf("kill -9 %s: %v", name, err)
	}
	return fmt.Sprintf("%s (%s)", name, role)
}

// sinkerRows reads coupon_sinker_rows_inserted_total from a sinker's
// metrics (0 when it does not answer).
func sinkerRows(base string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "coupon_sinker_rows_inserted_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// redisPrimary returns the node name of the current Redis primary.
func redisPrimary(t *testing.T, st *stack.Stack) string {
	t.Helper()
	var name string
	testenv.Eventually(t, 30*time.Second, func() error {
		for _, s := range st.Status(context.Background()) {
			if s.Service == stack.Redis && s.Role == "primary" {
				name = s.Name
				return nil
			}
		}
		return fmt.Errorf("no Redis node says it is the primary")
	})
	return name
}

// logMemory logs the resident memory of every node of the stack.
func logMemory(t *testing.T, st *stack.Stack) {
	var total int64
	var parts []string
	for _, s := range st.Status(context.Background()) {
		total += s.RSSBytes
		parts = append(parts, fmt.Sprintf("%s %d MB", s.Name, s.RSSBytes>>20))
	}
	t.Logf("stack memory (RSS): %d MB in all: %s", total>>20, strings.Join(parts, ", "))
}
