package kafka

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	kafkago "github.com/segmentio/kafka-go"
)

// BenchmarkPublish publishes admissions from 256 goroutines, each waiting
// for the ack of all in-sync replicas, on a 12-partition topic: one hot
// coupon (one partition) and 1,000 coupons round robin (every partition).
// It compares the Publisher (one produce request per leader broker
// carrying every partition's records) with what it replaced, a kafka-go
// Writer with one WriteMessages per record (one produce request per
// partition batch, BatchTimeout 2ms), and prints the rate, the latency and
// the records per produce request of each:
//
//	make gobench BENCH=Publish BENCHTIME=20000x PKG=./kafka
func BenchmarkPublish(b *testing.B) {
	const goroutines, partitions = 256, 12
	topic := testenv.MustCreateTopic(b, partitions)
	type result struct {
		name             string
		rate, perRequest float64
		p50, p99         time.Duration
	}
	results := map[string]result{} // the last (longest) run of each
	var names []string
	for _, coupons := range []int64{1, 1000} {
		for _, impl := range []string{"writer", "publisher"} {
			name := fmt.Sprintf("%s/coupons-%d", impl, coupons)
			names = append(names, name)
			b.Run(name, func(b *testing.B) {
				publish, perRequest, closeFn := benchPublisher(b, impl, topic)
				defer closeFn()
				ctx := context.Background()
				// Connect and load metadata outside the timing (a new
				// topic's leaders may take a moment to be known).
				testenv.Eventually(b, 10*time.Second, func() error {
					return publish(ctx, coupon.Admission{CouponID: 1, UserID: 1, Rank: 1, AdmittedAt: time.Now()})
				})
				perRequest() // reset
				var user atomic.Int64
				lat := testenv.ParallelLatencies(b, goroutines, func() error {
					u := user.Add(1)
					return publish(ctx, coupon.Admission{CouponID: 1 + u%coupons, UserID: u, Rank: u, AdmittedAt: time.Now()})
				})
				r := result{name: name, rate: float64(b.N) / b.Elapsed().Seconds(), perRequest: perRequest()}
				b.ReportMetric(r.rate, "publishes/s")
				b.ReportMetric(r.perRequest, "records/request")
				if len(lat) > 0 {
					r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
				}
				results[name] = r
			})
		}
	}
	fmt.Printf("\nPublish (acks=all), %d goroutines, %d partitions, one broker request per record (writer) or per leader (publisher):\n", goroutines, partitions)
	for _, name := range names {
		r, ok := results[name]
		if !ok {
			continue
		}
		fmt.Printf("  %-22s %8.0f publishes/s  %6.1f records/request  p50 %-8s p99 %s\n",
			r.name, r.rate, r.perRequest, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
	}
}

// benchPublisher returns a publish function of impl ("publisher", or
// "writer": the kafka-go Writer the Publisher replaced, set up as it was),
// a function returning the records per produce request since its previous
// call, and a close function.
func benchPublisher(b *testing.B, impl, topic string) (func(context.Context, coupon.Admission) error, func() float64, func()) {
	if impl == "publisher" {
		p, err := New(testConfig(topic), testenv.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		var last Stats
		return p.Publish, func() float64 {
			st := p.Stats()
			d := Stats{Requests: st.Requests - last.Requests, Records: st.Records - last.Records}
			last = st
			return d.RecordsPerRequest()
		}, func() { _ = p.Close() }
	}
	w := &kafkago.Writer{Addr: kafkago.TCP(brokers()...), Topic: topic, Balancer: balancer, RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 2 * time.Millisecond, BatchSize: 256, BatchBytes: 1 << 20, WriteTimeout: 5 * time.Second, MaxAttempts: 1,
		Transport: &kafkago.Transport{MetadataTTL: 3 * time.Second}}
	publish := func(ctx context.Context, a coupon.Admission) error {
		v, err := coupon.MarshalAdmission(a)
		if err != nil {
			return err
		}
		return w.WriteMessages(ctx, kafkago.Message{Key: coupon.EventKey(a.CouponID), Value: v})
	}
	return publish, func() float64 {
		st := w.Stats() // reset on every read
		if st.Writes == 0 {
			return 0
		}
		return float64(st.Messages) / float64(st.Writes)
	}, func() { _ = w.Close() }
}
