package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		name     string
		coupons  []int64
		n        int
		dup      float64
		wantDups [2]int // allowed range of repeated (coupon, user) requests
	}{
		{"distinct users", []int64{1}, 1000, 0, [2]int{0, 0}},
		{"a tenth duplicates", []int64{1}, 10000, 0.1, [2]int{800, 1200}},
		{"many coupons", []int64{1, 2, 3, 4}, 4000, 0.25, [2]int{800, 1200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := Load{Coupons: tt.coupons, Requests: tt.n, DupShare: tt.dup, UserBase: 1000, Seed: 7}
			plan := l.Plan()
			if len(plan) != tt.n {
				t.Fatalf("len = %d", len(plan))
			}
			seen := map[Key]bool{}
			dups, perCoupon := 0, map[int64]int{}
			for i, s := range plan {
				if s.CouponID != tt.coupons[i%len(tt.coupons)] {
					t.Fatalf("request %d to coupon %d, want round robin", i, s.CouponID)
				}
				if s.UserID <= 1000 {
					t.Fatalf("user %d not above the base", s.UserID)
				}
				k := Key{s.CouponID, s.UserID}
				if seen[k] {
					dups++
				}
				seen[k] = true
				perCoupon[s.CouponID]++
			}
			if dups < tt.wantDups[0] || dups > tt.wantDups[1] {
				t.Fatalf("%d duplicate requests, want %d..%d", dups, tt.wantDups[0], tt.wantDups[1])
			}
			if again := l.Plan(); again[len(again)-1] != plan[len(plan)-1] {
				t.Fatalf("plan is not deterministic for a seed")
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted input
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := Percentiles(ds)
	want := Latency{N: 100, P50: 50, P95: 95, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Fatalf("Percentiles = %+v, want %+v", got, want)
	}
	if (Percentiles(nil) != Latency{}) {
		t.Fatal("empty input must give zero Latency")
	}
	if got := Percentiles([]time.Duration{3 * time.Millisecond}); got.P50 != 3 || got.P99 != 3 {
		t.Fatalf("one sample: %+v", got)
	}
}

// state builds a coupon's DBState with the given users holding one row each.
func state(id, total, issued int64, users ...int64) DBState {
	st := DBState{CouponID: id, Total: total, IssuedQuantity: issued, Rows: int64(len(users)), Users: map[int64]int64{}}
	for _, u := range users {
		st.Users[u]++
	}
	return st
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name     string
		states   []DBState
		accepted map[Key]int
		check    func(t *testing.T, v Verdict)
	}{
		{
			name:     "clean run",
			states:   []DBState{state(1, 3, 3, 10, 11, 12)},
			accepted: map[Key]int{{1, 10}: 1, {1, 11}: 1, {1, 12}: 1},
			check: func(t *testing.T, v Verdict) {
				if !v.OK() || !v.AcceptedMatchesRows() || v.OverIssued != 0 {
					t.Fatalf("clean run reported %+v", v)
				}
			},
		},
		{
			name:     "over-issued rows",
			states:   []DBState{state(1, 2, 2, 10, 11, 12, 13)},
			accepted: map[Key]int{{1, 10}: 1, {1, 11}: 1, {1, 12}: 1, {1, 13}: 1},
			check: func(t *testing.T, v Verdict) {
				if v.OK() || v.OverIssued != 2 || !strings.Contains(strings.Join(v.Problems, ";"), "over-issued: 2") {
					t.Fatalf("over-issue not reported: %+v", v)
				}
			},
		},
		{
			name:     "over-issued counter only",
			states:   []DBState{state(1, 2, 5, 10, 11)},
			accepted: map[Key]int{{1, 10}: 1, {1, 11}: 1},
			check: func(t *testing.T, v Verdict) {
				if v.OverIssued != 3 || v.CounterMismatch != 1 || v.OK() {
					t.Fatalf("counter over-issue not reported: %+v", v)
				}
			},
		},
		{
			name: "over-issue summed per coupon, not hidden by another's spare supply",
			states: []DBState{
				state(1, 1, 2, 10, 11), // one too many
				state(2, 5, 0),         // unused supply
			},
			accepted: map[Key]int{{1, 10}: 1, {1, 11}: 1},
			check: func(t *testing.T, v Verdict) {
				if v.OverIssued != 1 {
					t.Fatalf("OverIssued = %d, want 1: %+v", v.OverIssued, v)
				}
			},
		},
		{
			name: "duplicate rows and double 2xx",
			states: func() []DBState {
				st := state(1, 5, 3, 10, 11)
				st.Users[10]++ // a second row for user 10 (possible only without the PK)
				st.Rows, st.DupGroups = 3, 1
				return []DBState{st}
			}(),
			accepted: map[Key]int{{1, 10}: 2, {1, 11}: 1},
			check: func(t *testing.T, v Verdict) {
				if v.DupRows != 1 || v.AcceptedTwice != 1 || v.Duplicates != 2 || v.OK() {
					t.Fatalf("duplicates not reported: %+v", v)
				}
			},
		},
		{
			name:     "accepted without a row",
			states:   []DBState{state(1, 5, 1, 10)},
			accepted: map[Key]int{{1, 10}: 1, {1, 11}: 1, {9, 12}: 1},
			check: func(t *testing.T, v Verdict) {
				if v.LostAccepted != 2 || v.OK() || v.AcceptedMatchesRows() {
					t.Fatalf("lost accepted requests not reported: %+v", v)
				}
			},
		},
		{
			name:     "row of an unknown outcome is a note, not a failure",
			states:   []DBState{state(1, 5, 2, 10, 11)},
			accepted: map[Key]int{{1, 10}: 1},
			check: func(t *testing.T, v Verdict) {
				if !v.OK() || v.RowsNotAccepted != 1 || v.AcceptedMatchesRows() {
					t.Fatalf("got %+v", v)
				}
			},
		},
		{
			name: "repeated ranks",
			states: func() []DBState {
				st := state(1, 5, 2, 10, 11)
				st.RepeatedRanks = 1
				return []DBState{st}
			}(),
			accepted: map[Key]int{{1, 10}: 1, {1, 11}: 1},
			check: func(t *testing.T, v Verdict) {
				if v.OK() || v.RepeatedRanks != 1 {
					t.Fatalf("repeated ranks not reported: %+v", v)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, Verify(tt.states, tt.accepted)) })
	}
}

// A slow server falls behind an open-model schedule: latency must be
// measured from the scheduled time, so the queueing shows.
func TestOpenModelCountsQueueing(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return // the load generator's connection warm-up
		}
		calls.Add(1)
		time.Sleep(20 * time.Millisecond) // the server's service time (this server is slow on purpose)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Load{BaseURL: srv.URL, Coupons: []int64{1}, Requests: 20, Rate: 1000, Concurrency: 1, UserBase: 1})
	if err != nil {
		t.Fatal(err)
	}
	st := Summarize(r)
	if st.Sent != 20 || st.Accepted != 20 || calls.Load() != 20 {
		t.Fatalf("sent %d accepted %d calls %d", st.Sent, st.Accepted, calls.Load())
	}
	// 20 requests scheduled within 20ms, served one at a time at >= 20ms
	// each: the last one waited >= 19*20ms - 20ms beyond its schedule.
	if st.Latency.Max < 350 {
		t.Fatalf("max latency %.1f ms: queueing behind the slow server was not counted", st.Latency.Max)
	}
	if st.Latency.P50 < 150 {
		t.Fatalf("p50 %.1f ms: queueing not counted", st.Latency.P50)
	}
}

func TestClosedModelAndStatuses(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return // the load generator's connection warm-up
		}
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/v1/coupons/") || r.URL.Query().Get("strategy") != "db-lock" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch n.Add(1) % 4 {
		case 0:
			w.WriteHeader(http.StatusCreated)
		case 1:
			w.WriteHeader(http.StatusConflict)
		case 2:
			w.WriteHeader(http.StatusGone)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	var last Progress
	r, err := Run(context.Background(), Load{BaseURL: srv.URL, Strategy: coupon.StrategyDBLock, Coupons: []int64{5, 6}, Requests: 400, Concurrency: 8, UserBase: 1,
		Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	st := Summarize(r)
	if st.Sent != 400 || st.Accepted != 100 || st.Already != 100 || st.SoldOut != 100 || st.Unavailable != 100 || st.Errors != 100 {
		t.Fatalf("stats %+v", st)
	}
	if last.Done != 400 || last.Accepted != 100 {
		t.Fatalf("final progress %+v", last)
	}
	if st.AcceptedPerSec <= 0 || st.AcceptWindow > st.Elapsed {
		t.Fatalf("rates: %+v", st)
	}
}

func TestReportRenders(t *testing.T) {
	mk := func(name string, s coupon.Strategy, rate float64, over int64) *PhaseResult {
		p := &PhaseResult{Spec: PhaseSpec{Name: name, Strategy: s, InTable: true}, Model: "closed c=32", Requests: 100}
		p.Stats.AcceptedPerSec, p.Stats.Latency = rate, Latency{P50: 1, P95: 5, P99: 20}
		p.Sink = Sink{Rows: 10, RowsPerSec: rate, Drained: true}
		p.Verdict = Verify([]DBState{state(1, 1, 1+over, 1)}, map[Key]int{{1, 1}: 1})
		return p
	}
	r := &Report{Started: time.Now(), Seed: SeedReferences, Phases: []*PhaseResult{
		mk("db-lock", coupon.StrategyDBLock, 500, 0), mk("redis-lock", coupon.StrategyRedisLock, 250, 0), mk("async", coupon.StrategyAsync, 25000, 2),
	}, Speed: &Speed{MaxAccepted: 25000, EvalshaPerSec: 50000}}
	if x := r.Ratio(coupon.StrategyDBLock); x != 50 {
		t.Fatalf("async/db-lock = %v, want 50", x)
	}
	if r.OK() {
		t.Fatal("a report with an over-issued phase must not be OK")
	}
	var sb strings.Builder
	r.WriteTable(&sb)
	table := sb.String()
	for _, want := range []string{
		"async / db-lock accepted req/s: 50.0x   (seed: queue / direct RDBMS = 2000 / 60 = 33x)",
		"async / redis-lock accepted req/s: 100.0x   (seed: queue / Redisson lock = 2000 / 100 = 20x)", "2 FAIL", "VERIFY FAILED async: over-issued", "seed: batch consumer", "gateway / that rate: 0.50"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	sb.Reset()
	if err := r.WriteHTML(&sb); err != nil {
		t.Fatal(err)
	}
	page := sb.String()
	for _, want := range []string{"<svg", "Verification FAILED", "25000", "seed: direct RDBMS"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("the report must not need scripts")
	}
	for _, want := range []string{"<td>db-lock</td><td>50.0×</td><td>33.3×</td><td>queue / direct RDBMS = 2000 / 60</td>",
		"<td>redis-lock</td><td>100.0×</td><td>20.0×</td><td>queue / Redisson lock = 2000 / 100</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the ratio row %q", want)
		}
	}
	// The accepted req/s bars are linear: their lengths compare like the
	// rates (async's is 50 times db-lock's), not like their logarithms.
	width := func(label string) float64 {
		i := strings.Index(page, ">"+label+"</text><rect ")
		if i < 0 {
			t.Fatalf("no bar %q in the page", label)
		}
		var w float64
		if _, err := fmt.Sscanf(page[strings.Index(page[i:], `width="`)+i:], `width="%g"`, &w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if got := width("async (closed c=32)") / width("db-lock (closed c=32)"); math.Abs(got-50) > 0.5 {
		t.Errorf("async's bar is %.2f times db-lock's, want 50 (the ratio of the rates)", got)
	}

	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Phases []json.RawMessage `json:"phases"`
		Ratios []Comparison      `json:"ratios"`
	}
	if err := json.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	want := []Comparison{
		{Baseline: coupon.StrategyDBLock, Ratio: 50, SeedRatio: 2000.0 / 60, SeedLabel: "queue / direct RDBMS = 2000 / 60"},
		{Baseline: coupon.StrategyRedisLock, Ratio: 100, SeedRatio: 20, SeedLabel: "queue / Redisson lock = 2000 / 100"},
	}
	if len(decoded.Phases) != 3 || !slices.Equal(decoded.Ratios, want) {
		t.Errorf("report.json: %d phases, ratios %+v; want 3 and %+v", len(decoded.Phases), decoded.Ratios, want)
	}
}

// TestGoalsRender: the goals are ratios of this run's phases (async over
// the HTTP ceiling, many coupons over one, open-model p99 over the
// ceiling's), in the table, report.json and the page, with the CPU and
// batching lines; a ceiling phase has no verification columns.
func TestGoalsRender(t *testing.T) {
	mk := func(name string, rate, p99 float64, ceiling bool) *PhaseResult {
		p := &PhaseResult{Spec: PhaseSpec{Name: name, Strategy: coupon.StrategyAsync, Ceiling: ceiling}, Model: "closed c=256", Requests: 100}
		p.Stats.AcceptedPerSec, p.Stats.Latency = rate, Latency{P50: 1, P95: 2, P99: p99}
		p.Sink.Drained = true
		if !ceiling {
			p.Verdict = Verify([]DBState{state(1, 1, 1, 1)}, map[Key]int{{1, 1}: 1})
			p.CPU = &CPUCost{MachinePerReq: 120, Procs: []ProcessCPU{{Name: "gateway", MicrosPerReply: 50}, {Name: "kafka", MicrosPerReply: 20}}}
			p.Batching = &Batching{RecordsPerRequest: 61.5, UsersPerCall: 30}
		}
		return p
	}
	open := mk(PhaseAsyncOpen, 10000, 8, false)
	open.BrokerGC = &GCPauses{Count: 3, TotalMs: 45.2, MaxMs: 20.51}
	open.CPU = &CPUCost{MachinePerReq: 120, Procs: open.CPU.Procs, StealSeconds: 0.4, StealShare: 0.05}
	r := &Report{Started: time.Now(), Phases: []*PhaseResult{
		mk(PhaseCeiling, 50000, 2, true), mk(PhaseAsync, 25000, 20, false), mk(PhaseAsyncMany, 20000, 30, false),
		open, mk(PhaseCeilingOpen, 10000, 2, true),
	}}
	goals := r.Goals()
	if len(goals) != 3 || goals[0].Value != 0.5 || !goals[0].Met() || goals[1].Value != 0.8 || goals[1].Met() || goals[2].Value != 4 || goals[2].Met() {
		t.Fatalf("goals %+v", goals)
	}
	if !r.OK() {
		t.Fatal("ceiling phases must not fail the verification")
	}
	var sb strings.Builder
	r.WriteTable(&sb)
	table := sb.String()
	for _, want := range []string{
		"async / HTTP ceiling: async / ceiling accepted req/s = 0.50 (goal >= 0.40: reached)",
		"many coupons / one hot coupon: async-many / async accepted req/s = 0.80 (goal >= 0.85: not reached)",
		"open-model p99 / HTTP ceiling's: async-open / ceiling-open p99 = 4.00 (goal <= 3.00: not reached)",
		"(no system)", "machine 120 µs/accepted = gateway 50 + kafka 20  61.5 records per produce request, 30.0 users per script call",
		"machine 120 µs/accepted = gateway 50 + kafka 20 (steal 5%); broker GC: 3 pauses, 45 ms in all, longest 20.5 ms  61.5 records per produce request",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	sb.Reset()
	if err := r.WriteHTML(&sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Goals (ratios of this run", "HTTP ceiling: parsing and answer only", "61.5", "gateway 50", "3, 45 ms (20.5 ms)", "(steal 5%)"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	b, _ := json.Marshal(r)
	var decoded struct {
		Goals []Goal `json:"goals"`
	}
	if err := json.Unmarshal(b, &decoded); err != nil || !slices.Equal(decoded.Goals, goals) {
		t.Errorf("report.json goals %+v (%v), want %+v", decoded.Goals, err, goals)
	}
}
