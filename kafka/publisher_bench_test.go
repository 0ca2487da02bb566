package kafka

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
)

// BenchmarkPublish publishes admissions of one coupon (one partition, the
// hot spot of a drop) from many goroutines, each waiting for the ack of
// all in-sync replicas, and prints the rate and latency per batch timeout:
//
//	go test ./kafka -run x -bench Publish -benchtime 3s
func BenchmarkPublish(b *testing.B) {
	const goroutines = 128
	topic := testenv.MustCreateTopic(b, 1)
	timeouts := []time.Duration{500 * time.Microsecond, 2 * time.Millisecond, 5 * time.Millisecond}
	summary := map[time.Duration]string{} // the last (longest) run of each
	for _, bt := range timeouts {
		b.Run("batch-timeout-"+bt.String(), func(b *testing.B) {
			cfg := testConfig(topic)
			cfg.BatchTimeout = bt
			p, err := New(cfg, testenv.Logger(b))
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			ctx := context.Background()
			if err := p.Publish(ctx, coupon.Admission{CouponID: 1, UserID: 1, Rank: 1, AdmittedAt: time.Now()}); err != nil {
				b.Fatal(err) // connect and load metadata outside the timing
			}
			var user atomic.Int64
			lat := testenv.ParallelLatencies(b, goroutines, func() error {
				u := user.Add(1)
				return p.Publish(ctx, coupon.Admission{CouponID: 1, UserID: u, Rank: u, AdmittedAt: time.Now()})
			})

			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "publishes/s")
			if len(lat) > 0 {
				p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
				summary[bt] = fmt.Sprintf("  batch timeout %-8s %8.0f publishes/s  p50 %-8s p99 %s",
					bt, rate, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
			}
		})
	}
	fmt.Printf("\nPublish (acks=all), %d goroutines, one partition:\n", goroutines)
	for _, bt := range timeouts {
		if line, ok := summary[bt]; ok {
			fmt.Println(line)
		}
	}
}
