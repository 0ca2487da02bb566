package testenv

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// ParallelLatencies runs op b.N times from about goroutines goroutines
// (b.RunParallel), timing each call, and returns the latencies sorted. A
// failing op fails the benchmark and stops its goroutine. The timer covers
// the calls only.
func ParallelLatencies(b *testing.B, goroutines int, op func() error) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if err := op(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(lat)
	return lat
}
