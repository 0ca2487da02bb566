package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/mysql"
)

// Target is the system under load: a gateway (with its sinker behind it)
// and the MySQL database it writes, read to verify.
type Target struct {
	BaseURL    string
	AdminToken string
	DB         *mysql.DB
	// CeilingURL is the HTTP ceiling server (gateway.NewCeiling) that
	// Ceiling phases load instead of the gateway ("": none).
	CeilingURL string
	// CPU, when set, is sampled at each phase's start and after its sink
	// drained: the phase's CPU per accepted request, by process.
	CPU *CPUProbe
	// Counters, when set, reads the gateway's batching counters at the
	// same moments (see GatewayCounters).
	Counters func(context.Context) (GatewayCounters, error)
	// GCLogs are the Kafka brokers' GC logs (stack.GCLogName), read for
	// the pauses within each phase (nil: not reported).
	GCLogs []string
}

// GatewayCounters are the gateway's batching counters: produce requests
// and the records they carried, admit script calls and the users they
// carried (coupon_gateway_kafka_* and coupon_gateway_gate_* metrics).
type GatewayCounters struct {
	ProduceRequests float64 `json:"produceRequests"`
	Records         float64 `json:"records"`
	ScriptCalls     float64 `json:"scriptCalls"`
	ScriptUsers     float64 `json:"scriptUsers"`
}

// Batching is what a phase's batching looked like in the gateway.
type Batching struct {
	RecordsPerRequest float64 `json:"recordsPerProduceRequest"`
	UsersPerCall      float64 `json:"usersPerScriptCall"`
}

// batching returns the per-request figures between two counter readings.
func batching(before, after GatewayCounters) *Batching {
	b := &Batching{}
	if n := after.ProduceRequests - before.ProduceRequests; n > 0 {
		b.RecordsPerRequest = (after.Records - before.Records) / n
	}
	if n := after.ScriptCalls - before.ScriptCalls; n > 0 {
		b.UsersPerCall = (after.ScriptUsers - before.ScriptUsers) / n
	}
	return b
}

// CreateCoupon creates a coupon through the admin API and returns its ID.
func (t Target) CreateCoupon(ctx context.Context, name string, total int64, strategy coupon.Strategy) (int64, error) {
	body, _ := json.Marshal(map[string]any{"name": name, "totalQuantity": total, "strategy": strategy})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.BaseURL+"/v1/coupons", bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("create coupon: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("create coupon: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("create coupon: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var out struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.ID <= 0 {
		return 0, fmt.Errorf("create coupon: unexpected answer %s", bytes.TrimSpace(b))
	}
	return out.ID, nil
}

// WarmUp issues one async request on a fresh coupon and waits until its row
// is in MySQL: the gateway's connections, the sinker's consumer-group join
// and partition assignment are then done before anything is measured.
func (t Target) WarmUp(ctx context.Context, within time.Duration) error {
	id, err := t.CreateCoupon(ctx, "bench warm-up", 1, coupon.StrategyAsync)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/v1/coupons/%d/issues", t.BaseURL, id), strings.NewReader(`{"userId":1}`))
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("warm-up issue: %w", err)
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("warm-up issue: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	deadline := time.Now().Add(within)
	for {
		n, err := IssuedCount(ctx, t.DB, []int64{id})
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if n == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: the sinker wrote no row within %s", within)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// PhaseSpec is one measured phase: fresh coupons of one strategy, a load.
type PhaseSpec struct {
	Name     string          `json:"name"`
	Strategy coupon.Strategy `json:"strategy"`
	Coupons  int             `json:"coupons"` // fresh coupons, each of Supply
	Supply   int64           `json:"supply"`
	// Load's BaseURL, Strategy and Coupons are filled in by RunPhase.
	Load Load `json:"-"`
	// InTable puts the phase in the strategy comparison table.
	InTable bool `json:"inTable"`
	// DrainTimeout bounds the wait for the sinker to write every accepted
	// request after the load (async); 0 means one minute.
	DrainTimeout time.Duration `json:"-"`
	// Ceiling phases load Target.CeilingURL: no coupon is created and
	// nothing is verified (Coupons are made-up IDs 1..Coupons).
	Ceiling bool `json:"ceiling,omitempty"`
}

// Model names the load model of a phase.
func (p PhaseSpec) Model() string {
	if p.Load.Rate > 0 {
		return fmt.Sprintf("open %.0f req/s", p.Load.Rate)
	}
	return fmt.Sprintf("closed c=%d", p.Load.Concurrency)
}

// Sink describes how the accepted requests reached MySQL.
type Sink struct {
	Rows int64 `json:"rows"`
	// RowsPerSec is the accepted requests over the time from the phase
	// start until MySQL held a row for each: how fast accepted requests
	// became rows, end to end (for the baselines, the accepted rate).
	RowsPerSec float64 `json:"rowsPerSec"`
	// WriterRowsPerSec is rows over the span of their issued_at timestamps
	// (the writer's active window on the database's clock; 0 when every
	// row went in one transaction).
	WriterRowsPerSec float64 `json:"writerRowsPerSec"`
	// Drain is the time from the last answer until MySQL held a row for
	// every accepted request (0 for the synchronous baselines).
	Drain   time.Duration `json:"drainNs"`
	Drained bool          `json:"drained"`
}

// PhaseResult is one phase's outcome, measured and verified.
type PhaseResult struct {
	Spec      PhaseSpec `json:"spec"`
	Model     string    `json:"model"`
	Requests  int       `json:"requests"`
	DupShare  float64   `json:"dupShare"`
	CouponIDs []int64   `json:"couponIds"`
	Stats     Stats     `json:"stats"`
	Sink      Sink      `json:"sink"`
	Verdict   Verdict   `json:"verdict"`
	DB        []DBState `json:"db"`
	CPU       *CPUCost  `json:"cpu,omitempty"`
	Batching  *Batching `json:"batching,omitempty"`
	BrokerGC  *GCPauses `json:"brokerGC,omitempty"`
}

// RunPhase creates the phase's coupons, drives the load, waits for the sink
// to drain, and verifies the result against MySQL. say gets progress lines.
func RunPhase(ctx context.Context, t Target, spec PhaseSpec, say func(format string, args ...any)) (*PhaseResult, error) {
	if spec.Ceiling {
		return runCeiling(ctx, t, spec)
	}
	res := &PhaseResult{Spec: spec, Model: spec.Model(), Requests: spec.Load.Requests, DupShare: spec.Load.DupShare}
	for i := range max(spec.Coupons, 1) {
		id, err := t.CreateCoupon(ctx, fmt.Sprintf("bench %s #%d", spec.Name, i+1), spec.Supply, spec.Strategy)
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", spec.Name, err)
		}
		res.CouponIDs = append(res.CouponIDs, id)
	}
	l := spec.Load
	l.BaseURL, l.Strategy, l.Coupons = t.BaseURL, spec.Strategy, res.CouponIDs
	m := t.measure(ctx)
	// Poll the phase's issued count in MySQL while the load runs and after, until
	// every accepted request has its row: when that happened gives the
	// persisted rate and the drain time, on the client's clock.
	type poll struct {
		at   time.Time
		rows int64
	}
	var (
		mu      sync.Mutex
		polls   []poll
		pollErr error
	)
	pollCtx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			n, err := IssuedCount(pollCtx, t.DB, res.CouponIDs)
			mu.Lock()
			if err != nil && pollCtx.Err() == nil {
				pollErr = err
			}
			if err == nil {
				polls = append(polls, poll{time.Now(), n})
			}
			mu.Unlock()
			if pause(pollCtx, 25*time.Millisecond) != nil {
				return
			}
		}
	}()
	r, err := Run(ctx, l)
	if err != nil {
		stopPolling()
		<-polled
		return nil, fmt.Errorf("phase %s: %w", spec.Name, err)
	}
	loadEnd := r.Start.Add(r.Elapsed)
	res.Stats = Summarize(r)

	timeout := spec.DrainTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := time.Now().Add(timeout)
	var drainedAt time.Time
	for drainedAt.IsZero() {
		mu.Lock()
		for _, p := range polls {
			if p.rows >= res.Stats.Accepted {
				drainedAt = p.at
				break
			}
		}
		n, perr := int64(-1), pollErr
		if len(polls) > 0 {
			n = polls[len(polls)-1].rows
		}
		mu.Unlock()
		if perr != nil {
			stopPolling()
			<-polled
			return nil, fmt.Errorf("phase %s: %w", spec.Name, perr)
		}
		if !drainedAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			say("  sink did not drain within %s: %d of %d accepted rows in MySQL", timeout, n, res.Stats.Accepted)
			break
		}
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			stopPolling()
			<-polled
			return nil, err
		}
	}
	stopPolling()
	<-polled
	res.CPU, res.Batching, res.BrokerGC = m.done(ctx, res.Stats.Accepted)
	if !drainedAt.IsZero() {
		res.Sink.Drained = true
		if spec.Strategy == coupon.StrategyAsync {
			res.Sink.Drain = max(0, drainedAt.Sub(loadEnd))
			res.Sink.RowsPerSec = perSec(res.Stats.Accepted, drainedAt.Sub(r.Start))
		} else {
			// Rows are committed before the answer: persisted as accepted.
			res.Sink.RowsPerSec = res.Stats.AcceptedPerSec
		}
	}

	var first, last time.Time
	for _, id := range res.CouponIDs {
		st, err := Collect(ctx, t.DB, id)
		if err != nil {
			return nil, fmt.Errorf("phase %s: verify: %w", spec.Name, err)
		}
		res.DB = append(res.DB, st)
		res.Sink.Rows += st.Rows
		if st.Rows > 0 {
			if first.IsZero() || st.FirstIssued.Before(first) {
				first = st.FirstIssued
			}
			if st.LastIssued.After(last) {
				last = st.LastIssued
			}
		}
	}
	if span := last.Sub(first); span > 0 {
		res.Sink.WriterRowsPerSec = float64(res.Sink.Rows) / span.Seconds()
	}
	res.Verdict = Verify(res.DB, res.Stats.AcceptedUsers)
	return res, nil
}

// runCeiling drives a Ceiling phase.
func runCeiling(ctx context.Context, t Target, spec PhaseSpec) (*PhaseResult, error) {
	if t.CeilingURL == "" {
		return nil, fmt.Errorf("phase %s: no ceiling server", spec.Name)
	}
	res := &PhaseResult{Spec: spec, Model: spec.Model(), Requests: spec.Load.Requests, DupShare: spec.Load.DupShare, Sink: Sink{Drained: true}}
	l := spec.Load
	l.BaseURL, l.Strategy = t.CeilingURL, ""
	for i := range max(spec.Coupons, 1) {
		l.Coupons = append(l.Coupons, int64(i+1))
	}
	m := t.measure(ctx)
	r, err := Run(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("phase %s: %w", spec.Name, err)
	}
	res.Stats = Summarize(r)
	res.CPU, _, res.BrokerGC = m.done(ctx, res.Stats.Accepted)
	return res, nil
}

// measurement is a phase's CPU and counter readings at its start.
type measurement struct {
	t        Target
	start    time.Time
	cpu      CPUSample
	counters *GatewayCounters
}

func (t Target) measure(ctx context.Context) measurement {
	m := measurement{t: t, start: time.Now()}
	if t.CPU != nil {
		m.cpu = t.CPU.Sample()
	}
	if t.Counters != nil {
		if c, err := t.Counters(ctx); err == nil {
			m.counters = &c
		}
	}
	return m
}

// done returns the phase's CPU cost, batching and broker GC pauses since
// the start (nil for what is not measured).
func (m measurement) done(ctx context.Context, accepted int64) (*CPUCost, *Batching, *GCPauses) {
	var cpu *CPUCost
	var b *Batching
	var gc *GCPauses
	if len(m.t.GCLogs) > 0 {
		if g, err := ReadGCPauses(m.t.GCLogs, m.start, time.Now()); err == nil {
			gc = &g
		}
	}
	if m.t.CPU != nil {
		c := Cost(m.cpu, m.t.CPU.Sample(), accepted)
		cpu = &c
	}
	if m.counters != nil {
		if c, err := m.t.Counters(ctx); err == nil {
			b = batching(*m.counters, c)
		}
	}
	return cpu, b, gc
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
