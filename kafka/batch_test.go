package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

// couponsInPartitions returns one coupon ID per partition of want, the
// first found from 1 up, and the partitions.
func couponsInPartitions(tb testing.TB, partitions int, want ...int) []int64 {
	tb.Helper()
	out := make([]int64, len(want))
	for i, p := range want {
		for id := int64(1); out[i] == 0; id++ {
			if PartitionOf(id, partitions) == p {
				out[i] = id
			}
		}
	}
	return out
}

// batchRecords are the records of users 1..n of each coupon, value padded
// to pad bytes of request ID (0: none).
func batchRecords(tb testing.TB, n int, pads map[int64]int, coupons ...int64) ([]*record, []coupon.Admission) {
	tb.Helper()
	var recs []*record
	var adms []coupon.Admission
	for _, c := range coupons {
		for u := int64(1); u <= int64(n); u++ {
			a := coupon.Admission{CouponID: c, UserID: u, Rank: u, AdmittedAt: time.Now().UTC(), RequestID: strings.Repeat("r", pads[c])}
			v, err := coupon.MarshalAdmission(a)
			if err != nil {
				tb.Fatal(err)
			}
			recs = append(recs, &record{key: coupon.EventKey(c), value: v})
			adms = append(adms, a)
		}
	}
	return recs, adms
}

// TestProduceBatchOutcomePerPartition sends one batch spanning three
// partitions (three coupons) in which the broker refuses one partition's
// records (their record batch is over the topic's max.message.bytes) and
// appends the others': each record gets its own partition's outcome, the
// refused ones certainly not sent, and the topic holds exactly the
// appended ones. With one broker the batch is one produce request.
func TestProduceBatchOutcomePerPartition(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	const partitions = 4
	topic := "test-" + testenv.RandomID()
	if _, err := EnsureTopic(ctx, brokers(), topic, partitions, 1, map[string]string{"max.message.bytes": "2000"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteTopics(context.Background(), brokers(), topic) })
	p := mustNewPublisher(t, testConfig(topic))
	if err := p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	coupons := couponsInPartitions(t, partitions, 0, 1, 3)
	refused := coupons[1]
	// One small record per partition first: a new topic's leaders answer
	// NOT_LEADER_OR_FOLLOWER for a moment after the metadata lists them.
	want := map[int]int64{}
	for _, c := range coupons {
		testenv.Eventually(t, 10*time.Second, func() error {
			return p.Publish(ctx, coupon.Admission{CouponID: c, UserID: 1e9, Rank: 1, AdmittedAt: time.Now()})
		})
		want[PartitionOf(c, partitions)]++
	}
	// Five records of ~600 bytes make partition 1's batch ~3,000 bytes.
	recs, adms := batchRecords(t, 5, map[int64]int{refused: 600}, coupons...)
	before := p.Stats()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p.produce(pctx, recs)

	for i, r := range recs {
		a := adms[i]
		if a.CouponID == refused {
			if r.err == nil || Classify(r.err) != NotSent {
				t.Errorf("coupon %d user %d (refused partition): err %v (%v), want a certain failure", a.CouponID, a.UserID, r.err, Classify(r.err))
			}
			continue
		}
		if r.err != nil {
			t.Errorf("coupon %d user %d: %v, want appended", a.CouponID, a.UserID, r.err)
		}
		want[PartitionOf(a.CouponID, partitions)]++
	}
	for part := range partitions {
		if got := countRecords(t, topic, part); got != want[part] {
			t.Errorf("partition %d holds %d records, want %d", part, got, want[part])
		}
	}
	st := p.Stats()
	if n := testenv.KafkaBrokerCount(t); n == 1 && st.Requests-before.Requests != 1 {
		t.Errorf("%d produce requests for a batch on one broker, want 1", st.Requests-before.Requests)
	}
	if st.Records-before.Records != int64(len(recs)) {
		t.Errorf("%d records counted, want %d", st.Records-before.Records, len(recs))
	}
}

// TestPublishBatchUnknownWhenAckLost drops the broker's replies to a batch
// spanning several partitions: every record of it is an unknown outcome
// (never a certain failure, which would release a slot), and they are in
// the topic indeed.
func TestPublishBatchUnknownWhenAckLost(t *testing.T) {
	if n := testenv.KafkaBrokerCount(t); n > 1 {
		t.Skipf("the proxy stands in for the only broker; the test Kafka has %d (COUPON_STACK_KAFKA_NODES=3)", n)
	}
	const partitions = 3
	topic := testenv.MustCreateTopic(t, partitions)
	p, px := mustNewProxiedPublisher(t, topic)
	ctx := context.Background()
	coupons := couponsInPartitions(t, partitions, 0, 1, 2)
	for _, c := range coupons { // every partition's leader ready (see TestProduceBatchOutcomePerPartition)
		testenv.Eventually(t, 10*time.Second, func() error {
			return p.Publish(ctx, coupon.Admission{CouponID: c, UserID: 1e9, Rank: 1, AdmittedAt: time.Now()})
		})
	}
	px.DropReplies.Store(true)
	recs, _ := batchRecords(t, 3, nil, coupons...)
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	p.produce(pctx, recs)
	for i, r := range recs {
		if r.err == nil || Classify(r.err) != MaybeSent {
			t.Errorf("record %d: err %v, want an unknown outcome", i, r.err)
		}
	}
	want := len(coupons) + len(recs)
	if got := readAll(t, topic, partitions, want); len(got) != want {
		t.Errorf("%d records in the topic, want %d (the batch whose acks were lost, and one per partition before)", len(got), want)
	}
}

// TestPublishClosedAndGivenUp: a caller whose context has ended before its
// record was sent gets a certain failure, and so does a caller of a closed
// publisher.
func TestPublishClosedAndGivenUp(t *testing.T) {
	testenv.Integration(t)
	topic := testenv.MustCreateTopic(t, 1)
	p := mustNewPublisher(t, testConfig(topic))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.send(ctx, []byte("1"), []byte("{}"))
	if err == nil {
		t.Fatal("send with a cancelled context: no error")
	}
	if Classify(err) != NotSent || !errors.Is(err, context.Canceled) {
		t.Errorf("send with a cancelled context: %v", err)
	}
	_ = p.Close()
	err = p.Publish(context.Background(), coupon.Admission{CouponID: 1, UserID: 1, Rank: 1, AdmittedAt: time.Now()})
	if !errors.Is(err, coupon.ErrPublishFailed) || errors.Is(err, coupon.ErrPublishUnknown) {
		t.Errorf("publish on a closed publisher: %v; want ErrPublishFailed", err)
	}
}
