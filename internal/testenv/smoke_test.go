package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/segmentio/kafka-go"
)

// TestSmokeKafka produces records with kafka-go and reads them back with a
// partition reader and with a consumer-group reader that commits offsets; a
// second group member started after the commit sees nothing left to read.
func TestSmokeKafka(t *testing.T) {
	topic := testenv.MustCreateTopic(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	w := &kafka.Writer{
		Addr:         kafka.TCP(testenv.KafkaBrokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	const n = 30
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint(i % 5)), Value: []byte(fmt.Sprintf("v%d", i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// Consumer group: every record exactly once across partitions, commit.
	group := "smoke-" + testenv.RandomID()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     testenv.KafkaBrokers,
		GroupID:     group,
		Topic:       topic,
		StartOffset: kafka.FirstOffset,
		MaxWait:     100 * time.Millisecond,
	})
	seen := map[string]bool{}
	for len(seen) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("group fetch after %d records: %v", len(seen), err)
		}
		if seen[string(m.Value)] {
			t.Fatalf("record %s delivered twice", m.Value)
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close group reader: %v", err)
	}

	// The committed offsets are visible to the group.
	cl := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers...), Timeout: 10 * time.Second}
	off, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	var committed int64
	for _, p := range off.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch partition %d: %v", p.Partition, p.Error)
		}
		committed += p.CommittedOffset
	}
	if committed != n {
		t.Fatalf("committed offsets sum to %d, want %d", committed, n)
	}

	// A single-partition reader reads what the group read from partition 0.
	pr := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.KafkaBrokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer pr.Close()
	if err := pr.SetOffset(kafka.FirstOffset); err != nil {
		t.Fatal(err)
	}
	m, err := pr.ReadMessage(ctx)
	if err != nil {
		t.Fatalf("partition read: %v", err)
	}
	if !seen[string(m.Value)] {
		t.Fatalf("partition reader read %q the group never saw", m.Value)
	}
}

// TestSmokeRedis round-trips a key through the test Redis.
func TestSmokeRedis(t *testing.T) {
	rdb := testenv.MustOpenRedis(t)
	ctx := context.Background()
	key := "smoke:" + testenv.RandomID()
	if err := rdb.Set(ctx, key, "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := rdb.Get(ctx, key).Result()
	if err != nil || got != "v" {
		t.Fatalf("get %s = %q, %v; want v", key, got, err)
	}
	_ = rdb.Del(ctx, key)
}

// TestSmokeMySQL round-trips a row through the migrated test database.
func TestSmokeMySQL(t *testing.T) {
	db := testenv.MustOpenDB(t)
	ctx := context.Background()
	name := "smoke-" + testenv.RandomID()
	res, err := db.ExecContext(ctx, `INSERT INTO coupons (name, total_quantity) VALUES (?, 3)`, name)
	if err != nil {
		t.Fatalf("insert coupon: %v", err)
	}
	id, _ := res.LastInsertId()
	var got string
	var total int64
	if err := db.QueryRowContext(ctx, `SELECT name, total_quantity FROM coupons WHERE id = ?`, id).Scan(&got, &total); err != nil {
		t.Fatal(err)
	}
	if got != name || total != 3 {
		t.Fatalf("read back (%q, %d), want (%q, 3)", got, total, name)
	}
	// The CHECK constraint holds on this server.
	if _, err := db.ExecContext(ctx, `UPDATE coupons SET issued_quantity = 4 WHERE id = ?`, id); err == nil {
		t.Fatal("issued_quantity above total_quantity was accepted: CHECK constraint not enforced")
	}
	_, _ = db.ExecContext(ctx, `DELETE FROM coupons WHERE id = ?`, id)
}
