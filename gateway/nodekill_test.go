package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/internal/testsink"
	"github.com/coupondrop/coupon/kafka"
	kafkago "github.com/segmentio/kafka-go"
)

// TestKafkaNodeKillUnderLoad: on a three-node Kafka cluster (replication
// factor 3, min.insync.replicas 2), kill -9 the broker leading the hot
// coupon's partition while issue requests flow through the gateway and a
// sinker writes them: every 202 becomes exactly one row, the rows never
// pass the supply, and no user has two.
func TestKafkaNodeKillUnderLoad(t *testing.T) {
	st := testenv.MustStartPrivateShape(t, testenv.Shape{KafkaNodes: 3}, stack.Kafka)
	brokers := st.KafkaBrokers()
	ctx := context.Background()
	topic, dlq := "nodekill-"+testenv.RandomID(), "nodekill-dlq-"+testenv.RandomID()
	for _, tp := range []string{topic, dlq} {
		if _, err := kafka.EnsureTopic(ctx, st.KafkaBrokers(), tp, 3, 3, nil); err != nil {
			t.Fatalf("create topic %s: %v", tp, err)
		}
	}
	h := mustStartGateway(t, harnessOpts{brokers: brokers, topic: topic})
	scfg := testsink.Config("nodekill", topic, dlq)
	scfg.Brokers = brokers // the private cluster's
	testsink.Start(t, scfg)
	const supply = 6000
	id := h.createCoupon(map[string]any{"name": "nodekill", "totalQuantity": supply})

	var (
		mu       sync.Mutex
		accepted = map[int64]int64{} // user -> rank
		unknown  = map[int64]bool{}  // 503 "unknown": may have a record
		odd      []string
		nextUser atomic.Int64
		soldOut  atomic.Bool
		wg       sync.WaitGroup
	)
	nAccepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	nextUser.Store(testenv.RandomCouponID())
	deadline := time.Now().Add(3 * time.Minute)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !soldOut.Load() && time.Now().Before(deadline) {
				u := nextUser.Add(1)
				r, err := h.try("POST", fmt.Sprintf("/v1/coupons/%d/issues", id), fmt.Sprintf(`{"userId": %d}`, u))
				mu.Lock()
				switch {
				case err != nil:
					odd = append(odd, err.Error())
				case r.status == http.StatusAccepted:
					accepted[u] = r.int("rank")
				case r.status == http.StatusGone:
					soldOut.Store(true)
				case r.status == http.StatusServiceUnavailable && strings.Contains(r.message(), "outcome of the request is unknown"):
					unknown[u] = true
				case r.status == http.StatusServiceUnavailable:
					// certainly not queued: the slot was released
				default:
					odd = append(odd, fmt.Sprintf("user %d: %d %s %s", u, r.status, r.code(), r.message()))
				}
				mu.Unlock()
			}
		}()
	}
	testenv.Eventually(t, 2*time.Minute, func() error {
		if n := nAccepted(); n < supply/4 {
			return fmt.Errorf("%d accepted before the kill", n)
		}
		return nil
	})
	victim := leaderOfBusiestPartition(t, st.KafkaBrokers(), topic)
	atKill := nAccepted()
	if err := st.Kill(victim); err != nil {
		t.Fatalf("kill -9 %s: %v", victim, err)
	}
	t.Logf("killed %s (the hot partition's leader) with %d accepted", victim, atKill)
	wg.Wait()
	if len(odd) > 0 {
		t.Fatalf("%d odd answers, first: %s", len(odd), odd[0])
	}
	if !soldOut.Load() {
		t.Fatalf("the coupon did not sell out within the load's 3 minutes: %d accepted", nAccepted())
	}
	t.Logf("accepted %d (%d after the kill), unknown outcome %d", len(accepted), len(accepted)-atKill, len(unknown))

	// Every 202 is exactly one row, with its rank; the rest are unknowns.
	var rows map[int64]int64
	testenv.Eventually(t, 2*time.Minute, func() error {
		var err error
		if rows, err = h.db.IssuedRanks(ctx, id); err != nil {
			return err
		}
		for u := range accepted {
			if _, ok := rows[u]; !ok {
				return fmt.Errorf("%d rows; user %d (202) has none yet", len(rows), u)
			}
		}
		return nil
	})
	ranks := map[int64]bool{}
	for u, rank := range rows {
		if want, ok := accepted[u]; ok && want != rank {
			t.Errorf("user %d: row rank %d, answered %d", u, rank, want)
		}
		if !has(accepted, u) && !unknown[u] {
			t.Errorf("user %d has a row but was answered neither 202 nor unknown", u)
		}
		if ranks[rank] {
			t.Errorf("rank %d twice", rank)
		}
		ranks[rank] = true
	}
	if len(rows) > supply {
		t.Fatalf("%d rows for a supply of %d", len(rows), supply)
	}
	if a, err := h.db.Audit(ctx, id); err != nil || a.DupGroups != 0 || a.Rows != int64(len(rows)) || a.IssuedQuantity != a.Rows {
		t.Fatalf("MySQL holds %d rows (%d users with two), issued_quantity %d (%v); want %d rows, one per user, counted", a.Rows, a.DupGroups, a.IssuedQuantity, err, len(rows))
	}
	t.Logf("%d rows: %d accepted + %d of the unknown outcomes", len(rows), len(accepted), len(rows)-len(accepted))
}

func has(m map[int64]int64, k int64) bool { _, found := m[k]; return found }

// leaderOfBusiestPartition returns the node name (kafka-<id>) of the leader
// of the topic's partition holding the most records.
func leaderOfBusiestPartition(t *testing.T, brokers []string, topic string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	req := map[string][]kafkago.OffsetRequest{}
	for _, p := range md.Topics[0].Partitions {
		req[topic] = append(req[topic], kafkago.LastOffsetOf(p.ID))
	}
	offs, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: req})
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	best, most := -1, int64(-1)
	for _, p := range offs.Topics[topic] {
		if p.LastOffset > most {
			best, most = p.Partition, p.LastOffset
		}
	}
	for _, p := range md.Topics[0].Partitions {
		if p.ID == best {
			return stack.Kafka + "-" + strconv.Itoa(p.Leader.ID)
		}
	}
	t.Fatalf("partition %d of %s not in the metadata", best, topic)
	return ""
}
