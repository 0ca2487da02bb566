package admitter_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/redisbench"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// BenchmarkAdmit compares one round trip per Admit with batched pipelines,
// each admitting distinct users from many goroutines to one hot coupon or
// to 1,000 coupons round robin, and prints them beside redis-benchmark's
// rate for the same script. Batched is one admit script call per pipeline
// whatever its coupons; "batched-per-coupon" is how the gate batched before
// (one call per coupon of a pipeline: about one user per call over 1,000
// coupons). Users per script call and CPU per admission (this process, and
// the Redis server) are printed too: on a shared 2-core machine CPU is
// steadier than the rate. On the 2-core dev machine (2026-11-29, one
// coupon): batched 292k admits/s at 2.3 Redis-CPU µs each, unbatched 78k at
// 11.8; with one script call per user instead of one per coupon of a
// pipeline, batched was 127k at 6.4.
//
//	make gobench BENCH=Admit BENCHTIME=3s PKG=./admitter
func BenchmarkAdmit(b *testing.B) {
	const goroutines = 128 // concurrent requests in flight, as in the gateway
	unbatched := admitter.DefaultConfig()
	unbatched.BatchMax = 1
	variants := []struct {
		name    string
		cfg     admitter.Config
		coupons int64
		before  bool // one script call per coupon
	}{
		{"unbatched/coupons-1", unbatched, 1, false},
		{"batched/coupons-1", admitter.DefaultConfig(), 1, false},
		{"batched-per-coupon/coupons-1000", admitter.DefaultConfig(), 1000, true},
		{"batched/coupons-1000", admitter.DefaultConfig(), 1000, false},
	}
	type figures struct{ rate, clientCPU, redisCPU, perCall float64 }
	got := map[string]figures{}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr, PoolSize: goroutines, MaxRetries: -1})
			defer client.Close()
			g, err := admitter.NewFromClient(client, v.cfg, testenv.Logger(b))
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			if v.before {
				admitter.OneCallPerCoupon(g)
			}
			ctx := context.Background()
			ids := make([]int64, v.coupons)
			for i := range ids {
				ids[i] = testenv.RandomCouponID()
				if err := g.Init(ctx, ids[i], 1<<40); err != nil {
					b.Fatal(err)
				}
			}
			defer func() {
				for _, id := range ids {
					_ = g.Drop(ctx, id)
				}
			}()
			var user atomic.Int64
			b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
			st0, cpu0, rcpu0 := g.Stats(), processCPU(), redisCPU(b, client)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := user.Add(1)
					if _, err := g.Admit(ctx, ids[u%v.coupons], u, 1<<40); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := g.Stats()
			f := figures{
				rate:      float64(b.N) / b.Elapsed().Seconds(),
				clientCPU: (processCPU() - cpu0).Seconds() * 1e6 / float64(b.N),
				redisCPU:  (redisCPU(b, client) - rcpu0).Seconds() * 1e6 / float64(b.N),
				perCall:   admitter.Stats{Calls: st.Calls - st0.Calls, Users: st.Users - st0.Users}.UsersPerCall(),
			}
			b.ReportMetric(f.rate, "admits/s")
			b.ReportMetric(f.clientCPU, "client-cpu-µs/op")
			b.ReportMetric(f.redisCPU, "redis-cpu-µs/op")
			b.ReportMetric(f.perCall, "users/call")
			got[v.name] = f
		})
	}
	if len(got) == 0 {
		return
	}
	ctx := context.Background()
	plain, err := redisbench.AdmitCeiling(ctx, redisbench.Options{Addr: testenv.RedisAddr})
	if err != nil {
		b.Fatal(err)
	}
	piped, err := redisbench.AdmitCeiling(ctx, redisbench.Options{Addr: testenv.RedisAddr, Pipeline: 16})
	if err != nil {
		b.Fatal(err)
	}
	base := got["unbatched/coupons-1"].rate
	fmt.Printf("\nAdmit: %d goroutines, distinct users (GOMAXPROCS %d)\n", goroutines, runtime.GOMAXPROCS(0))
	fmt.Printf("  %-34s %10s %10s %10s %12s %12s %16s\n", "", "admits/s", "vs unbat.", "users/call", "client µs/op", "redis µs/op", "1/redis-cpu (/s)")
	for _, v := range variants {
		if f, ok := got[v.name]; ok {
			fmt.Printf("  %-34s %10.0f %9.2fx %10.1f %12.1f %12.1f %16.0f\n", v.name, f.rate, f.rate/max(base, 1), f.perCall, f.clientCPU, f.redisCPU, 1e6/f.redisCPU)
		}
	}
	fmt.Println("  Redis ceiling of the admission script (redis-benchmark EVALSHA, same script, random users):")
	fmt.Printf("  %-28s %10.0f\n", "-c 50 --threads 2", plain.OpsPerSec)
	fmt.Printf("  %-28s %10.0f\n", "-c 50 --threads 2 -P 16", piped.OpsPerSec)
	fmt.Println("  (1/redis-cpu is the rate one fully busy Redis core would sustain at that cost per admission)")
}

// processCPU is this process' user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the Redis server's main-thread user+system CPU time so far.
func redisCPU(tb testing.TB, c redis.UniversalClient) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkAdmitWaitReplicas measures what durability across a failover
// costs: the batched gate through the Sentinels of a private sentinel-shaped
// Redis (a primary, two replicas), without WAIT and with WAIT 1 after each
// pipeline (WaitReplicas 1), in the same run, alternating the variants so
// both see the same machine. It prints admits/s and the p50/p99 latency of
// one Admit call under 128 concurrent callers.
//
//	go test ./admitter -run x -bench AdmitWaitReplicas -benchtime 5s
func BenchmarkAdmitWaitReplicas(b *testing.B) {
	const goroutines = 128
	st := testenv.MustStartPrivateShape(b, testenv.Shape{RedisMode: stack.RedisSentinel}, stack.Redis)
	type figures struct {
		n       int
		elapsed time.Duration
		lat     []time.Duration
	}
	got := map[string]*figures{}
	order := []string{"no-wait", "wait-1"}
	for round := range 2 {
		for _, name := range order {
			b.Run(fmt.Sprintf("%s/round-%d", name, round+1), func(b *testing.B) {
				cfg := admitter.DefaultConfig()
				cfg.Addrs, cfg.MasterName, cfg.PoolSize = st.SentinelAddrs(), stack.SentinelMaster, goroutines
				if name == "wait-1" {
					cfg.WaitReplicas = 1
				}
				g, err := admitter.New(cfg, testenv.Logger(b))
				if err != nil {
					b.Fatal(err)
				}
				defer g.Close()
				ctx := context.Background()
				id := testenv.RandomCouponID()
				if err := g.Init(ctx, id, 1<<40); err != nil {
					b.Fatal(err)
				}
				var user atomic.Int64
				lat := testenv.ParallelLatencies(b, goroutines, func() error {
					_, err := g.Admit(ctx, id, user.Add(1), 1<<40)
					return err
				})
				f := got[name]
				if f == nil {
					f = &figures{}
					got[name] = f
				}
				f.n += b.N
				f.elapsed += b.Elapsed()
				f.lat = append(f.lat, lat...)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "admits/s")
			})
		}
	}
	if len(got) < 2 {
		return
	}
	fmt.Printf("\nAdmit through the Sentinels (primary + 2 replicas, loopback), %d goroutines, batched, GOMAXPROCS %d\n", goroutines, runtime.GOMAXPROCS(0))
	fmt.Printf("  %-10s %10s %10s %10s %10s\n", "", "admits/s", "vs no-wait", "p50", "p99")
	base := float64(got["no-wait"].n) / got["no-wait"].elapsed.Seconds()
	for _, name := range order {
		f := got[name]
		slices.Sort(f.lat)
		rate := float64(f.n) / f.elapsed.Seconds()
		fmt.Printf("  %-10s %10.0f %9.2fx %10s %10s\n", name, rate, rate/base,
			f.lat[len(f.lat)/2].Round(time.Microsecond), f.lat[len(f.lat)*99/100].Round(time.Microsecond))
	}
}
