package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	kafkago "github.com/segmentio/kafka-go"
)

// TestConcurrentIssueExactlySupply: supply 1,000, 5,000 distinct users each
// sending twice at the same moment.
func TestConcurrentIssueExactlySupply(t *testing.T) {
	const supply, users, partitions = 1000, 5000, 6
	h := mustStartGateway(t, harnessOpts{partitions: partitions})
	id := h.createCoupon(map[string]any{"name": "flash", "totalQuantity": supply})
	base := testenv.RandomCouponID() // user IDs base+1..base+users

	type result struct {
		user   int64
		status int
		code   string
		rank   int64
		err    error
	}
	results := make([]result, 0, 2*users)
	var mu sync.Mutex
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := int64(1); i <= users; i++ {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := h.try("POST", fmt.Sprintf("/v1/coupons/%d/issues", id), fmt.Sprintf(`{"userId": %d}`, base+i))
				mu.Lock()
				results = append(results, result{user: base + i, status: r.status, code: r.code(), rank: r.int("rank"), err: err})
				mu.Unlock()
			}()
		}
	}
	close(start)
	wg.Wait()

	accepted := map[int64]int64{} // user -> rank
	ranks := map[int64]bool{}
	for _, r := range results {
		switch {
		case r.err != nil:
			t.Fatalf("user %d: %v", r.user, r.err)
		case r.status == http.StatusAccepted:
			if _, twice := accepted[r.user]; twice {
				t.Fatalf("user %d accepted twice", r.user)
			}
			if ranks[r.rank] || r.rank < 1 || r.rank > supply {
				t.Fatalf("rank %d repeated or out of 1..%d", r.rank, supply)
			}
			accepted[r.user], ranks[r.rank] = r.rank, true
		case r.status == http.StatusConflict && r.code == coupon.EALREADY,
			r.status == http.StatusGone && r.code == coupon.ESOLDOUT:
		default:
			t.Fatalf("user %d: unexpected answer %d %s", r.user, r.status, r.code)
		}
	}
	if len(accepted) != supply {
		t.Fatalf("%d answers 202; want exactly %d", len(accepted), supply)
	}
	if n, err := h.gate.Admitted(context.Background(), id); err != nil || n != supply {
		t.Fatalf("gate admitted %d, %v; want %d", n, err, supply)
	}

	// The topic holds exactly one record per accepted user, with its rank,
	// all in the partition Murmur2 gives the coupon's key.
	msgs := readTopic(t, testenv.KafkaBrokers, h.topic)
	if len(msgs) != supply {
		t.Fatalf("topic holds %d records; want %d", len(msgs), supply)
	}
	all := make([]int, partitions)
	for i := range all {
		all[i] = i
	}
	want := (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: coupon.EventKey(id)}, all...)
	seen := map[int64]bool{}
	for _, m := range msgs {
		a, err := coupon.UnmarshalAdmission(m.Value)
		if err != nil {
			t.Fatalf("record %d/%d: %v", m.Partition, m.Offset, err)
		}
		if m.Partition != want || string(m.Key) != string(coupon.EventKey(id)) {
			t.Fatalf("record of user %d in partition %d with key %q; want partition %d", a.UserID, m.Partition, m.Key, want)
		}
		if rank, ok := accepted[a.UserID]; !ok || rank != a.Rank || seen[a.UserID] || a.CouponID != id {
			t.Fatalf("record %+v: accepted rank %d (%v), seen before %v", a, rank, ok, seen[a.UserID])
		}
		seen[a.UserID] = true
	}
}
