package gateway_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/valyala/fasthttp"
)

// BenchmarkIssueHTTP drives the in-process gateway over loopback HTTP with
// a fasthttp client on many connections, for profiling (-cpuprofile) and a
// quick figure; the full load runs are `make bench`. Sub-benchmarks in the
// same run: healthz (the HTTP floor: no Redis, no Kafka), issue-nops (the
// whole issue handler on a no-op gate and publisher: the gateway's own
// ceiling) and issue-async (gate + publish, 202 only after the Kafka ack),
// each to a fresh user; then issue-async with 0 and with 50 viewers polling
// the coupon's live view once a second (50 open drop pages), alternated
// three times, and their mean rates' ratio; and live-view, the live view
// itself under the same load (what one poll costs).
//
//	go test ./gateway -run '^$' -bench IssueHTTP -benchtime 20000x
func BenchmarkIssueHTTP(b *testing.B) {
	h := mustStartGateway(b, harnessOpts{partitions: 3})
	id := h.createCoupon(map[string]any{"name": "bench", "totalQuantity": coupon.MaxTotalQuantity})
	addr := strings.TrimPrefix(h.url, "http://")
	clients := map[string]*fasthttp.HostClient{}
	clientFor := func(addr string) *fasthttp.HostClient {
		if clients[addr] == nil {
			clients[addr] = &fasthttp.HostClient{Addr: addr, MaxConns: 1024, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
		}
		return clients[addr]
	}
	users := atomic.Int64{}
	users.Store(testenv.RandomCouponID())
	issuePath := fmt.Sprintf("/v1/coupons/%d/issues", id)

	// run drives the requests and returns their rate and the test
	// process's CPU time per request, in µs (gateway, load generator and
	// viewers; Redis and Kafka are other processes).
	run := func(b *testing.B, method, path string, body func() []byte, want int) (perSec, cpuMicros float64) {
		var mu sync.Mutex
		var lat []time.Duration
		client := clientFor(addr)
		b.SetParallelism(128) // 128 × GOMAXPROCS concurrent requests
		b.ResetTimer()
		start, cpu0 := time.Now(), processCPU()
		b.RunParallel(func(pb *testing.PB) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			local := make([]time.Duration, 0, 1024)
			for pb.Next() {
				req.Reset()
				req.SetRequestURI("http://" + addr + path)
				req.Header.SetMethod(method)
				if body != nil {
					req.Header.SetContentType("application/json")
					req.SetBody(body())
				}
				t0 := time.Now()
				if err := client.Do(req, resp); err != nil {
					b.Errorf("%s %s: %v", method, path, err)
					return
				}
				local = append(local, time.Since(t0))
				if resp.StatusCode() != want {
					b.Errorf("%s %s: %d %s", method, path, resp.StatusCode(), resp.Body())
					return
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
		elapsed, cpu := time.Since(start), processCPU()-cpu0
		b.StopTimer()
		if len(lat) == 0 {
			return 0, 0
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-µs/req")
		b.ReportMetric(0, "ns/op") // wall time per op says little under RunParallel
		return float64(len(lat)) / elapsed.Seconds(), float64(cpu.Microseconds()) / float64(len(lat))
	}

	b.Run("healthz", func(b *testing.B) { run(b, "GET", "/healthz", nil, 200) })
	b.Run("issue-nops", func(b *testing.B) {
		nh := mustStartGateway(b, harnessOpts{deps: func(d *gateway.Deps) {
			d.Gate, d.Publisher = &nopGate{Gate: d.Gate}, nopPublisher{}
		}})
		nid := nh.createCoupon(map[string]any{"name": "bench-nops", "totalQuantity": coupon.MaxTotalQuantity})
		saved := addr
		addr = strings.TrimPrefix(nh.url, "http://")
		defer func() { addr = saved }()
		run(b, "POST", fmt.Sprintf("/v1/coupons/%d/issues", nid), func() []byte {
			return append(strconv.AppendInt([]byte(`{"userId":`), users.Add(1), 10), '}')
		}, 202)
	})
	issueBody := func() []byte {
		return append(strconv.AppendInt([]byte(`{"userId":`), users.Add(1), 10), '}')
	}
	b.Run("issue-async", func(b *testing.B) { run(b, "POST", issuePath, issueBody, 202) })

	// The same issue load with 50 drop pages open on the coupon, each
	// polling its live view once a second like the page does, against none:
	// alternated three times in this run, so both meet the same machine.
	var rates, cpus [2][]float64
	for range 3 {
		for i, viewers := range []int{0, 50} {
			b.Run(fmt.Sprintf("issue-async-%d-viewers", viewers), func(b *testing.B) {
				stop := startViewers(b, h, id, viewers, time.Second)
				defer stop()
				if r, cpu := run(b, "POST", issuePath, issueBody, 202); b.N > 1 {
					rates[i], cpus[i] = append(rates[i], r), append(cpus[i], cpu)
				}
			})
		}
	}
	if len(rates[0]) > 0 && len(rates[1]) > 0 {
		b.Run("issue-async-50-viewers-vs-none", func(b *testing.B) {
			b.ReportMetric(mean(rates[1])/mean(rates[0]), "req/s-ratio")
			b.ReportMetric(mean(cpus[1])/mean(cpus[0]), "cpu/req-ratio")
			b.ReportMetric(0, "ns/op")
		})
	}
	// One poll's own cost: the live view served from its shared copy.
	b.Run("live-view", func(b *testing.B) { run(b, "GET", fmt.Sprintf("/v1/coupons/%d/live", id), nil, 200) })
}

// startViewers starts n pollers of the coupon's live view, each asking
// once per interval on its own connection, like n open drop pages; stop
// ends them and reports the polls made.
func startViewers(b *testing.B, h *harness, couponID int64, n int, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var polls atomic.Int64
	path := fmt.Sprintf("/v1/coupons/%d/live", couponID)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &fasthttp.HostClient{Addr: strings.TrimPrefix(h.url, "http://"), MaxConns: 1}
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				code, body, err := client.Get(nil, h.url+path)
				if err != nil || code != 200 {
					b.Errorf("viewer: GET %s: %d %v %s", path, code, err, body)
					return
				}
				polls.Add(1)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		b.ReportMetric(float64(polls.Load()), "viewer-polls")
	}
}

// nopGate admits everyone at once (Init and reads go to the real gate).
type nopGate struct {
	coupon.Gate
	rank atomic.Int64
}

func (g *nopGate) Admit(context.Context, int64, int64, int64) (int64, error) {
	return g.rank.Add(1), nil
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, coupon.Admission) error { return nil }

// mean is the mean of xs (not empty).
func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
