// Package bench drives issue requests at a gateway (open or closed model),
// verifies the outcome against MySQL and reports the strategies side by side.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/valyala/fasthttp"
)

// Load describes one load phase against one gateway.
type Load struct {
	BaseURL  string          // gateway, like http://127.0.0.1:8080
	Strategy coupon.Strategy // sent as ?strategy=
	Coupons  []int64         // request i goes to Coupons[i % len]: one hot coupon or many

	Requests int     // how many requests to send
	Rate     float64 // open model: requests per second (constant arrival rate); 0 = closed model
	// Concurrency is the closed model's number of workers, each with one
	// request in flight; in the open model it caps requests in flight
	// (late ones wait, and their wait counts in their latency).
	Concurrency int
	MaxDuration time.Duration // stop sending after this long (0: no bound)
	Timeout     time.Duration // per request

	// Users: request i is from a fresh user UserBase+k, except a DupShare
	// fraction that repeats an earlier request's user.
	UserBase int64
	DupShare float64
	Seed     uint64

	// Progress, when set, is called about every 100ms while the phase runs
	// and once at the end.
	Progress func(Progress)
}

// Progress is a snapshot of a running phase.
type Progress struct {
	Sent, Done, Accepted int64
	Elapsed              time.Duration
}

// Sample is one request's outcome. Times are offsets from the phase start;
// Latency runs from the request's scheduled send time (open model) or its
// actual send time (closed model) to the end of the answer, so time spent
// queued behind a slow server is counted (no coordinated omission).
type Sample struct {
	CouponID  int64
	UserID    int64
	Scheduled time.Duration
	Latency   time.Duration
	Status    int // HTTP status; 0 for a transport error or timeout
}

// Done is when the answer arrived, relative to the phase start.
func (s Sample) Done() time.Duration { return s.Scheduled + s.Latency }

// Accepted reports a 2xx answer.
func (s Sample) Accepted() bool { return s.Status >= 200 && s.Status < 300 }

// Result is every request's sample, in request order (unsent ones dropped).
type Result struct {
	Load    Load
	Start   time.Time
	Elapsed time.Duration // until the last answer
	Samples []Sample
}

// Validate checks a Load.
func (l Load) Validate() error {
	switch {
	case l.BaseURL == "":
		return errors.New("load: base URL is empty")
	case len(l.Coupons) == 0:
		return errors.New("load: no coupons")
	case l.Requests < 1:
		return errors.New("load: requests must be at least 1")
	case l.Concurrency < 1:
		return errors.New("load: concurrency must be at least 1")
	case l.Rate < 0:
		return errors.New("load: rate must not be negative")
	case l.DupShare < 0 || l.DupShare >= 1:
		return errors.New("load: duplicate share must be in [0, 1)")
	case l.UserBase < 0:
		return errors.New("load: user base must not be negative")
	}
	return nil
}

// Plan returns the (coupon, user) of every request: distinct users except a
// DupShare fraction repeating an earlier user of the same coupon. Pure.
func (l Load) Plan() []Sample {
	rng := rand.New(rand.NewPCG(l.Seed, 0x5eed))
	out := make([]Sample, l.Requests)
	byCoupon := make(map[int64][]int64, len(l.Coupons))
	next := l.UserBase
	for i := range out {
		c := l.Coupons[i%len(l.Coupons)]
		prev := byCoupon[c]
		var u int64
		if len(prev) > 0 && rng.Float64() < l.DupShare {
			u = prev[rng.IntN(len(prev))]
		} else {
			next++
			u = next
			byCoupon[c] = append(prev, u)
		}
		out[i] = Sample{CouponID: c, UserID: u}
	}
	return out
}

// Run sends the load and returns every answer. It stops early when ctx ends
// or MaxDuration passes; the samples of requests never sent are dropped.
func Run(ctx context.Context, l Load) (*Result, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	addr, err := hostOf(l.BaseURL)
	if err != nil {
		return nil, err
	}
	client := &fasthttp.HostClient{
		Addr:                addr,
		MaxConns:            l.Concurrency,
		MaxIdleConnDuration: 30 * time.Second,
		ReadTimeout:         l.Timeout,
		WriteTimeout:        l.Timeout,
		MaxConnWaitTimeout:  l.Timeout,
		// Reuse the most recent idle connection: a few hot connections
		// rather than cycling through hundreds of cold ones.
		ConnPoolStrategy: fasthttp.LIFO,
		Dial: func(a string) (net.Conn, error) {
			return fasthttp.DialTimeout(a, 5*time.Second)
		},
	}
	defer client.CloseIdleConnections()

	// Open the connections before the clock starts (GET /healthz from every
	// worker at once): dialing hundreds of them mid-run would be measured
	// as the server's latency.
	warm(client, l)

	samples := l.Plan()
	for i := range samples {
		samples[i].Status = unsent
	}
	var sent, done, accepted atomic.Int64
	start := time.Now()
	stopAt := time.Time{}
	if l.MaxDuration > 0 {
		stopAt = start.Add(l.MaxDuration)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	do := func(i int, scheduled time.Time) {
		s := &samples[i]
		s.Scheduled = scheduled.Sub(start)
		s.Status = send(client, l, s.CouponID, s.UserID)
		s.Latency = time.Since(scheduled)
		done.Add(1)
		if s.Accepted() {
			accepted.Add(1)
		}
	}

	// Progress ticker.
	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	report := func() {
		if l.Progress != nil {
			l.Progress(Progress{Sent: sent.Load(), Done: done.Load(), Accepted: accepted.Load(), Elapsed: time.Since(start)})
		}
	}
	progWG.Add(1)
	go func() {
		defer progWG.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-progDone:
				return
			}
		}
	}()

	var wg sync.WaitGroup
	if l.Rate > 0 {
		// Open model: a scheduler releases request i at start + i/rate;
		// workers pick them up. A request waiting for a free worker keeps
		// its scheduled time, so the wait is part of its latency.
		type job struct {
			i   int
			due time.Time
		}
		jobs := make(chan job, l.Requests)
		for range l.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					do(j.i, j.due)
				}
			}()
		}
		interval := float64(time.Second) / l.Rate
	schedule:
		for i := 0; i < l.Requests; {
			now := time.Now()
			if ctx.Err() != nil || (!stopAt.IsZero() && now.After(stopAt)) {
				break
			}
			for ; i < l.Requests; i++ {
				due := start.Add(time.Duration(float64(i) * interval))
				if due.After(now) {
					break
				}
				jobs <- job{i, due}
				sent.Add(1)
			}
			if i < l.Requests {
				wait := time.Until(start.Add(time.Duration(float64(i) * interval)))
				if wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						break schedule
					}
				}
			}
		}
		close(jobs)
	} else {
		// Closed model: each worker sends its next request when the last
		// one was answered.
		var next atomic.Int64
		for range l.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= l.Requests {
						return
					}
					now := time.Now()
					if !stopAt.IsZero() && now.After(stopAt) {
						return
					}
					sent.Add(1)
					do(i, now)
				}
			}()
		}
	}
	wg.Wait()
	close(progDone)
	progWG.Wait()
	report()

	res := &Result{Load: l, Start: start, Samples: samples[:0]}
	for _, s := range samples {
		if s.Status != unsent {
			res.Samples = append(res.Samples, s)
			res.Elapsed = max(res.Elapsed, s.Done())
		}
	}
	return res, ctx.Err()
}

// unsent marks a planned request that was never sent.
const unsent = -1

// send posts one issue request and returns the HTTP status (0 on a
// transport error or timeout).
func send(c *fasthttp.HostClient, l Load, couponID, userID int64) int {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	uri := make([]byte, 0, 96)
	uri = append(uri, l.BaseURL...)
	uri = append(uri, "/v1/coupons/"...)
	uri = strconv.AppendInt(uri, couponID, 10)
	uri = append(uri, "/issues"...)
	if l.Strategy != "" {
		uri = append(uri, "?strategy="...)
		uri = append(uri, l.Strategy...)
	}
	req.SetRequestURIBytes(uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	body := make([]byte, 0, 40)
	body = append(body, `{"userId":`...)
	body = strconv.AppendInt(body, userID, 10)
	body = append(body, '}')
	req.SetBodyRaw(body)
	if err := c.DoTimeout(req, resp, l.Timeout); err != nil {
		return 0
	}
	return resp.StatusCode()
}

// warm has Concurrency requests in flight at once, each on its own connection.
func warm(c *fasthttp.HostClient, l Load) {
	var wg sync.WaitGroup
	for range l.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(l.BaseURL + "/healthz")
			_ = c.DoTimeout(req, resp, l.Timeout)
		}()
	}
	wg.Wait()
}

// hostOf returns host:port of an http:// base URL.
func hostOf(base string) (string, error) {
	var u fasthttp.URI
	if err := u.Parse(nil, []byte(base)); err != nil {
		return "", fmt.Errorf("base URL %q: %w", base, err)
	}
	if string(u.Scheme()) != "http" {
		return "", fmt.Errorf("base URL %q: only http:// is supported", base)
	}
	host := string(u.Host())
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, "80")
	}
	return host, nil
}
