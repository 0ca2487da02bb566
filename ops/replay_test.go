package ops_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/internal/testsink"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	"github.com/coupondrop/coupon/ops"
	"github.com/segmentio/kafka-go"
)

// TestReplayAfterTruncate: the sinker writes a topic (with poison and a
// coupon over its total) into a private database; after TRUNCATE
// coupon_issues, replay restores exactly the same rows and counters, while
// the sinker keeps running and its group offsets do not move. A second
// replay, without truncation, keeps a row the topic does not hold.
func TestReplayAfterTruncate(t *testing.T) {
	db, raw, dsn := mustPrivateDB(t)
	const parts = 3
	topicName := testenv.MustCreateTopic(t, parts)
	dlq := testenv.MustCreateTopic(t, 1)
	topic := couponkafka.NewTopic(testenv.KafkaBrokers, topicName)
	ctx := context.Background()

	totals := []int64{3000, 50, 700, 1}
	var ids []int64
	for _, total := range totals {
		ids = append(ids, mustCreateCoupon(t, db, total))
	}
	var msgs []kafka.Message
	for i, id := range ids {
		n := totals[i]
		switch i {
		case 1:
			n = 80 // 30 over the total: the guard refuses them, replay must too
		case 2:
			n = 600 // room for 100 more
		}
		for rank := int64(1); rank <= n; rank++ {
			msgs = append(msgs, admissionMessage(t, id, 10_000*int64(i+1)+rank, rank))
		}
	}
	msgs = append(msgs, kafka.Message{Key: coupon.EventKey(ids[0]), Value: []byte("not json")})
	msgs = append(msgs, admissionMessage(t, 1<<50, 1, 1)) // unknown coupon
	mustProduce(t, topicName, msgs)

	group := testsink.StartGroup(t, dsn, topicName, dlq)
	testsink.WaitCaughtUp(t, topic, group)
	want := mustAllRows(t, raw)
	wantIssued := mustIssued(t, raw)
	if len(want) != 3000+50+600+1 {
		t.Fatalf("the sinker wrote %d rows, want %d", len(want), 3651)
	}
	committedBefore, err := topic.Committed(ctx, group, parts)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := raw.ExecContext(ctx, "TRUNCATE TABLE coupon_issues"); err != nil {
		t.Fatal(err)
	}
	var bar strings.Builder
	sum, err := ops.Replay(ctx, db, topic, ops.ReplayOptions{BatchSize: 1000, Progress: &bar}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replay summary:\n%s", sum)
	if d := diffRows(want, mustAllRows(t, raw)); d != "" {
		t.Fatalf("rows after replay differ: %s", d)
	}
	if got := mustIssued(t, raw); !maps.Equal(got, wantIssued) {
		t.Fatalf("issued_quantity after replay %v, want %v", got, wantIssued)
	}
	if sum.Records != int64(len(msgs)) || sum.Inserted != int64(len(want)) ||
		sum.Refused["undecodable"] != 1 || sum.Refused[mysql.ReasonUnknownCoupon] != 1 || sum.Refused[mysql.ReasonOverTotal] != 30 {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(bar.String(), "100%") {
		t.Errorf("progress bar never reached 100%%: %q", bar.String())
	}
	committedAfter, err := topic.Committed(ctx, group, parts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(committedBefore, committedAfter) {
		t.Errorf("replay moved the sinker's offsets: %v -> %v", committedBefore, committedAfter)
	}

	// A row the topic cannot speak for (a baseline strategy's, partition
	// -1) survives a replay; the sinker still writes the new table.
	baseline := coupon.Issue{CouponID: ids[2], UserID: 1, Rank: 601, AdmittedAt: time.Now(), Partition: -1, Offset: -1}
	if res, err := db.InsertIssues(ctx, []coupon.Issue{baseline}); err != nil || res.Inserted != 1 {
		t.Fatalf("baseline row: %+v %v", res, err)
	}
	want = mustAllRows(t, raw)
	wantIssued = mustIssued(t, raw)
	sum, err = ops.Replay(ctx, db, topic, ops.ReplayOptions{DropOld: true}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if sum.CarriedOver != 1 {
		t.Errorf("carried over %d rows, want 1", sum.CarriedOver)
	}
	if d := diffRows(want, mustAllRows(t, raw)); d != "" {
		t.Fatalf("rows after the second replay differ: %s", d)
	}
	if got := mustIssued(t, raw); !maps.Equal(got, wantIssued) {
		t.Fatalf("issued_quantity after the second replay %v, want %v", got, wantIssued)
	}
	mustProduce(t, topicName, []kafka.Message{admissionMessage(t, ids[2], 99, 602)})
	testsink.WaitCaughtUp(t, topic, group)
	if got := mustIssued(t, raw)[ids[2]]; got != 602 {
		t.Errorf("after the swap the sinker raised coupon %d to %d, want 602", ids[2], got)
	}
}

// TestReplayCarryOverGuarded: rows of the previous table outside the topic
// that would push a coupon past its total (written around the guard) are
// not carried over; they are reported, and kept in the old table.
func TestReplayCarryOverGuarded(t *testing.T) {
	db, raw, _ := mustPrivateDB(t)
	topicName := testenv.MustCreateTopic(t, 1)
	topic := couponkafka.NewTopic(testenv.KafkaBrokers, topicName)
	ctx := context.Background()
	id := mustCreateCoupon(t, db, 5)
	var msgs []kafka.Message
	for r := int64(1); r <= 4; r++ {
		msgs = append(msgs, admissionMessage(t, id, r, r))
	}
	mustProduce(t, topicName, msgs)
	// Around the guard: 3 rows no record speaks for, issued_quantity untouched.
	if _, err := raw.ExecContext(ctx, `INSERT INTO coupon_issues (coupon_id, user_id, issue_rank, admitted_at) VALUES
		(?, 101, 10, NOW(6)), (?, 102, 11, NOW(6)), (?, 103, 12, NOW(6))`, id, id, id); err != nil {
		t.Fatal(err)
	}
	sum, err := ops.Replay(ctx, db, topic, ops.ReplayOptions{DropOld: true}, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Inserted != 4 || sum.CarriedOver != 1 || len(sum.CarryRefused) != 2 || sum.OldTable == "" {
		t.Fatalf("summary %+v: want 4 loaded, 1 carried over, 2 refused, old table kept", sum)
	}
	if got := mustIssued(t, raw)[id]; got != 5 {
		t.Errorf("issued_quantity %d, want 5", got)
	}
	var n int
	if err := raw.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+sum.OldTable).Scan(&n); err != nil || n != 3 {
		t.Errorf("old table %s holds %d rows (%v), want 3", sum.OldTable, n, err)
	}
	if !strings.Contains(sum.String(), "CARRY-OVER REFUSED") {
		t.Errorf("summary does not report the refusal:\n%s", sum)
	}
}
