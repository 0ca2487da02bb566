package sinker_test

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	couponkafka "github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	"github.com/coupondrop/coupon/ops"
	"github.com/coupondrop/coupon/sinker"
	"github.com/segmentio/kafka-go"
)

// BenchmarkSink measures, in one run on a private database of the test
// MariaDB and a fresh topic of the test Kafka:
//
//   - ceiling: raw multi-row INSERTs (a batch each, autocommit) of the
//     same rows into the same empty table: what MariaDB takes at best;
//   - guarded: the sinker's InsertIssues (lock, insert, counter update with
//     the CHECK guard) of the same rows, no Kafka;
//   - sink: the sinker consuming the pre-filled topic (group join excluded:
//     from the first row written to the last);
//   - replay: couponctl replay's load of the same topic into a shadow table.
//
// Run: go test ./sinker -run x -bench BenchmarkSink -benchtime 1x
// (COUPON_BENCH_RECORDS overrides the 1,000,000 records; COUPON_BATCH_SIZE
// and COUPON_SINK_WORKERS the sinker's defaults, 5,000 and 2; the ceiling
// and guarded runs write the same per-partition batches).
func BenchmarkSink(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("COUPON_BENCH_RECORDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("COUPON_BENCH_RECORDS: %v", err)
		}
		n = v
	}
	const coupons, parts = 24, 12
	db, raw, dsn := mustBenchDB(b)
	ctx := context.Background()
	topic := testenv.MustCreateTopic(b, parts)
	dlq := testenv.MustCreateTopic(b, 1)

	perCoupon := (n + coupons - 1) / coupons
	var ids []int64
	for range coupons {
		ids = append(ids, mustCreateCoupon(b, raw, int64(perCoupon)))
	}
	// Every admission has its own user, random-looking (a bijection of the
	// admission's index), like a real drop's.
	at := time.Now().UTC().Truncate(time.Microsecond)
	rows := make([]coupon.Issue, 0, n)
	for r := 1; r <= perCoupon; r++ {
		for _, id := range ids {
			if len(rows) == n {
				break
			}
			i := int64(len(rows))
			rows = append(rows, coupon.Issue{CouponID: id, UserID: (i*2654435761)%1_000_000_000_000 + 1,
				Rank: int64(r), AdmittedAt: at.Add(time.Duration(i) * time.Microsecond)})
		}
	}
	fmt.Printf("load at start: %s\n", loadavg())

	t0 := time.Now()
	mustPrefill(b, topic, rows)
	fmt.Printf("prefill   %9d records in %6.2fs  %9.0f records/s\n", n, time.Since(t0).Seconds(), float64(n)/time.Since(t0).Seconds())

	// The sinker's defaults, overridable like the binary's.
	workers, batch := 2, 5000
	if v, err := strconv.Atoi(os.Getenv("COUPON_SINK_WORKERS")); err == nil {
		workers = v
	}
	if v, err := strconv.Atoi(os.Getenv("COUPON_BATCH_SIZE")); err == nil {
		batch = v
	}
	// The batches the sinker forms: one partition's records, up to batch
	// rows, partitions taking turns. The ceiling and the guarded run write
	// the same batches.
	byPart := map[int][]coupon.Issue{}
	for _, r := range rows {
		p := couponkafka.PartitionOf(r.CouponID, parts)
		byPart[p] = append(byPart[p], r)
	}
	var batches [][]coupon.Issue
	for more := true; more; {
		more = false
		for p := range parts {
			if len(byPart[p]) == 0 {
				continue
			}
			k := min(batch, len(byPart[p]))
			batches = append(batches, byPart[p][:k])
			byPart[p] = byPart[p][k:]
			more = true
		}
	}
	for b.Loop() {
		// The ceiling: plain multi-row INSERTs into the empty table.
		reset := func() {
			for _, q := range []string{"TRUNCATE TABLE coupon_issues", "UPDATE coupons SET issued_quantity = 0"} {
				if _, err := raw.ExecContext(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		}
		t0 = time.Now()
		mustRawInsert(b, raw, batches)
		ceiling := float64(n) / time.Since(t0).Seconds()
		fmt.Printf("ceiling   %9d rows    in %6.2fs  %9.0f rows/s   (raw INSERTs of the sinker's batches: one partition, <= %d rows; autocommit, one client)\n", n, time.Since(t0).Seconds(), ceiling, batch)
		reset()

		t0 = time.Now()
		for _, rows := range batches {
			if _, err := db.InsertIssues(ctx, rows); err != nil {
				b.Fatal(err)
			}
		}
		guarded := float64(n) / time.Since(t0).Seconds()
		fmt.Printf("guarded   %9d rows    in %6.2fs  %9.0f rows/s   (InsertIssues of the same batches, no Kafka)  %.2f of ceiling\n",
			n, time.Since(t0).Seconds(), guarded, guarded/ceiling)
		reset()

		// The Kafka side alone: a group reader tuned like the sinker's,
		// fetching and decoding every record, no database.
		t0 = time.Now()
		consumeOnly(b, topic, n)
		consume := float64(n) / time.Since(t0).Seconds()
		fmt.Printf("consume   %9d records in %6.2fs  %9.0f records/s (kafka-go group Reader + decode, no DB; group join included)\n",
			n, time.Since(t0).Seconds(), consume)

		cfg := testConfig(topic, dlq)
		cfg.MySQL.DSN = dsn
		cfg.BatchSize, cfg.Workers = batch, workers
		s, err := sinker.New(cfg, testenv.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		tStart := time.Now()
		go func() { done <- s.Run(sctx) }()
		var tFirst time.Time
		var firstRows int64
		for {
			issued, err := db.IssuedQuantity(ctx, ids...)
			if err != nil {
				b.Fatal(err)
			}
			if issued > 0 && tFirst.IsZero() {
				tFirst, firstRows = time.Now(), issued
			}
			if issued >= int64(n) {
				break
			}
			if time.Since(tStart) > 10*time.Minute {
				b.Fatalf("sinker wrote %d of %d rows in 10 minutes", issued, n)
			}
			time.Sleep(20 * time.Millisecond) // polling interval of the measurement
		}
		tEnd := time.Now()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		_ = s.Close()
		sustained := float64(int64(n)-firstRows) / tEnd.Sub(tFirst).Seconds()
		fmt.Printf("sink      %9d rows    in %6.2fs  %9.0f rows/s   sustained (first row to last; %.2fs with the group join), batch %d, %d worker(s)  %.2f of ceiling\n",
			n, tEnd.Sub(tFirst).Seconds(), sustained, tEnd.Sub(tStart).Seconds(), batch, workers, sustained/ceiling)
		b.ReportMetric(sustained, "sink_rows/s")
		b.ReportMetric(ceiling, "ceiling_rows/s")
		b.ReportMetric(sustained/ceiling, "ratio")

		t0 = time.Now()
		sum, err := ops.Replay(ctx, db, couponkafka.NewTopic(testenv.KafkaBrokers, topic), ops.ReplayOptions{DropOld: true}, testenv.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		if sum.Inserted != int64(n) {
			b.Fatalf("replay loaded %d rows, want %d", sum.Inserted, n)
		}
		whole := float64(n) / sum.Total().Seconds()
		fmt.Printf("replay    %9d rows    in %6.2fs  %9.0f rows/s   (topic to shadow table)  %.2f of ceiling; whole replay %.2fs = %.0f rows/s (+ issue times kept %s, swap %s)\n",
			n, sum.Load.Seconds(), sum.RowsPerSecond(), sum.RowsPerSecond()/ceiling, sum.Total().Seconds(), whole,
			sum.KeepTimes.Round(time.Millisecond), sum.Swap.Round(time.Millisecond))
		b.ReportMetric(sum.RowsPerSecond(), "replay_rows/s")
	}
	fmt.Printf("load at end: %s\n", loadavg())
}

// consumeOnly reads n records through a consumer group like the sinker's
// reader and decodes them.
func consumeOnly(tb testing.TB, topic string, n int) {
	tb.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: testenv.KafkaBrokers, GroupID: "bench-consume-" + testenv.RandomID(), Topic: topic,
		QueueCapacity: 10_000, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 500 * time.Millisecond,
		StartOffset: kafka.FirstOffset, SessionTimeout: 6 * time.Second, RebalanceTimeout: 6 * time.Second,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := 0; i < n; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			tb.Fatalf("consume: %v after %d records", err, i)
		}
		if _, err := coupon.UnmarshalAdmission(m.Value); err != nil {
			tb.Fatal(err)
		}
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// mustBenchDB is testenv.MustOpenPrivateDB, with the store on it: the raw
// pool serves the ceiling (plain INSERTs) the store is measured against.
func mustBenchDB(tb testing.TB) (*mysql.DB, *sql.DB, string) {
	tb.Helper()
	raw, dsn := testenv.MustOpenPrivateDB(tb)
	return testenv.MustOpenStoreOn(tb, dsn), raw, dsn
}

// mustPrefill writes the rows as admission records, a few writers at once
// (each coupon's records from one goroutine, so in rank order).
func mustPrefill(tb testing.TB, topic string, rows []coupon.Issue) {
	tb.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(testenv.KafkaBrokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    5000,
		BatchBytes:   1_000_000,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	const writers = 4
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]kafka.Message, 0, 20_000)
			flush := func() error {
				err := w.WriteMessages(context.Background(), msgs...)
				msgs = msgs[:0]
				return err
			}
			for _, r := range rows {
				if r.CouponID%writers != int64(g) {
					continue
				}
				v, err := coupon.MarshalAdmission(coupon.Admission{CouponID: r.CouponID, UserID: r.UserID, Rank: r.Rank, AdmittedAt: r.AdmittedAt})
				if err != nil {
					errs <- err
					return
				}
				msgs = append(msgs, kafka.Message{Key: coupon.EventKey(r.CouponID), Value: v})
				if len(msgs) == cap(msgs) {
					if err := flush(); err != nil {
						errs <- err
						return
					}
				}
			}
			if len(msgs) > 0 {
				if err := flush(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("prefill: %v", err)
	}
}

// mustRawInsert is the ceiling: one plain multi-row INSERT per batch, no
// guard, no counter, autocommit, one client; each statement's rows sorted by
// primary key, as InsertIssues sorts them.
func mustRawInsert(tb testing.TB, db *sql.DB, batches [][]coupon.Issue) {
	tb.Helper()
	var q []byte
	off := 0
	for _, rows := range batches {
		chunk := slices.Clone(rows)
		slices.SortFunc(chunk, func(a, b coupon.Issue) int {
			if c := cmp.Compare(a.CouponID, b.CouponID); c != 0 {
				return c
			}
			return cmp.Compare(a.UserID, b.UserID)
		})
		q = append(q[:0], "INSERT INTO coupon_issues (coupon_id,user_id,issue_rank,admitted_at,source_partition,source_offset) VALUES "...)
		for i, r := range chunk {
			if i > 0 {
				q = append(q, ',')
			}
			q = append(q, '(')
			q = strconv.AppendInt(q, r.CouponID, 10)
			q = append(q, ',')
			q = strconv.AppendInt(q, r.UserID, 10)
			q = append(q, ',')
			q = strconv.AppendInt(q, r.Rank, 10)
			q = append(q, ",'"...)
			q = r.AdmittedAt.AppendFormat(q, "2006-01-02 15:04:05.000000")
			q = append(q, "',0,"...)
			q = strconv.AppendInt(q, int64(off+i), 10)
			q = append(q, ')')
		}
		if _, err := db.ExecContext(context.Background(), string(q)); err != nil {
			tb.Fatalf("raw insert: %v", err)
		}
		off += len(rows)
	}
}
