package ops_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/internal/testsink"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/ops"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
)

// TestRebuildGateAfterFlushall: traffic (the gate's Admit, then a publish
// acknowledged by Kafka) runs against a private Redis; FLUSHALL wipes the
// gate state mid-traffic; the coupon then answers unavailable (503), never
// starting again from zero; rebuild-gate restores it from MySQL and the
// topic, traffic resumes, and in the end exactly the supply is issued: every
// accepted user has a row with the rank it was told, nobody twice.
func TestRebuildGateAfterFlushall(t *testing.T) {
	st := testenv.MustStartPrivate(t, "redis")
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{st.RedisAddr()}})
	t.Cleanup(func() { _ = rdb.Close() })
	gate, err := admitter.NewFromClient(rdb, admitter.DefaultConfig(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()

	db := testenv.MustOpenStore(t)
	topicName := testenv.MustCreateTopic(t, 4)
	dlq := testenv.MustCreateTopic(t, 1)
	topic := couponkafka.NewTopic(testenv.KafkaBrokers, topicName)
	const total = 3000
	id := mustCreateCoupon(t, db, total)
	ctx := context.Background()
	if err := gate.Init(ctx, id, total); err != nil {
		t.Fatal(err)
	}
	group := testsink.StartGroup(t, testenv.MySQLDSN, topicName, dlq)
	w := newWriter(topicName)
	defer w.Close()

	var (
		mu          sync.Mutex
		accepted    = map[int64]int64{} // user -> rank answered "accepted"
		unavailable atomic.Int64
		inflight    atomic.Int64 // admitted, publish not yet acknowledged
		soldOut     atomic.Int64
	)
	const users, workers = 3 * total, 16
	next := atomic.Int64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				u := next.Add(1)
				if u > users {
					return
				}
				for { // one user retries until it gets an answer other than 503
					rank, err := gate.Admit(ctx, id, u, total)
					switch coupon.ErrorCode(err) {
					case "":
						inflight.Add(1)
						a := coupon.Admission{CouponID: id, UserID: u, Rank: rank, AdmittedAt: time.Now().UTC()}
						v, _ := coupon.MarshalAdmission(a)
						err := w.WriteMessages(ctx, admissionMessageKV(id, v))
						inflight.Add(-1)
						if err != nil {
							errs <- fmt.Errorf("publish user %d: %w", u, err)
							return
						}
						mu.Lock()
						accepted[u] = rank
						mu.Unlock()
					case coupon.ESOLDOUT:
						soldOut.Add(1)
					case coupon.EUNAVAILABLE:
						unavailable.Add(1)
						time.Sleep(2 * time.Millisecond) // client retry pacing, not synchronisation
						continue
					default:
						errs <- fmt.Errorf("admit user %d: %w", u, err)
						return
					}
					break
				}
			}
		}()
	}

	// Wipe Redis mid-traffic.
	testenv.Eventually(t, time.Minute, func() error {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n < total/3 {
			return fmt.Errorf("%d accepted so far", n)
		}
		return nil
	})
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	atFlush := len(accepted)
	mu.Unlock()
	// The coupon refuses with 503 instead of starting from zero.
	testenv.Eventually(t, 10*time.Second, func() error {
		if unavailable.Load() == 0 {
			return errors.New("no unavailable answer yet")
		}
		return nil
	})
	if _, err := gate.Admit(ctx, id, users+1, total); coupon.ErrorCode(err) != coupon.EUNAVAILABLE {
		t.Fatalf("admit after FLUSHALL: %v, want %s", err, coupon.EUNAVAILABLE)
	}
	// Publishes admitted before the wipe finish (in production: the
	// gateway's publish timeout, rebuild-gate's --settle).
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := inflight.Load(); n != 0 {
			return fmt.Errorf("%d publishes in flight", n)
		}
		return nil
	})
	res, err := ops.RebuildGate(ctx, db, topic, gate, []int64{id}, ops.RebuildOptions{Group: group}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accepted at FLUSHALL: %d, unavailable answers: %d\n%s", atFlush, unavailable.Load(), ops.FormatRebuilds(res))
	if len(res) != 1 || !res[0].Rebuilt || res[0].Users < atFlush {
		t.Fatalf("rebuild: %+v", res)
	}
	// A second rebuild leaves the live state alone.
	if res, err := ops.RebuildGate(ctx, db, topic, gate, []int64{id}, ops.RebuildOptions{Group: group}, testenv.Logger(t)); err != nil || res[0].Rebuilt {
		t.Fatalf("second rebuild: %+v %v", res, err)
	}

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(accepted) != total {
		t.Fatalf("%d users accepted, want exactly %d", len(accepted), total)
	}
	testsink.WaitCaughtUp(t, topic, group)
	a, err := db.Audit(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if a.Rows != total || a.DupGroups != 0 || a.RepeatedRanks != 0 || a.IssuedQuantity != total {
		t.Errorf("MySQL holds %d rows (%d users twice, %d ranks twice), issued_quantity %d; want %d, each once",
			a.Rows, a.DupGroups, a.RepeatedRanks, a.IssuedQuantity, total)
	}
	got, err := db.IssuedRanks(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for u, r := range accepted {
		if got[u] != r {
			t.Errorf("accepted user %d (rank %d) has row rank %d", u, r, got[u])
		}
	}
	if n, err := gate.Admitted(ctx, id); err != nil || n != total {
		t.Errorf("gate admitted %d (%v), want %d", n, err, total)
	}
}

// TestReconcile: an admission whose publish never landed (pending, not in
// the topic) is reported and, with --fix, released; a pending mark whose
// record did land is cleared; an admission in the gate that is neither
// published nor pending (its gate call timed out, or its gateway died) is
// unpublished too.
func TestReconcile(t *testing.T) {
	rdb := testenv.MustOpenRedis(t)
	gate, err := admitter.NewFromClient(rdb, admitter.DefaultConfig(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	db := testenv.MustOpenStore(t)
	topicName := testenv.MustCreateTopic(t, 2)
	dlq := testenv.MustCreateTopic(t, 1)
	topic := couponkafka.NewTopic(testenv.KafkaBrokers, topicName)
	ctx := context.Background()
	const total = 20
	id := mustCreateCoupon(t, db, total)
	t.Cleanup(func() { _ = gate.Drop(context.Background(), id) })
	if err := gate.Init(ctx, id, total); err != nil {
		t.Fatal(err)
	}
	group := testsink.StartGroup(t, testenv.MySQLDSN, topicName, dlq)
	w := newWriter(topicName)
	defer w.Close()
	for u := int64(1); u <= 10; u++ {
		rank, err := gate.Admit(ctx, id, u, total)
		if err != nil {
			t.Fatal(err)
		}
		switch u {
		case 4: // unknown outcome, never landed
			if err := gate.MarkPending(ctx, id, u, rank); err != nil {
				t.Fatal(err)
			}
			continue
		case 6: // unknown outcome, but it landed
			if err := gate.MarkPending(ctx, id, u, rank); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.WriteMessages(ctx, admissionMessage(t, id, u, rank)); err != nil {
			t.Fatal(err)
		}
	}
	// A slot nobody can account for (its gate call timed out, or its
	// gateway died before publishing).
	if rank, err := gate.Admit(ctx, id, 99, total); err != nil || rank != 11 {
		t.Fatalf("admit user 99: rank %d, %v; want 11", rank, err)
	}
	testsink.WaitCaughtUp(t, topic, group)

	opts := ops.ReconcileOptions{Group: group, Wait: time.Minute}
	res, err := ops.Reconcile(ctx, db, topic, gate, []int64{id}, opts, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", ops.FormatReconcile(res, false))
	r := res[0]
	if len(r.Unpublished) != 2 || r.Unpublished[0] != (ops.Admission{UserID: 4, Rank: 4}) ||
		r.Unpublished[1] != (ops.Admission{UserID: 99, Rank: 11}) {
		t.Errorf("unpublished %+v, want user 4 rank 4 and user 99 rank 11", r.Unpublished)
	}
	if len(r.SettledPending) != 1 || r.SettledPending[0].UserID != 6 {
		t.Errorf("settled pending %+v, want user 6", r.SettledPending)
	}
	if len(r.Mismatches) != 0 || r.Rows != 9 || r.Gate != 11 || r.Topic != 9 {
		t.Errorf("report %+v, want no mismatch, 9 rows, 11 in the gate, 9 in the topic", r)
	}

	opts.Fix = true
	res, err = ops.Reconcile(ctx, db, topic, gate, []int64{id}, opts, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; len(r.Released) != 2 || r.Cleared != 1 || len(r.Mismatches) != 0 || !r.Fixed || r.Gate != 9 || r.Pending != 0 {
		t.Errorf("fix: %+v; want 2 released, 1 cleared, and the gate (9) and pending (0) counted after the fix", r)
	}
	if out := ops.FormatReconcile(res, true); !strings.Contains(out, "user 4 (rank 4) admitted but never published: released") {
		t.Errorf("fix report does not say what it released:\n%s", out)
	}
	if n, err := gate.Admitted(ctx, id); err != nil || n != 9 {
		t.Errorf("after the fix the gate admits %d (%v), want 9", n, err)
	}
	if st, _, err := gate.State(ctx, id); err != nil || len(st.Pending) != 0 {
		t.Errorf("pending marks left: %v (%v)", st.Pending, err)
	}
	// The released slot is reusable, and the rank counter moved on.
	if rank, err := gate.Admit(ctx, id, 4, total); err != nil || rank != 12 {
		t.Errorf("re-admit user 4: rank %d, %v; want 12", rank, err)
	}
	res, err = ops.Reconcile(ctx, db, topic, gate, []int64{id}, ops.ReconcileOptions{Group: group}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	// User 4 is admitted again and not published in this test: reported
	// as unpublished (released only with --fix, after the grace period).
	if r := res[0]; len(r.Mismatches) != 0 || len(r.Unpublished) != 1 || r.Unpublished[0].UserID != 4 {
		t.Errorf("after re-admission: %+v", r)
	}
}

// TestRebuildGateFromTopicTail: the records the sinker has not written yet
// (here: no sinker at all past the rows already in MySQL) are restored from
// the topic, and the rank counter resumes after the highest rank seen.
func TestRebuildGateFromTopicTail(t *testing.T) {
	gate := mustOpenGate(t)
	db := testenv.MustOpenStore(t)
	topicName := testenv.MustCreateTopic(t, 3)
	topic := couponkafka.NewTopic(testenv.KafkaBrokers, topicName)
	ctx := context.Background()
	id := mustCreateCoupon(t, db, 1000)
	t.Cleanup(func() { _ = gate.Drop(context.Background(), id) })

	var rows []coupon.Issue
	for u := int64(1); u <= 60; u++ {
		rows = append(rows, coupon.Issue{CouponID: id, UserID: u, Rank: u, AdmittedAt: time.Now(), Partition: -1, Offset: -1})
	}
	if _, err := db.InsertIssues(ctx, rows); err != nil {
		t.Fatal(err)
	}
	var msgs []kafka.Message
	for u := int64(41); u <= 100; u++ {
		msgs = append(msgs, admissionMessage(t, id, u, u))
	}
	msgs = append(msgs, admissionMessage(t, id, 500, 105)) // ranks 101..104 were released
	mustProduce(t, topicName, msgs)

	// The state is present: nothing is touched without --force.
	if err := gate.Init(ctx, id, 1000); err != nil {
		t.Fatal(err)
	}
	res, err := ops.RebuildGate(ctx, db, topic, gate, []int64{id}, ops.RebuildOptions{Group: "nobody-" + testenv.RandomID()}, testenv.Logger(t))
	if err != nil || res[0].Rebuilt {
		t.Fatalf("rebuild of a present state: %+v %v", res, err)
	}
	if err := gate.Drop(ctx, id); err != nil {
		t.Fatal(err)
	}
	res, err = ops.RebuildGate(ctx, db, topic, gate, []int64{id}, ops.RebuildOptions{Group: "nobody-" + testenv.RandomID()}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; !r.Rebuilt || r.Users != 101 || r.FromMySQL != 60 || r.FromTopic != 41 || r.Seq != 105 {
		t.Fatalf("rebuild: %+v, want 101 users (60 from MySQL, 41 from the topic), seq 105", r)
	}
	if rank, err := gate.Admit(ctx, id, 77, 1000); coupon.ErrorCode(err) != coupon.EALREADY || rank != 77 {
		t.Errorf("user 77: rank %d %v, want already admitted with rank 77", rank, err)
	}
	if rank, err := gate.Admit(ctx, id, 1001, 1000); err != nil || rank != 106 {
		t.Errorf("new user: rank %d %v, want 106", rank, err)
	}
}

// TestRebuildGateCountsDeadLetters: a record the sinker dead-lettered (here
// the third of a coupon of two) has no row and lies before the committed
// offsets; its rank still counts for the rebuilt rank counter.
func TestRebuildGateCountsDeadLetters(t *testing.T) {
	gate := mustOpenGate(t)
	db := testenv.MustOpenStore(t)
	topicName, dlqName := testenv.MustCreateTopic(t, 1), testenv.MustCreateTopic(t, 1)
	brokers := testenv.KafkaBrokers
	topic, dlq := couponkafka.NewTopic(brokers, topicName), couponkafka.NewTopic(brokers, dlqName)
	ctx := context.Background()
	id := mustCreateCoupon(t, db, 2)
	t.Cleanup(func() { _ = gate.Drop(context.Background(), id) })
	group := testsink.StartGroup(t, testenv.MySQLDSN, topicName, dlqName)
	mustProduce(t, topicName, []kafka.Message{admissionMessage(t, id, 1, 1), admissionMessage(t, id, 2, 2), admissionMessage(t, id, 3, 3)})
	testsink.WaitCaughtUp(t, topic, group)
	if rows, err := db.IssuedRanks(ctx, id); err != nil || len(rows) != 2 {
		t.Fatalf("%d rows (%v), want 2 (the third over the total)", len(rows), err)
	}

	for _, tc := range []struct {
		name    string
		dlq     *couponkafka.Topic
		wantSeq int64
	}{
		{"without the dead letters the counter stops at the rows (rank 3 would be handed out again)", nil, 2},
		{"with them it covers the dead-lettered rank", dlq, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := gate.Drop(ctx, id); err != nil {
				t.Fatal(err)
			}
			res, err := ops.RebuildGate(ctx, db, topic, gate, []int64{id}, ops.RebuildOptions{Group: group, DeadLetters: tc.dlq}, testenv.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			if r := res[0]; !r.Rebuilt || r.Users != 2 || r.Seq != tc.wantSeq {
				t.Fatalf("rebuild: %+v, want 2 users and seq %d", r, tc.wantSeq)
			}
			if st, ok, err := gate.State(ctx, id); err != nil || !ok || st.Seq != tc.wantSeq || len(st.Users) != 2 {
				t.Fatalf("gate state %+v, present %v (%v); want 2 users and seq %d", st, ok, err, tc.wantSeq)
			}
		})
	}

	// A dead-letter topic that does not exist fails before anything is read or written.
	if err := gate.Drop(ctx, id); err != nil {
		t.Fatal(err)
	}
	missing := couponkafka.NewTopic(brokers, "no-such-topic-"+testenv.RandomID())
	_, err := ops.RebuildGate(ctx, db, topic, gate, []int64{id}, ops.RebuildOptions{Group: group, DeadLetters: missing}, testenv.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "dead letters") {
		t.Fatalf("rebuild with a missing dead-letter topic: %v", err)
	}
	if ok, err := gate.HasState(ctx, id); err != nil || ok {
		t.Fatalf("the failed rebuild wrote the gate state (%v)", err)
	}
}

// mustOpenGate returns a gate on the test Redis, closed at cleanup.
func mustOpenGate(tb testing.TB) *admitter.Gate {
	tb.Helper()
	gate, err := admitter.NewFromClient(testenv.MustOpenRedis(tb), admitter.DefaultConfig(), testenv.Logger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = gate.Close() })
	return gate
}
