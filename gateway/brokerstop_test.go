package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/droptest"
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

	load := droptest.Start(droptest.Config{Client: h.client, Bases: []string{h.url}, CouponID: id, Within: 2 * time.Minute})
	testenv.Eventually(t, 60*time.Second, load.AtLeast(droptest.Accepted, 300))
	stopCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := st.Stop(stopCtx, "kafka"); err != nil {
		t.Fatalf("stop kafka: %v", err)
	}
	// Load goes on against the stopped broker until certain failures show.
	testenv.Eventually(t, 60*time.Second, load.AtLeast(droptest.Retry, 50))
	load.Stop()
	res := load.Wait(t)
	t.Logf("%s", res)
	nAcc, nUnknown := res.Counts[droptest.Accepted], res.Counts[droptest.Unknown]

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
	// Released slots are reusable: every certainly-failed user retries and
	// is admitted again. (While the restarted broker settles, a retry's
	// publish may time out: the gate admitted it, only the record's fate
	// is unknown, and a later attempt rightly answers 409; such a user is
	// unknown, not accepted.)
	outcomes, ranks := res.Users, res.Ranks
	for _, u := range res.Of(droptest.Retry) {
		var r response
		testenv.Eventually(t, 60*time.Second, func() error {
			r = h.issue(id, u)
			if r.status == http.StatusAccepted || r.status == http.StatusServiceUnavailable && droptest.UnknownMessage(r.message()) {
				return nil
			}
			return fmt.Errorf("retry of user %d: %d %s", u, r.status, r.message())
		})
		if r.status == http.StatusAccepted {
			outcomes[u], ranks[u] = droptest.Accepted, r.int("rank")
		} else {
			outcomes[u] = droptest.Unknown
		}
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
		if o != droptest.Accepted {
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
