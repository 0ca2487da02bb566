package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"

	"github.com/coupondrop/coupon"
)

// bar is one bar of a horizontal bar chart.
type bar struct {
	Label, Value string // Value is the printed figure
	V            float64
	Color        string
}

// group is a labelled set of bars drawn together.
type group struct {
	Label string
	Bars  []bar
}

var strategyColor = map[coupon.Strategy]string{
	coupon.StrategyDBLock:    "#d9822b",
	coupon.StrategyRedisLock: "#c23030",
	coupon.StrategyAsync:     "#2b6cb0",
}

const seedColor = "#a0aec0"

// scale maps values to bar lengths: linear from 0 (bar lengths compare
// like the values: twice the rate, twice the bar) or log10 (for figures
// spanning decades, like latency percentiles).
type scale struct {
	log    bool
	lo, hi float64 // linear: 0..hi; log: 10^lo..10^hi
	ticks  []float64
}

func newScale(log bool, groups []group) scale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		for _, b := range g.Bars {
			if b.V > 0 {
				lo, hi = math.Min(lo, b.V), math.Max(hi, b.V)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	if log {
		loE, hiE := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi*1.3)) // headroom for the value labels
		if hiE <= loE {
			hiE = loE + 1
		}
		sc := scale{log: true, lo: loE, hi: hiE}
		for e := loE; e <= hiE; e++ {
			sc.ticks = append(sc.ticks, math.Pow(10, e))
		}
		return sc
	}
	// A 1-2-5 step giving at most about six ticks.
	step := math.Pow(10, math.Floor(math.Log10(hi/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if hi/(step*m) <= 6 {
			step *= m
			break
		}
	}
	sc := scale{hi: math.Ceil(hi*1.15/step) * step}
	for v := 0.0; v <= sc.hi+step/2; v += step {
		sc.ticks = append(sc.ticks, v)
	}
	return sc
}

// frac returns where v lies on the axis, 0..1.
func (sc scale) frac(v float64) float64 {
	switch {
	case v <= 0:
		return 0
	case sc.log:
		return math.Max(0, (math.Log10(v)-sc.lo)/(sc.hi-sc.lo))
	}
	return v / sc.hi
}

// hbarChart draws groups of horizontal bars as inline SVG, on a linear
// axis from 0 unless logScale.
func hbarChart(title, unit string, logScale bool, groups []group) template.HTML {
	const labelW, valueW, plotW, barH, gap, top, groupGap = 260, 150, 560, 18, 4, 40, 10
	sc := newScale(logScale, groups)
	nBars, labelled := 0, 0
	for _, g := range groups {
		nBars += len(g.Bars)
		if g.Label != "" {
			labelled++
		}
	}
	height := top + nBars*(barH+gap) + labelled*(barH+gap) + len(groups)*groupGap + 44
	width := labelW + plotW + valueW
	var sb strings.Builder
	esc := template.HTMLEscapeString
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s" font-family="system-ui,sans-serif" font-size="12">`,
		width, height, width, height, esc(title))
	fmt.Fprintf(&sb, `<text x="0" y="16" font-size="15" font-weight="600">%s</text>`, esc(title))
	plotBottom := height - 38
	for _, v := range sc.ticks {
		gx := labelW + sc.frac(v)*plotW
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e2e8f0"/>`, gx, top-8, gx, plotBottom)
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="middle" fill="#4a5568">%s</text>`, gx, plotBottom+14, esc(axisLabel(v)))
	}
	axis := unit
	if logScale {
		axis += " (log scale)"
	}
	fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="middle" fill="#4a5568">%s</text>`, labelW+plotW/2.0, plotBottom+30, esc(axis))
	y := top
	for _, g := range groups {
		if g.Label != "" {
			fmt.Fprintf(&sb, `<text x="0" y="%d" font-weight="600">%s</text>`, y+barH-4, esc(g.Label))
			y += barH + gap
		}
		for _, b := range g.Bars {
			fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="end">%s</text>`, labelW-8, y+barH-5, esc(b.Label))
			w := 0.0
			if b.V > 0 {
				w = math.Max(2, sc.frac(b.V)*plotW) // a tiny figure stays visible
			}
			fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, labelW, y, w, barH, b.Color)
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d" fill="#1a202c">%s</text>`, float64(labelW)+w+6, y+barH-5, esc(b.Value))
			y += barH + gap
		}
		y += groupGap
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

func axisLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

// throughputChart draws this run's accepted req/s and rows persisted/s
// on a linear axis (bar lengths compare like the rates), each baseline's
// bar labelled with async's ratio to it.
func (r *Report) throughputChart() template.HTML {
	ratio := map[coupon.Strategy]float64{}
	for _, c := range r.Comparisons() {
		ratio[c.Baseline] = c.Ratio
	}
	var bars, sink []bar
	for _, p := range r.Phases {
		if !p.Spec.InTable {
			continue
		}
		v := fmtRate(p.Stats.AcceptedPerSec)
		if x := ratio[p.Spec.Strategy]; x > 0 {
			v += fmt.Sprintf(" (async %.1f×)", x)
		}
		bars = append(bars, bar{Label: p.Spec.Name + " (" + p.Model + ")", V: p.Stats.AcceptedPerSec, Value: v, Color: strategyColor[p.Spec.Strategy]})
		sink = append(sink, bar{Label: p.Spec.Name, V: p.Sink.RowsPerSec, Value: fmtRate(p.Sink.RowsPerSec), Color: strategyColor[p.Spec.Strategy]})
	}
	return hbarChart("Accepted requests and rows persisted per second, this run", "per second", false,
		[]group{{Label: "accepted req/s", Bars: bars}, {Label: "rows persisted/s", Bars: sink}})
}

// ratioChart draws the ratios themselves: async over each baseline, this
// run beside the seed's own ratio for the same pair, on a linear axis.
func (r *Report) ratioChart() template.HTML {
	var gs []group
	for _, c := range r.Comparisons() {
		gs = append(gs, group{Label: "async / " + string(c.Baseline), Bars: []bar{
			{Label: "this run", V: c.Ratio, Value: fmt.Sprintf("%.1f×", c.Ratio), Color: strategyColor[c.Baseline]},
			{Label: "seed: " + c.SeedLabel, V: c.SeedRatio, Value: fmt.Sprintf("%.1f×", c.SeedRatio), Color: seedColor},
		}})
	}
	return hbarChart("How many times async's accepted req/s, this run and the seed", "ratio (×)", false, gs)
}

// goalCharts draws each goal's ratio beside its target, one chart per goal
// on its own linear axis from 0 (the bars compare like the ratios).
func (r *Report) goalCharts() []template.HTML {
	var out []template.HTML
	for _, g := range r.Goals() {
		color := "#c53030"
		if g.Met() {
			color = "#276749"
		}
		op := "≥"
		if g.AtMost {
			op = "≤"
		}
		out = append(out, hbarChart(fmt.Sprintf("%s (%s / %s, %s)", g.Name, g.Of, g.Over, g.What), "ratio", false, []group{{Label: g.Name, Bars: []bar{
			{Label: "this run", V: g.Value, Value: fmt.Sprintf("%.2f", g.Value), Color: color},
			{Label: "goal " + op, V: g.Target, Value: fmt.Sprintf("%.2f", g.Target), Color: seedColor},
		}}}))
	}
	return out
}

func (r *Report) latencyChart() template.HTML {
	var gs []group
	for _, p := range r.Phases {
		l := p.Stats.Latency
		gs = append(gs, group{Label: p.Spec.Name + " (" + p.Model + ")", Bars: []bar{
			{Label: "p50", V: l.P50, Value: fmtMs(l.P50) + " ms", Color: "#90cdf4"},
			{Label: "p95", V: l.P95, Value: fmtMs(l.P95) + " ms", Color: "#4299e1"},
			{Label: "p99", V: l.P99, Value: fmtMs(l.P99) + " ms", Color: "#2c5282"},
		}})
	}
	return hbarChart("Latency percentiles per phase (from the scheduled send time)", "milliseconds", true, gs)
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"rate": fmtRate, "ms": fmtMs, "rate0": func(f float64) string {
		if f == 0 {
			return ""
		}
		return fmtRate(f)
	}, "drain": fmtDrain, "check": check,
	"pct": func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coupon bench {{.R.Started.Format "2006-01-02 15:04:05"}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#1a202c;max-width:1400px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #cbd5e0;padding:4px 8px;text-align:right}
th{background:#edf2f7}td{white-space:nowrap}td:first-child,th:first-child{text-align:left}
tr.seed td{color:#718096;font-style:italic}.ok{color:#276749}.fail{color:#c53030;font-weight:700}
.meta{color:#4a5568;font-size:13px}figure{margin:16px 0}
</style></head><body>
<h1>Coupon issuance strategies, side by side</h1>
<p class="meta">{{.R.Started.Format "2006-01-02 15:04:05 MST"}} · {{.R.Duration.Round 1000000000}} · {{.R.Machine.Cores}} cores · {{.R.Machine.GoVersion}} · load {{.R.Machine.LoadAvg}}<br><code>{{.R.Command}}</code></p>
{{if .OK}}<p class="ok">Every phase verified against MySQL: no over-issue, no duplicates, every accepted request has its row.</p>
{{else}}<p class="fail">Verification FAILED: see the table.</p>{{end}}
<h2>Comparison</h2>
<table><tr><th>strategy</th><th>model</th><th>requests</th><th>dup share</th><th>supply</th><th>accepted req/s</th><th>p50 / p95 / p99 ms</th><th>errors</th><th>rows persisted/s</th><th>sink drain</th><th>over-issued</th><th>duplicates</th><th>accepted = rows</th></tr>
{{range .R.Phases}}{{if .Spec.Ceiling}}<tr><td>{{.Spec.Name}}</td><td>{{.Model}}</td><td>{{.Requests}}</td><td>{{pct .DupShare}}</td><td></td><td>{{rate .Stats.AcceptedPerSec}}</td>
<td>{{ms .Stats.Latency.P50}} / {{ms .Stats.Latency.P95}} / {{ms .Stats.Latency.P99}}</td><td>{{.Stats.Errors}}</td><td colspan="5">HTTP ceiling: parsing and answer only</td></tr>
{{else}}<tr><td>{{.Spec.Name}}</td><td>{{.Model}}</td><td>{{.Requests}}</td><td>{{pct .DupShare}}</td><td>{{.Verdict.Total}}</td><td>{{rate .Stats.AcceptedPerSec}}</td>
<td>{{ms .Stats.Latency.P50}} / {{ms .Stats.Latency.P95}} / {{ms .Stats.Latency.P99}}</td><td>{{.Stats.Errors}}</td><td>{{rate .Sink.RowsPerSec}}</td><td>{{drain .}}</td>
<td class="{{if .Verdict.OverIssued}}fail{{else}}ok{{end}}">{{check .Verdict.OverIssued}}</td><td class="{{if .Verdict.Duplicates}}fail{{else}}ok{{end}}">{{check .Verdict.Duplicates}}</td>
<td class="{{if .Verdict.LostAccepted}}fail{{else}}ok{{end}}">{{.Verdict.Accepted}} / {{.Verdict.Rows}}</td></tr>
{{end}}{{end}}{{range .R.Seed}}<tr class="seed"><td>{{.Label}}</td><td>locust</td><td></td><td></td><td></td><td>{{rate0 .ReqPerSec}}</td><td></td><td></td><td>{{rate0 .RowsPerSec}}</td><td></td><td></td><td></td><td></td></tr>
{{end}}</table>
<h2>Ratios</h2>
<table><tr><th>async over</th><th>this run</th><th>the seed</th><th>the seed's figures</th></tr>
{{range .Ratios}}<tr><td>{{.Baseline}}</td><td>{{if .Ratio}}{{printf "%.1f×" .Ratio}}{{else}}not measured{{end}}</td><td>{{printf "%.1f×" .SeedRatio}}</td><td>{{.SeedLabel}}</td></tr>
{{end}}</table>
<figure>{{.RatioChart}}</figure>
{{if .Goals}}<h2>Goals (ratios of this run's phases)</h2><ul>
{{range .Goals}}<li class="{{if .Met}}ok{{else}}fail{{end}}">{{.}}</li>
{{end}}</ul>{{range .GoalCharts}}<figure>{{.}}</figure>{{end}}{{end}}
{{if .Costs}}<h2>CPU per accepted request and batching</h2>
<table><tr><th>phase</th><th>machine µs/accepted</th><th>by process, µs/accepted</th><th>records per produce request</th><th>users per script call</th><th>broker GC pauses (longest)</th></tr>
{{range .Costs}}<tr><td>{{.Spec.Name}}</td><td>{{with .CPU}}{{printf "%.0f" .MachinePerReq}}{{end}}</td><td style="text-align:left">{{with .CPU}}{{range .Procs}}{{.Name}} {{printf "%.0f" .MicrosPerReply}} · {{end}}{{if .StealSeconds}}(steal {{pct .StealShare}}){{end}}{{end}}</td>
<td>{{with .Batching}}{{printf "%.1f" .RecordsPerRequest}}{{end}}</td><td>{{with .Batching}}{{printf "%.1f" .UsersPerCall}}{{end}}</td><td>{{with .BrokerGC}}{{.Count}}, {{printf "%.0f" .TotalMs}} ms ({{printf "%.1f" .MaxMs}} ms){{end}}</td></tr>
{{end}}</table>{{end}}
{{with .R.Speed}}<h2>Async path speed</h2><ul>
{{if .MaxAccepted}}<li>max accepted (closed model, c={{.Concurrency}}, 202 only after the Kafka ack): <b>{{rate .MaxAccepted}} req/s</b></li>{{end}}
{{if .OpenRate}}<li>open model at {{rate .OpenRate}} req/s offered: {{rate .OpenAchieved}} req/s answered 2xx, p50 {{ms .OpenLatency.P50}} / p95 {{ms .OpenLatency.P95}} / <b>p99 {{ms .OpenLatency.P99}} ms</b>, {{.OpenErrors}} errors</li>{{end}}
{{if .EvalshaPerSec}}<li>redis-benchmark EVALSHA of the admit script, one user per call: {{rate .EvalshaPerSec}} ops/s (p99 {{ms .EvalshaP99}} ms); gateway / that rate = {{printf "%.2f" .Ratio}}</li>{{else}}<li>redis-benchmark: not measured ({{.RedisNote}})</li>{{end}}
</ul>{{end}}
<figure>{{.Throughput}}</figure>
<figure>{{.Latency}}</figure>
<h2>Verification</h2><ul>
{{range .R.Phases}}<li>{{.Spec.Name}}: coupons {{.CouponIDs}}, supply {{.Verdict.Total}}, rows {{.Verdict.Rows}}, issued_quantity {{.Verdict.IssuedQuantity}}, 2xx answers {{.Verdict.Accepted}}, 409 {{.Stats.Already}}, 410 {{.Stats.SoldOut}}, 503 {{.Stats.Unavailable}}, other errors {{.OtherErrors}}
{{range .Verdict.Problems}}<br><span class="fail">{{.}}</span>{{end}}</li>
{{end}}</ul>
{{range .R.Notes}}<p class="meta">{{.}}</p>{{end}}
</body></html>
`))

// OtherErrors counts errors that are not 503 answers.
func (p *PhaseResult) OtherErrors() int64 { return p.Stats.Errors - p.Stats.Unavailable }

// WriteHTML writes the self-contained report page (inline CSS and SVG).
func (r *Report) WriteHTML(w io.Writer) error {
	return reportTmpl.Execute(w, map[string]any{
		"R": r, "OK": r.OK(), "Ratios": r.Comparisons(), "RatioChart": r.ratioChart(),
		"Throughput": r.throughputChart(), "Latency": r.latencyChart(),
		"Goals": r.Goals(), "GoalCharts": r.goalCharts(), "Costs": r.costed(),
	})
}

// costed are the phases with a CPU, batching or broker GC measurement.
func (r *Report) costed() []*PhaseResult {
	var out []*PhaseResult
	for _, p := range r.Phases {
		if p.CPU != nil || p.Batching != nil || p.BrokerGC != nil {
			out = append(out, p)
		}
	}
	return out
}
