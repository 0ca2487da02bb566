package bench

import (
	"strings"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/cli"
)

func parseOptions(t *testing.T, args ...string) (Options, error) {
	t.Helper()
	fs := cli.New("bench")
	o := DefaultOptions()
	o.Bind(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.Validate()
}

func TestOptionsPhases(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    []string // phase names in order
		wantErr string
	}{
		{name: "defaults run every phase", want: []string{"db-lock", "redis-lock", "ceiling", "async", "async-many", "async-open", "ceiling-open"}},
		{name: "a subset keeps the order", args: []string{"--strategies", "async-open,db-lock"}, want: []string{"db-lock", "async-open"}},
		{name: "unknown phase", args: []string{"--strategies", "db-lock,queue"}, wantErr: `unknown phase "queue"`},
		{name: "zero supply", args: []string{"--baseline-supply", "0"}, wantErr: "--baseline-supply must be at least 1"},
		{name: "duplicates bounded", args: []string{"--dup-percent", "95"}, wantErr: "--dup-percent must be 0..90"},
		{name: "url needs a token", args: []string{"--url", "http://127.0.0.1:1"}, wantErr: "--url needs --admin-token"},
		{name: "system setting", args: []string{"--system-env", "COUPON_GATE_PIPELINES=1,COUPON_FETCH_MAX_WAIT=50ms"},
			want: []string{"db-lock", "redis-lock", "ceiling", "async", "async-many", "async-open", "ceiling-open"}},
		{name: "system setting not COUPON_", args: []string{"--system-env", "GOGC=400"}, wantErr: `"GOGC=400" is not COUPON_NAME=value`},
		{name: "system setting without a value", args: []string{"--system-env", "COUPON_GATE_PIPELINES"}, wantErr: "is not COUPON_NAME=value"},
		{name: "system setting the run makes", args: []string{"--system-env", "COUPON_TOPIC=x"}, wantErr: "COUPON_TOPIC is set by the run itself"},
		{name: "system setting with url", args: []string{"--url", "http://127.0.0.1:1", "--admin-token", "t", "--system-env", "COUPON_GATE_PIPELINES=1"},
			wantErr: "--system-env needs a system the run starts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("COUPON_ADMIN_TOKEN", "")
			o, err := parseOptions(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range append(o.Phases(), o.OpenPhases(1000)...) {
				got = append(got, p.Name)
				// The baselines sell out (their locks are tested under
				// contention); the goal phases run #10's load: distinct
				// users, supply above demand.
				switch baseline := p.Strategy != coupon.StrategyAsync; {
				case baseline && p.Supply >= int64(p.Load.Requests):
					t.Errorf("phase %s: supply %d is not below demand %d", p.Name, p.Supply, p.Load.Requests)
				case !baseline && !p.Ceiling && p.Supply*int64(p.Coupons) < int64(p.Load.Requests):
					t.Errorf("phase %s: supply %d x %d coupons is below demand %d", p.Name, p.Supply, p.Coupons, p.Load.Requests)
				case !baseline && p.Load.DupShare != 0:
					t.Errorf("phase %s: %v duplicates, want distinct users", p.Name, p.Load.DupShare)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("phases %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBenchOpenRate: the open phases run at --open-rate, else at half the
// async phase's accepted req/s (the goal's point), the gateway's and the
// ceiling's at the same rate; the ceiling, hot and many-coupon phases get
// the same closed load, the many coupons sharing the hot coupon's supply.
func TestBenchOpenRate(t *testing.T) {
	t.Setenv("COUPON_ADMIN_TOKEN", "")
	o, err := parseOptions(t)
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{Phases: []*PhaseResult{{Spec: PhaseSpec{Name: PhaseAsync}, Stats: Stats{AcceptedPerSec: 9001}}}}
	if got := o.OpenRateAfter(r); got != 4500 {
		t.Errorf("open rate after 9001 req/s: %d, want 4500", got)
	}
	if got := o.OpenRateAfter(&Report{}); got != 5000 {
		t.Errorf("open rate without an async phase: %d, want 5000", got)
	}
	for _, p := range o.OpenPhases(4500) {
		if p.Load.Rate != 4500 {
			t.Errorf("phase %s at %v req/s, want 4500", p.Name, p.Load.Rate)
		}
	}
	if o, err = parseOptions(t, "--open-rate", "700"); err != nil || o.OpenRateAfter(r) != 700 {
		t.Errorf("--open-rate 700: %v, rate %d", err, o.OpenRateAfter(r))
	}
	byName := map[string]PhaseSpec{}
	for _, p := range o.Phases() {
		byName[p.Name] = p
	}
	c, hot, many := byName[PhaseCeiling], byName[PhaseAsync], byName[PhaseAsyncMany]
	same := func(a, b Load) bool {
		return a.Requests == b.Requests && a.Concurrency == b.Concurrency && a.DupShare == b.DupShare && a.Seed == b.Seed
	}
	if !c.Ceiling || !same(c.Load, hot.Load) || !same(many.Load, hot.Load) || many.Coupons != 1000 || many.Supply*1000 != hot.Supply {
		t.Errorf("ceiling %+v, hot %+v, many %+v: want the same load, 1000 coupons sharing the supply", c, hot, many)
	}
	// --async-supply below demand: the hot and many-coupon phases sell out
	// at the same point.
	if o, err = parseOptions(t, "--async-supply", "80000"); err != nil {
		t.Fatal(err)
	}
	for _, p := range o.Phases() {
		byName[p.Name] = p
	}
	if hot, many := byName[PhaseAsync], byName[PhaseAsyncMany]; hot.Supply != 80000 || many.Supply != 80 {
		t.Errorf("--async-supply 80000: hot supply %d, many %d per coupon; want 80000 and 80", hot.Supply, many.Supply)
	}
}
