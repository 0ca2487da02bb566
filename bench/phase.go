package bench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coupondrop/coupon"
)

// Target is the system under load: a gateway (with its sinker behind it)
// and the MySQL database it writes, read to verify.
type Target struct {
	BaseURL    string
	AdminToken string
	DB         *sql.DB
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
	// RowsPerSec is rows over the span of their issued_at timestamps (the
	// writer's active window, read from MySQL).
	RowsPerSec float64 `json:"rowsPerSec"`
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
}

// RunPhase creates the phase's coupons, drives the load, waits for the sink
// to drain, and verifies the result against MySQL. say gets progress lines.
func RunPhase(ctx context.Context, t Target, spec PhaseSpec, say func(format string, args ...any)) (*PhaseResult, error) {
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
	r, err := Run(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("phase %s: %w", spec.Name, err)
	}
	loadEnd := r.Start.Add(r.Elapsed)
	res.Stats = Summarize(r)

	// Wait until MySQL holds a row for every accepted request (at once for
	// the baselines, after the sink caught up for async).
	timeout := spec.DrainTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		n, err := CountRows(ctx, t.DB, res.CouponIDs)
		if err != nil {
			return nil, fmt.Errorf("phase %s: %w", spec.Name, err)
		}
		if n >= res.Stats.Accepted {
			res.Sink.Drained = true
			res.Sink.Drain = max(0, time.Since(loadEnd))
			if spec.Strategy != coupon.StrategyAsync {
				res.Sink.Drain = 0 // rows are committed before the answer
			}
			break
		}
		if time.Now().After(deadline) {
			say("  sink did not drain within %s: %d of %d accepted rows in MySQL", timeout, n, res.Stats.Accepted)
			break
		}
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return nil, err
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
		res.Sink.RowsPerSec = float64(res.Sink.Rows) / span.Seconds()
	}
	res.Verdict = Verify(res.DB, res.Stats.AcceptedUsers)
	return res, nil
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
