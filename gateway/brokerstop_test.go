package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
)

// TestBrokerStopMidLoad stops a private Kafka broker while issue requests
// flow: no 202 lacks its record in the topic, a certain failure leaves no
// record and releases its slot (reusable once the broker is back), and the
// gate holds exactly the 202s plus the unknown outcomes.
func TestBrokerStopMidLoad(t *testing.T) {
	st := testenv.MustStartPrivate(t, "kafka")
	brokers := st.KafkaBrokers()[:1]
	topic := "brokerstop-" + testenv.RandomID()
	ctx := context.Background()
	if _, err := kafka.EnsureTopic(ctx, brokers, topic, 3, 1, nil); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	h := mustStartGateway(t, harnessOpts{brokers: brokers, topic: topic, cfg: func(c *gateway.Config) {
		c.PublishTimeout = 2 * time.Second
	}})
	id := h.createCoupon(map[string]any{"name": "brokerstop", "totalQuantity": 1_000_000})

	type outcome int
	const (
		accepted outcome = iota
		failed           // 503: certainly not queued, released
		unknown          // 503: outcome unknown, kept pending
	)
	var (
		mu       sync.Mutex
		outcomes = map[int64]outcome{}
		ranks    = map[int64]int64{}
		odd      []string
		nextUser atomic.Int64
		stopLoad atomic.Bool
		wg       sync.WaitGroup
	)
	count := func(o outcome) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range outcomes {
			if v == o {
				n++
			}
		}
		return n
	}
	nextUser.Store(testenv.RandomCouponID())
	loadDeadline := time.Now().Add(2 * time.Minute)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopLoad.Load() && time.Now().Before(loadDeadline) {
				u := nextUser.Add(1)
				r, err := h.try("POST", fmt.Sprintf("/v1/coupons/%d/issues", id), fmt.Sprintf(`{"userId": %d}`, u))
				mu.Lock()
				switch {
				case err != nil:
					odd = append(odd, err.Error())
				case r.status == http.StatusAccepted:
					outcomes[u], ranks[u] = accepted, r.int("rank")
				case r.status == http.StatusServiceUnavailable && strings.Contains(r.message(), "could not be queued"):
					outcomes[u] = failed
				case r.status == http.StatusServiceUnavailable && strings.Contains(r.message(), "outcome of the request is unknown"):
					outcomes[u] = unknown
				default:
					odd = append(odd, fmt.Sprintf("user %d: %d %s %s", u, r.status, r.code(), r.message()))
				}
				mu.Unlock()
			}
		}()
	}
	testenv.Eventually(t, 60*time.Second, func() error {
		if n := count(accepted); n < 300 {
			return fmt.Errorf("%d accepted before the stop", n)
		}
		return nil
	})
	stopCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := st.Stop(stopCtx, "kafka"); err != nil {
		t.Fatalf("stop kafka: %v", err)
	}
	// Load goes on against the stopped broker until certain failures show.
	testenv.Eventually(t, 60*time.Second, func() error {
		if n := count(failed); n < 50 {
			return fmt.Errorf("%d certain failures so far", n)
		}
		return nil
	})
	stopLoad.Store(true)
	wg.Wait()
	if len(odd) > 0 {
		t.Fatalf("%d odd answers, first: %s", len(odd), odd[0])
	}
	nAcc, nFailed, nUnknown := count(accepted), count(failed), count(unknown)
	t.Logf("accepted %d, failed (released) %d, unknown (pending) %d", nAcc, nFailed, nUnknown)

	// The gate holds exactly the 202s and the unknown outcomes.
	if n, err := h.gate.Admitted(ctx, id); err != nil || n != int64(nAcc+nUnknown) {
		t.Fatalf("gate admitted %d, %v; want %d accepted + %d unknown", n, err, nAcc, nUnknown)
	}
	if st, _, err := h.gate.State(ctx, id); err != nil || len(st.Pending) != nUnknown {
		t.Fatalf("pending %d, %v; want %d", len(st.Pending), err, nUnknown)
	}

	if err := st.Start(stopCtx, "kafka"); err != nil {
		t.Fatalf("restart kafka: %v", err)
	}
	// Released slots are reusable: every certainly-failed user retries.
	var retried []int64
	for u, o := range outcomes {
		if o == failed {
			retried = append(retried, u)
		}
	}
	for _, u := range retried {
		var r response
		testenv.Eventually(t, 60*time.Second, func() error {
			r = h.issue(id, u)
			if r.status != http.StatusAccepted {
				return fmt.Errorf("retry of user %d: %d %s", u, r.status, r.message())
			}
			return nil
		})
		outcomes[u], ranks[u] = accepted, r.int("rank")
	}

	// Every 202 has its record with its rank; a certainly-failed attempt
	// left none (each retried user has exactly the retry's record).
	records := map[int64][]int64{} // user -> ranks in the topic
	for _, m := range readTopic(t, brokers, topic) {
		a, err := coupon.UnmarshalAdmission(m.Value)
		if err != nil {
			t.Fatalf("record %d/%d: %v", m.Partition, m.Offset, err)
		}
		records[a.UserID] = append(records[a.UserID], a.Rank)
	}
	for u, o := range outcomes {
		if o != accepted {
			continue
		}
		found := false
		for _, r := range records[u] {
			if r == ranks[u] {
				found = true
			} else {
				t.Fatalf("user %d: record with rank %d besides the accepted rank %d", u, r, ranks[u])
			}
		}
		if !found {
			t.Fatalf("user %d answered 202 (rank %d) has no record in the topic", u, ranks[u])
		}
	}
}
