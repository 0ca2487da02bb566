package infra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var (
	registeredRE = regexp.MustCompile(`Name:\s+"(coupon_[a-z0-9_]+)"`)
	usedRE       = regexp.MustCompile(`\bcoupon_[a-z0-9_]+`)
)

// registeredMetrics returns the coupon_* metric names the gateway and sinker
// register (their Name: literals).
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, pkg := range []string{"gateway", "sinker"} {
		files, err := filepath.Glob(filepath.Join("..", pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range registeredRE.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
		}
	}
	return names
}

type dashboard struct {
	Panels []struct {
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardMetrics: every series the Grafana dashboard queries is one the
// code registers, and every registered series is on the dashboard.
func TestDashboardMetrics(t *testing.T) {
	registered := registeredMetrics(t)
	if len(registered) == 0 {
		t.Skip("no metrics registered in gateway/ or sinker/ yet")
	}
	files, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards under grafana/dashboards (%v)", err)
	}
	ds, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || !strings.Contains(string(ds), "uid: "+p.Datasource.UID+"\n") {
				t.Errorf("%s: panel %q: datasource is not the provisioned one", f, p.Title)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				for _, name := range usedRE.FindAllString(tg.Expr, -1) {
					base := name
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						if s, ok := strings.CutSuffix(name, suf); ok && registered[s] {
							base = s
						}
					}
					if !registered[base] {
						t.Errorf("%s: panel %q queries %s, which no code registers", f, p.Title, name)
					}
					used[base] = true
				}
			}
		}
	}
	var missing []string
	for name := range registered {
		if !used[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("registered but on no dashboard panel: %s", strings.Join(missing, ", "))
	}
}

// TestPrometheusJobs: the scrape jobs are the ones the dashboard filters on.
func TestPrometheusJobs(t *testing.T) {
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile("grafana/dashboards/coupon.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"coupon-gateway", "coupon-sinker"} {
		if !strings.Contains(string(cfg), "job_name: "+job+"\n") {
			t.Errorf("prometheus.yml has no job %s", job)
		}
		if !strings.Contains(string(dash), `"query": "`+job+`"`) {
			t.Errorf("dashboard does not filter on job %s", job)
		}
	}
}

// TestAlertRules: the alerts an on-call engineer needs exist, each has a
// runbook line and points to the README's alerts section (which names it),
// and every series they query is one the code registers (or Prometheus'
// own up). promtool checks and unit-tests them (make rules-check).
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "rule_files:\n  - alerts.yml\n") {
		t.Error("prometheus.yml does not load alerts.yml")
	}
	if !strings.Contains(string(readme), "\n### Alerts\n") {
		t.Fatal("the README has no Alerts section (the runbook_url anchor #alerts)")
	}
	registered := registeredMetrics(t)
	blocks := strings.Split(string(b), "\n      - alert: ")[1:]
	seen := map[string]bool{}
	for _, blk := range blocks {
		name, _, _ := strings.Cut(blk, "\n")
		seen[name] = true
		for _, want := range []string{"\n          runbook: \"", "\n          runbook_url: \"README.md#alerts\"", "\n          severity: "} {
			if !strings.Contains(blk, want) {
				t.Errorf("alert %s lacks %q", name, strings.TrimSpace(want))
			}
		}
		if !strings.Contains(string(readme), "`"+name+"`") {
			t.Errorf("alert %s is not in the README's alerts table", name)
		}
		expr := blk[strings.Index(blk, "expr:"):strings.Index(blk, "labels:")]
		for _, m := range usedRE.FindAllString(expr, -1) {
			if !registered[m] {
				t.Errorf("alert %s queries %s, which no code registers", name, m)
			}
		}
	}
	for _, want := range []string{
		"CouponSinkerLagGrowing", "CouponPublishOutcomeUnknown", "CouponDeadLetters",
		"CouponIssueServerErrors", "CouponGateUnavailable", "CouponGatewayNotReady",
	} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}
