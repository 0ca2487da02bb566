package gateway

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series. A nil *metrics records
// nothing.
type metrics struct {
	requests  *prometheus.CounterVec   // route, strategy, code
	duration  *prometheus.HistogramVec // route
	inflight  atomic.Int64             // coupon_gateway_inflight_requests (a GaugeFunc of it)
	redis     prometheus.Histogram
	publish   prometheus.Histogram
	pubErrors *prometheus.CounterVec // kind
	gateErrs  prometheus.Counter
	ready     *prometheus.GaugeVec    // check
	drops     [4]*prometheus.GaugeVec // coupon: supply, admitted, issued, sinker lag

	// children are the resolved series of each (route, strategy, code)
	// seen, so the hot path neither hashes label values nor takes a lock:
	// the map is never changed once stored; a new combination stores a
	// copy with it (under mu).
	children atomic.Pointer[map[requestKey]requestSeries]
	mu       sync.Mutex
}

type requestKey struct {
	route, strategy string
	code            int
}

// requestSeries are the series one finished request updates.
type requestSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// latencyBuckets cover 100µs to 10s.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coupon_gateway_requests_total",
			Help: "HTTP requests by route pattern, coupon strategy (issue routes) and HTTP status code.",
		}, []string{"route", "strategy", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coupon_gateway_request_duration_seconds",
			Help:    "Whole-request latency by route pattern.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		redis: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coupon_gateway_redis_duration_seconds",
			Help:    "Latency of the admission script call.",
			Buckets: latencyBuckets,
		}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coupon_gateway_publish_duration_seconds",
			Help:    "Latency of one Kafka publish until acknowledged (or failed).",
			Buckets: latencyBuckets,
		}),
		pubErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coupon_gateway_publish_errors_total",
			Help: "Failed publishes by kind: failed (certainly not in the topic, slot released) or unknown (slot kept, pending).",
		}, []string{"kind"}),
		gateErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coupon_gateway_gate_errors_total",
			Help: "Admissions the gate could not decide (Redis unreachable or slow, or the coupon's gate state lost): answered 503.",
		}),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coupon_gateway_ready_check",
			Help: "Last /readyz result per dependency check: 1 reachable, 0 failing.",
		}, []string{"check"}),
	}
	m.children.Store(&map[requestKey]requestSeries{})
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "coupon_gateway_inflight_requests",
		Help: "Requests being served.",
	}, func() float64 { return float64(m.inflight.Load()) })
	for i, opts := range [len(m.drops)]prometheus.GaugeOpts{
		{Name: "coupon_gateway_drop_supply", Help: "Total quantity of each coupon watched live (GET /v1/coupons/{id}/live in the last 5 minutes)."},
		{Name: "coupon_gateway_drop_admitted", Help: "Admitted users (gate) of each coupon watched live."},
		{Name: "coupon_gateway_drop_issued", Help: "Issued rows (MySQL) of each coupon watched live."},
		{Name: "coupon_gateway_drop_sinker_lag", Help: "Records the sinkers have not committed on the partition of each coupon watched live."},
	} {
		m.drops[i] = prometheus.NewGaugeVec(opts, []string{"coupon"})
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.duration, inflight, m.redis, m.publish, m.pubErrors, m.gateErrs, m.ready,
		m.drops[0], m.drops[1], m.drops[2], m.drops[3],
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, kind := range []string{"failed", "unknown"} {
		m.pubErrors.WithLabelValues(kind)
	}
	return m, nil
}

// request records one finished request.
func (m *metrics) request(route, strategy string, code int, start time.Time) {
	if m == nil {
		return
	}
	k := requestKey{route, strategy, code}
	rs, ok := (*m.children.Load())[k]
	if !ok {
		rs = m.resolve(k)
	}
	rs.count.Inc()
	rs.duration.Observe(time.Since(start).Seconds())
}

// resolve returns k's series, adding them to the children.
func (m *metrics) resolve(k requestKey) requestSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.children.Load()
	if rs, ok := old[k]; ok {
		return rs
	}
	rs := requestSeries{
		count:    m.requests.WithLabelValues(k.route, k.strategy, strconv.Itoa(k.code)),
		duration: m.duration.WithLabelValues(k.route),
	}
	children := maps.Clone(old)
	children[k] = rs
	m.children.Store(&children)
	return rs
}

// inflightAdd counts requests being served.
func (m *metrics) inflightAdd(d int64) {
	if m != nil {
		m.inflight.Add(d)
	}
}

func (m *metrics) observeRedis(d time.Duration) {
	if m != nil {
		m.redis.Observe(d.Seconds())
	}
}

func (m *metrics) observePublish(d time.Duration) {
	if m != nil {
		m.publish.Observe(d.Seconds())
	}
}

func (m *metrics) publishError(kind string) {
	if m != nil {
		m.pubErrors.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) gateError() {
	if m != nil {
		m.gateErrs.Inc()
	}
}

// readiness records one round of readiness checks.
func (m *metrics) readiness(result map[string]string) {
	if m == nil {
		return
	}
	for name, state := range result {
		v := 0.0
		if state == "ok" {
			v = 1
		}
		m.ready.WithLabelValues(name).Set(v)
	}
}

// drop records a coupon's live view.
func (m *metrics) drop(v *liveView) {
	if m == nil {
		return
	}
	id := strconv.FormatInt(v.ID, 10)
	m.drops[0].WithLabelValues(id).Set(float64(v.Supply))
	m.drops[1].WithLabelValues(id).Set(float64(v.Admitted))
	m.drops[2].WithLabelValues(id).Set(float64(v.Issued))
	if v.SinkerLag != nil {
		m.drops[3].WithLabelValues(id).Set(float64(v.SinkerLag.Records))
	}
}

// forgetDrop removes a coupon nobody watches any more.
func (m *metrics) forgetDrop(couponID int64) {
	if m == nil {
		return
	}
	id := strconv.FormatInt(couponID, 10)
	for _, g := range m.drops {
		g.DeleteLabelValues(id)
	}
}
