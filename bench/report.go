package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coupondrop/coupon"
)

// Reference is one figure of the seed study, printed beside ours.
type Reference struct {
	Label      string          `json:"label"`
	Strategy   coupon.Strategy `json:"strategy,omitempty"` // the strategy of ours it corresponds to
	Path       string          `json:"path,omitempty"`     // the seed's name for it, in ratios
	ReqPerSec  float64         `json:"reqPerSec,omitempty"`
	RowsPerSec float64         `json:"rowsPerSec,omitempty"`
}

// SeedReferences are the seed study's figures (locust, one laptop).
var SeedReferences = []Reference{
	{Label: "seed: direct RDBMS (db-lock)", Strategy: coupon.StrategyDBLock, Path: "direct RDBMS", ReqPerSec: 60},
	{Label: "seed: Redisson lock (redis-lock)", Strategy: coupon.StrategyRedisLock, Path: "Redisson lock", ReqPerSec: 100},
	{Label: "seed: Redis Lua gate + queue (async)", Strategy: coupon.StrategyAsync, Path: "queue", ReqPerSec: 2000},
	{Label: "seed: batch consumer (sink)", RowsPerSec: 560},
}

// Comparison is async's accepted req/s over one baseline's, this run's
// beside the seed's own ratio for the same pair of paths.
type Comparison struct {
	Baseline coupon.Strategy `json:"baseline"`
	Ratio    float64         `json:"ratio"` // this run: async / baseline accepted req/s (0: a phase is missing)
	// SeedRatio is the seed's queue req/s over its figure for the same
	// baseline (2000/60 for db-lock, 2000/100 for redis-lock); SeedLabel
	// says so in words.
	SeedRatio float64 `json:"seedRatio"`
	SeedLabel string  `json:"seedLabel"`
}

// Comparisons returns async against each baseline, with the seed's ratio
// for the same pair (none without the seed's figures).
func (r *Report) Comparisons() []Comparison {
	seed := map[coupon.Strategy]Reference{}
	for _, ref := range r.Seed {
		if ref.Strategy != "" && ref.ReqPerSec > 0 {
			seed[ref.Strategy] = ref
		}
	}
	queue, ok := seed[coupon.StrategyAsync]
	if !ok {
		return nil
	}
	var out []Comparison
	for _, s := range []coupon.Strategy{coupon.StrategyDBLock, coupon.StrategyRedisLock} {
		base, ok := seed[s]
		if !ok {
			continue
		}
		out = append(out, Comparison{Baseline: s, Ratio: r.Ratio(s), SeedRatio: queue.ReqPerSec / base.ReqPerSec,
			SeedLabel: fmt.Sprintf("%s / %s = %s / %s", queue.Path, base.Path, fmtRate(queue.ReqPerSec), fmtRate(base.ReqPerSec))})
	}
	return out
}

// String is the comparison as the table and the page print it.
func (c Comparison) String() string {
	ours := "not measured"
	if c.Ratio > 0 {
		ours = fmt.Sprintf("%.1fx", c.Ratio)
	}
	return fmt.Sprintf("async / %s accepted req/s: %s   (seed: %s = %.0fx)", c.Baseline, ours, c.SeedLabel, c.SeedRatio)
}

// MarshalJSON adds the comparisons and the goals to the report's fields.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		*plain
		Ratios []Comparison `json:"ratios"`
		Goals  []Goal       `json:"goals"`
	}{(*plain)(r), r.Comparisons(), r.Goals()})
}

// Phase names the goals read (couponctl bench's phases).
const (
	PhaseCeiling     = "ceiling"      // the HTTP ceiling, closed model
	PhaseAsync       = "async"        // one hot coupon, closed model
	PhaseAsyncMany   = "async-many"   // many coupons round robin, closed model
	PhaseAsyncOpen   = "async-open"   // one hot coupon, open model
	PhaseCeilingOpen = "ceiling-open" // the HTTP ceiling, open model at async-open's rate
)

// Goal is one ratio of two phases of this run with the value it should
// reach (issue 10): async over the HTTP ceiling, many coupons over one,
// and the open model's p99 over the ceiling's at the same offered rate.
type Goal struct {
	Name   string  `json:"name"`
	Of     string  `json:"of"`   // phase
	Over   string  `json:"over"` // phase
	What   string  `json:"what"` // "accepted req/s" or "p99"
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	AtMost bool    `json:"atMost"` // the goal is Value <= Target (else >=)
}

// Met reports whether the goal is reached.
func (g Goal) Met() bool {
	if g.AtMost {
		return g.Value <= g.Target
	}
	return g.Value >= g.Target
}

// String is the goal as the table prints it.
func (g Goal) String() string {
	op, verdict := ">=", "not reached"
	if g.AtMost {
		op = "<="
	}
	if g.Met() {
		verdict = "reached"
	}
	return fmt.Sprintf("%s: %s / %s %s = %.2f (goal %s %.2f: %s)", g.Name, g.Of, g.Over, g.What, g.Value, op, g.Target, verdict)
}

// byName returns the phase of that name, or nil.
func (r *Report) byName(name string) *PhaseResult {
	for _, p := range r.Phases {
		if p.Spec.Name == name {
			return p
		}
	}
	return nil
}

// Goals returns the goals whose two phases ran.
func (r *Report) Goals() []Goal {
	var out []Goal
	for _, g := range []Goal{
		{Name: "async / HTTP ceiling", Of: PhaseAsync, Over: PhaseCeiling, What: "accepted req/s", Target: 0.40},
		{Name: "many coupons / one hot coupon", Of: PhaseAsyncMany, Over: PhaseAsync, What: "accepted req/s", Target: 0.85},
		{Name: "open-model p99 / HTTP ceiling's", Of: PhaseAsyncOpen, Over: PhaseCeilingOpen, What: "p99", Target: 3, AtMost: true},
	} {
		of, over := r.byName(g.Of), r.byName(g.Over)
		if of == nil || over == nil {
			continue
		}
		a, b := of.Stats.AcceptedPerSec, over.Stats.AcceptedPerSec
		if g.What == "p99" {
			a, b = of.Stats.Latency.P99, over.Stats.Latency.P99
		}
		if b > 0 {
			g.Value = a / b
			out = append(out, g)
		}
	}
	return out
}

// Speed holds the async path's speed figures (issue 3) beside the rate of
// the admit script called once per user, measured in the same run.
type Speed struct {
	// MaxAccepted is the async closed-model phase's accepted req/s (202
	// only after the Kafka ack), at Concurrency.
	MaxAccepted float64 `json:"maxAcceptedPerSec"`
	Concurrency int     `json:"concurrency"`
	// Open is the open-model phase: offered rate, achieved, latency.
	OpenRate     float64 `json:"openRate"`
	OpenAchieved float64 `json:"openAchievedPerSec"`
	OpenLatency  Latency `json:"openLatency"`
	OpenErrors   int64   `json:"openErrors"`
	// EvalshaPerSec is redis-benchmark's EVALSHA rate of the admit script
	// (0 when it could not run; RedisNote says why).
	EvalshaPerSec float64 `json:"evalshaPerSec"`
	EvalshaP99    float64 `json:"evalshaP99Ms"`
	RedisNote     string  `json:"redisNote,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	Cores     int    `json:"cores"`
	GoVersion string `json:"goVersion"`
	LoadAvg   string `json:"loadAvg"` // /proc/loadavg before and after
	Host      string `json:"host"`
}

// Report is one bench run.
type Report struct {
	Started  time.Time      `json:"started"`
	Duration time.Duration  `json:"durationNs"`
	Command  string         `json:"command"`
	Machine  Machine        `json:"machine"`
	Phases   []*PhaseResult `json:"phases"`
	Seed     []Reference    `json:"seed"`
	Speed    *Speed         `json:"speed,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
}

// Phase returns the first table phase of the strategy, or nil.
func (r *Report) Phase(s coupon.Strategy) *PhaseResult {
	for _, p := range r.Phases {
		if p.Spec.InTable && p.Spec.Strategy == s {
			return p
		}
	}
	return nil
}

// Ratio returns async's accepted req/s over the strategy's (0 if either is missing).
func (r *Report) Ratio(s coupon.Strategy) float64 {
	a, b := r.Phase(coupon.StrategyAsync), r.Phase(s)
	if a == nil || b == nil || b.Stats.AcceptedPerSec == 0 {
		return 0
	}
	return a.Stats.AcceptedPerSec / b.Stats.AcceptedPerSec
}

// OK reports that every phase passed verification.
func (r *Report) OK() bool {
	for _, p := range r.Phases {
		if !p.Verdict.OK() || !p.Sink.Drained {
			return false
		}
	}
	return true
}

// Ratio is async max accepted req/s over redis-benchmark's EVALSHA rate of
// the admit script with one user per call. The gateway admits many users
// per script call, so the ratio can pass 1.
func (s *Speed) Ratio() float64 {
	if s == nil || s.EvalshaPerSec == 0 {
		return 0
	}
	return s.MaxAccepted / s.EvalshaPerSec
}

func check(n int64) string {
	if n == 0 {
		return "0 ok"
	}
	return fmt.Sprintf("%d FAIL", n)
}

func fmtRate(f float64) string {
	switch {
	case f == 0:
		return "-"
	case f >= 10:
		return fmt.Sprintf("%.0f", f)
	default:
		return fmt.Sprintf("%.1f", f)
	}
}

func blank0(f float64) string {
	if f == 0 {
		return ""
	}
	return fmtRate(f)
}

func fmtMs(f float64) string {
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

func fmtDrain(p *PhaseResult) string {
	switch {
	case !p.Sink.Drained:
		return "NOT DRAINED"
	case p.Spec.Strategy != coupon.StrategyAsync:
		return "0 (sync)"
	}
	return fmt.Sprintf("%.2f s", p.Sink.Drain.Seconds())
}

// WriteTable prints the comparison table, the seed's figures, the ratios
// and the speed figures.
func (r *Report) WriteTable(out io.Writer) {
	// Right-aligned columns; the first is padded so it reads left-aligned.
	nameW := len("strategy")
	for _, p := range r.Phases {
		nameW = max(nameW, len(p.Spec.Name))
	}
	for _, ref := range r.Seed {
		nameW = max(nameW, len(ref.Label))
	}
	name := func(s string) string { return fmt.Sprintf("%-*s", nameW, s) }
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, name("strategy")+"\tmodel\taccepted req/s\tp50 / p95 / p99 ms\terrors\trows persisted/s\tsink drain\tover-issued\tduplicates\taccepted = rows\t")
	for _, p := range r.Phases {
		s := p.Stats
		if p.Spec.Ceiling {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s / %s / %s\t%d\t-\t-\t-\t-\t(no system)\t\n", name(p.Spec.Name), p.Model, fmtRate(s.AcceptedPerSec),
				fmtMs(s.Latency.P50), fmtMs(s.Latency.P95), fmtMs(s.Latency.P99), s.Errors)
			continue
		}
		acc := fmt.Sprintf("%d = %d ok", p.Verdict.Accepted, p.Verdict.Rows)
		if !p.Verdict.AcceptedMatchesRows() {
			acc = fmt.Sprintf("%d != %d", p.Verdict.Accepted, p.Verdict.Rows)
			if p.Verdict.LostAccepted > 0 {
				acc += " FAIL"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s / %s / %s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", name(p.Spec.Name), p.Model, fmtRate(s.AcceptedPerSec),
			fmtMs(s.Latency.P50), fmtMs(s.Latency.P95), fmtMs(s.Latency.P99), s.Errors, fmtRate(p.Sink.RowsPerSec),
			fmtDrain(p), check(p.Verdict.OverIssued), check(p.Verdict.Duplicates), acc)
	}
	for _, ref := range r.Seed {
		fmt.Fprintf(w, "%s\t\t%s\t\t\t%s\t\t\t\t\t\n", name(ref.Label), blank0(ref.ReqPerSec), blank0(ref.RowsPerSec))
	}
	_ = w.Flush()
	fmt.Fprintln(out)
	for _, c := range r.Comparisons() {
		fmt.Fprintln(out, c)
	}
	if goals := r.Goals(); len(goals) > 0 {
		fmt.Fprintln(out)
		for _, g := range goals {
			fmt.Fprintln(out, g)
		}
	}
	var costs []string
	for _, p := range r.Phases {
		line := ""
		if p.Batching != nil && (p.Batching.RecordsPerRequest > 0 || p.Batching.UsersPerCall > 0) {
			line = fmt.Sprintf("  %.1f records per produce request, %.1f users per script call", p.Batching.RecordsPerRequest, p.Batching.UsersPerCall)
		}
		if p.BrokerGC != nil {
			line = "; " + p.BrokerGC.String() + line
		}
		if p.CPU != nil && p.CPU.MachinePerReq > 0 {
			line = "; " + p.CPU.String() + line
		}
		if line != "" {
			costs = append(costs, fmt.Sprintf("%-*s %s", nameW, p.Spec.Name, strings.TrimPrefix(line, "; ")))
		}
	}
	if len(costs) > 0 {
		fmt.Fprintln(out, "\nCPU per accepted request (machine and by process, µs; from /proc), broker GC pauses (from its GC log) and batching:")
		for _, c := range costs {
			fmt.Fprintln(out, c)
		}
	}
	if sp := r.Speed; sp != nil {
		fmt.Fprintln(out)
		if sp.MaxAccepted > 0 {
			fmt.Fprintf(out, "async max accepted (closed c=%d, 202 after Kafka ack): %s req/s\n", sp.Concurrency, fmtRate(sp.MaxAccepted))
		}
		if sp.OpenRate > 0 {
			fmt.Fprintf(out, "async open model %.0f req/s offered: %s req/s answered 2xx, p50 %s / p95 %s / p99 %s ms, %d errors\n",
				sp.OpenRate, fmtRate(sp.OpenAchieved), fmtMs(sp.OpenLatency.P50), fmtMs(sp.OpenLatency.P95), fmtMs(sp.OpenLatency.P99), sp.OpenErrors)
		}
		if sp.EvalshaPerSec > 0 {
			fmt.Fprintf(out, "redis-benchmark EVALSHA admit script, one user per call: %s ops/s (p99 %s ms); gateway / that rate: %.2f\n",
				fmtRate(sp.EvalshaPerSec), fmtMs(sp.EvalshaP99), sp.Ratio())
		} else if sp.RedisNote != "" {
			fmt.Fprintf(out, "redis-benchmark EVALSHA: not measured (%s)\n", sp.RedisNote)
		}
	}
	for _, p := range r.Phases {
		for _, pr := range p.Verdict.Problems {
			fmt.Fprintf(out, "VERIFY FAILED %s: %s\n", p.Spec.Name, pr)
		}
		if n := p.Verdict.RowsNotAccepted; n > 0 {
			fmt.Fprintf(out, "note %s: %d rows belong to requests not answered 2xx (unknown outcome to the client)\n", p.Spec.Name, n)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
}

// WriteFiles writes report.json and report.html into dir and returns their paths.
func (r *Report) WriteFiles(dir string) (jsonPath, htmlPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("results folder: %w", err)
	}
	jsonPath, htmlPath = filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("write report: %w", err)
	}
	var sb strings.Builder
	if err := r.WriteHTML(&sb); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(htmlPath, []byte(sb.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("write report: %w", err)
	}
	return jsonPath, htmlPath, nil
}
