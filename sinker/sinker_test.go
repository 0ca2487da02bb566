package sinker_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/sinker"
	"github.com/segmentio/kafka-go"
)

// TestPoisonAndGuard: an undecodable record, a record of an unknown coupon
// and the admissions beyond a coupon's total land in the dead-letter topic
// with their reason and original key/value; the records behind them in the
// same partition are written, and the group commits past all of them.
func TestPoisonAndGuard(t *testing.T) {
	db := testenv.MustOpenDB(t)
	const parts = 2
	topic := testenv.MustCreateTopic(t, parts)
	dlq := testenv.MustCreateTopic(t, 1)

	small := mustCreateCoupon(t, db, 5)    // 8 admissions: 3 over the total
	flowing := mustCreateCoupon(t, db, 50) // 10 admissions behind the poison
	unknown := testenv.RandomCouponID()

	garbage := kafka.Message{Key: coupon.EventKey(flowing), Value: []byte(`{"v":1,"couponId":"x"`)}
	var msgs []kafka.Message
	msgs = append(msgs, admissionMessages(t, admissions(small, 1000, 8))...)
	msgs = append(msgs, garbage)
	msgs = append(msgs, admissionMessages(t, admissions(unknown, 0, 1))...)
	msgs = append(msgs, admissionMessages(t, admissions(flowing, 5000, 10))...)
	mustProduce(t, topic, msgs)

	cfg := testConfig(topic, dlq)
	cfg.MetricsAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	runSinker(t, cfg)
	waitCommitted(t, topic, cfg.GroupID, parts, 60*time.Second)

	if s := mustCouponState(t, db, flowing, 5000); s.rows != 10 || s.issued != 10 || s.badUsers != 0 {
		t.Errorf("coupon behind the poison: %+v, want 10 rows", s)
	}
	if s := mustCouponState(t, db, small, 1000); s.rows != 5 || s.issued != 5 || s.maxRank != 5 || s.badUsers != 0 {
		t.Errorf("guarded coupon: %+v, want ranks 1..5", s)
	}

	got := map[string][]string{} // reason -> "key value" or ranks
	for _, m := range readAll(t, dlq, 0) {
		reason := header(m, sinker.HeaderReason)
		if header(m, sinker.HeaderTopic) != topic || header(m, sinker.HeaderOffset) == "" || header(m, sinker.HeaderError) == "" {
			t.Errorf("dead letter %q lacks source headers: %v", m.Value, m.Headers)
		}
		if reason == sinker.ReasonOverTotal {
			a, err := coupon.UnmarshalAdmission(m.Value)
			if err != nil || a.CouponID != small {
				t.Fatalf("over_total dead letter %q: %v", m.Value, err)
			}
			got[reason] = append(got[reason], strconv.FormatInt(a.Rank, 10))
			continue
		}
		got[reason] = append(got[reason], string(m.Key)+" "+string(m.Value))
	}
	unknownMsg := admissionMessages(t, admissions(unknown, 0, 1))[0]
	want := map[string][]string{
		sinker.ReasonUndecodable:   {string(garbage.Key) + " " + string(garbage.Value)},
		sinker.ReasonUnknownCoupon: {string(unknownMsg.Key) + " "},
		sinker.ReasonOverTotal:     {"6", "7", "8"},
	}
	for reason, w := range want {
		g := got[reason]
		slices.Sort(g)
		if reason == sinker.ReasonUnknownCoupon && len(g) == 1 {
			g[0] = g[0][:len(string(unknownMsg.Key))+1] // the value carries a timestamp
		}
		if !slices.Equal(g, w) {
			t.Errorf("dead letters %s = %q, want %q", reason, g, w)
		}
	}

	code, body, err := httpGet("http://" + cfg.MetricsAddr + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	for _, line := range []string{
		`coupon_sinker_dead_lettered_total{reason="over_total"} 3`,
		`coupon_sinker_dead_lettered_total{reason="undecodable"} 1`,
		`coupon_sinker_dead_lettered_total{reason="unknown_coupon"} 1`,
		`coupon_sinker_rows_inserted_total 15`,
		// Pre-set: 0 before the first error, not absent.
		`coupon_sinker_db_errors_total{kind="other"} 0`,
		`coupon_sinker_db_errors_total{kind="transient"} 0`,
		`coupon_sinker_lag{partition=`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body, err := httpGet("http://" + cfg.MetricsAddr + path); err != nil || code != 200 {
			t.Errorf("%s: %d %s %v", path, code, body, err)
		}
	}
}

// backlog is a pre-filled topic of n records over 4 coupons.
type backlog struct {
	topic, dlq string
	parts      int
	coupons    []int64
	perCoupon  int
	userBase   int64
}

func mustBacklog(t *testing.T, n int) backlog {
	t.Helper()
	db := testenv.MustOpenDB(t)
	b := backlog{topic: testenv.MustCreateTopic(t, 4), dlq: testenv.MustCreateTopic(t, 1), parts: 4, perCoupon: n / 4, userBase: 1 << 32}
	var msgs []kafka.Message
	for range 4 {
		id := mustCreateCoupon(t, db, int64(b.perCoupon))
		b.coupons = append(b.coupons, id)
	}
	// Interleave the coupons like concurrent traffic.
	per := make([][]kafka.Message, 4)
	for i, id := range b.coupons {
		per[i] = admissionMessages(t, admissions(id, b.userBase, b.perCoupon))
	}
	for j := range b.perCoupon {
		for i := range per {
			msgs = append(msgs, per[i][j])
		}
	}
	mustProduce(t, b.topic, msgs)
	return b
}

// mustExact checks every coupon holds exactly its admissions: each rank once,
// the right user, issued_quantity equal to the row count.
func (b backlog) mustExact(t *testing.T) {
	t.Helper()
	db := testenv.MustOpenDB(t)
	for _, id := range b.coupons {
		s := mustCouponState(t, db, id, b.userBase)
		want := couponState{rows: int64(b.perCoupon), issued: int64(b.perCoupon), minRank: 1, maxRank: int64(b.perCoupon), distinct: int64(b.perCoupon)}
		if s != want {
			t.Errorf("coupon %d: %+v, want %+v", id, s, want)
		}
	}
	if dl := mustEndOffsets(t, b.dlq, 1)[0]; dl != 0 {
		t.Errorf("%d records dead-lettered, want none", dl)
	}
}

func (b backlog) rows(t *testing.T) int64 {
	db := testenv.MustOpenDB(t)
	var n int64
	q := `SELECT COUNT(*) FROM coupon_issues WHERE coupon_id IN (` + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(b.coupons)), ","), "[]") + `)`
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKillAndRestart: kill -9 a sinker in the middle of a 200,000-record
// backlog and start it again: exactly the right rows, none twice.
func TestKillAndRestart(t *testing.T) {
	const n = 200_000
	b := mustBacklog(t, n)
	group := "sinker-kill-" + testenv.RandomID()

	first := startSinkerProc(t, b.topic, b.dlq, group)
	testenv.Eventually(t, 2*time.Minute, func() error {
		if got := b.rows(t); got < n/10 {
			return fmt.Errorf("%d rows written so far", got)
		}
		return nil
	})
	first.kill9(t)
	atKill := b.rows(t)
	t.Logf("killed with %d of %d rows written", atKill, n)
	if atKill >= n {
		t.Fatalf("the backlog was done before the kill (%d rows): the test proves nothing", atKill)
	}

	startSinkerProc(t, b.topic, b.dlq, group)
	waitCommitted(t, b.topic, group, b.parts, 3*time.Minute)
	b.mustExact(t)
}

// TestTwoSinkers: two sinker processes share one backlog's partitions; the
// result is the same exact set of rows.
func TestTwoSinkers(t *testing.T) {
	const n = 200_000
	b := mustBacklog(t, n)
	group := "sinker-two-" + testenv.RandomID()
	p1 := startSinkerProc(t, b.topic, b.dlq, group, "COUPON_BATCH_SIZE=2000", "COUPON_SINK_WORKERS=2", "COUPON_LOG_LEVEL=debug")
	p2 := startSinkerProc(t, b.topic, b.dlq, group, "COUPON_BATCH_SIZE=2000", "COUPON_LOG_LEVEL=debug")
	waitCommitted(t, b.topic, group, b.parts, 3*time.Minute)
	b.mustExact(t)
	t.Logf("batches settled: first sinker %d, second %d", p1.batches(), p2.batches())
}

// TestGracefulStop: SIGTERM in the middle of a backlog: the sinker finishes
// the batch in flight, commits its offsets (every written row is committed
// past, nothing more), leaves the group and exits 0 within its bound.
func TestGracefulStop(t *testing.T) {
	const n = 200_000
	b := mustBacklog(t, n)
	group := "sinker-term-" + testenv.RandomID()
	p := startSinkerProc(t, b.topic, b.dlq, group, "COUPON_SHUTDOWN_TIMEOUT=10s")
	testenv.Eventually(t, 2*time.Minute, func() error {
		if got := b.rows(t); got < n/10 {
			return fmt.Errorf("%d rows written so far", got)
		}
		return nil
	})
	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("sinker exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sinker still running 30s after SIGTERM")
	}
	t.Logf("exited %s after SIGTERM", time.Since(t0).Round(time.Millisecond))
	rows := b.rows(t)
	committed, err := committedOffsets(b.topic, group, b.parts)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range committed {
		sum += max(c, 0)
	}
	if sum != rows || rows >= n {
		t.Fatalf("after SIGTERM: %d rows written, offsets committed past %d records (of %d)", rows, sum, n)
	}
	cl := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers...), Timeout: 10 * time.Second}
	res, err := cl.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 1 || len(res.Groups[0].Members) != 0 {
		t.Fatalf("the group still has members after the sinker exited: %+v", res.Groups)
	}
	// The rest is written by the next sinker.
	startSinkerProc(t, b.topic, b.dlq, group)
	waitCommitted(t, b.topic, group, b.parts, 3*time.Minute)
	b.mustExact(t)
}

// TestMetricsListenerTimeouts: the metrics listener closes a keep-alive
// connection left idle, like the gateway's API listener.
func TestMetricsListenerTimeouts(t *testing.T) {
	testenv.Integration(t)
	cfg := testConfig(testenv.MustCreateTopic(t, 1), testenv.MustCreateTopic(t, 1))
	cfg.MetricsAddr = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cfg.MetricsTimeouts.Idle = 300 * time.Millisecond
	runSinker(t, cfg)
	testenv.Eventually(t, 30*time.Second, func() error {
		_, _, err := httpGet("http://" + cfg.MetricsAddr + "/healthz")
		return err
	})
	testenv.AssertIdleClosed(t, cfg.MetricsAddr, "/healthz", 5*time.Second)
	testenv.AssertIdleClosed(t, cfg.MetricsAddr, "/metrics", 5*time.Second)
}

// TestBatchesSpanPartitions: traffic spread over many coupons, hence over
// every partition, is written in batches that each span the partitions of
// their worker, not one batch per partition (whose transactions would shrink
// with the partitions): with one worker and a backlog over 12 partitions,
// fewer batches than partitions; every row exactly once.
func TestBatchesSpanPartitions(t *testing.T) {
	const parts, coupons, perCoupon = 12, 24, 100
	db := testenv.MustOpenDB(t)
	b := backlog{topic: testenv.MustCreateTopic(t, parts), dlq: testenv.MustCreateTopic(t, 1), parts: parts, perCoupon: perCoupon, userBase: 1 << 33}
	used := map[int]bool{}
	var msgs []kafka.Message
	for range coupons {
		id := mustCreateCoupon(t, db, perCoupon)
		b.coupons = append(b.coupons, id)
		used[couponkafka.PartitionOf(id, parts)] = true
		msgs = append(msgs, admissionMessages(t, admissions(id, b.userBase, perCoupon))...)
	}
	if len(used) < 4 {
		t.Fatalf("the coupons fall in %d partitions only: the test proves little", len(used))
	}
	mustProduce(t, b.topic, msgs)
	group := "sinker-span-" + testenv.RandomID()
	p := startSinkerProc(t, b.topic, b.dlq, group, "COUPON_SINK_WORKERS=1", "COUPON_BATCH_WAIT=2s", "COUPON_LOG_LEVEL=debug")
	waitCommitted(t, b.topic, group, b.parts, time.Minute)
	b.mustExact(t)
	if n := p.batches(); n >= len(used) {
		t.Errorf("%d batches for records in %d partitions: batches do not span partitions", n, len(used))
	} else {
		t.Logf("%d records in %d partitions written in %d batches", len(msgs), len(used), n)
	}
}

// TestFetchWaitsMaxWait: on idle partitions every fetch is answered after
// the broker waited the whole MaxWait, a short one and the default (kafka-go's
// reader took a quarter of a short MaxWait as the round trip's allowance, so
// the broker answered after 75 ms of 100 ms, and an answer later than the
// remaining 25 ms made the reader reconnect), and no reader reconnects.
func TestFetchWaitsMaxWait(t *testing.T) {
	testenv.MustOpenDB(t)
	for _, wait := range []time.Duration{200 * time.Millisecond, sinker.DefaultConfig().MaxWait} {
		t.Run(wait.String(), func(t *testing.T) { testFetchWaits(t, wait) })
	}
}

func testFetchWaits(t *testing.T, wait time.Duration) {
	const parts = 4
	topic := testenv.MustCreateTopic(t, parts)
	dlq := testenv.MustCreateTopic(t, 1)
	cfg := testConfig(topic, dlq)
	cfg.MaxWait = wait
	s, err := sinker.New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	var fetches, dials int64
	shortest := time.Duration(-1)
	testenv.Eventually(t, 60*time.Second, func() error {
		st := s.ReaderStats()
		dials += st.Dials
		if st.WaitTime.Count > 0 {
			fetches += st.WaitTime.Count
			if shortest < 0 || st.WaitTime.Min < shortest {
				shortest = st.WaitTime.Min
			}
		}
		if fetches < 3*parts {
			return fmt.Errorf("%d empty fetches answered, want %d", fetches, 3*parts)
		}
		return nil
	})
	// The broker's timer wheel may fire a tick (1 ms) early.
	if shortest < cfg.MaxWait*95/100 {
		t.Errorf("an empty fetch was answered after %s; want the broker to wait MaxWait (%s)", shortest, cfg.MaxWait)
	}
	if dials > parts {
		t.Errorf("%d dials for %d partitions: a reader reconnected", dials, parts)
	}
	t.Logf("%d empty fetches, the shortest answered after %s; %d dials for %d partitions", fetches, shortest, dials, parts)
}
