package bench

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/baseline"
	"github.com/coupondrop/coupon/internal/testenv"
)

// A phase end to end against the test database: a tiny HTTP front over the
// db-lock issuer stands in for the gateway, RunPhase verifies from MySQL.
func TestRunPhaseVerifiesAgainstMySQL(t *testing.T) {
	db := testenv.MustOpenStore(t)
	iss := baseline.NewDBLock(db, baseline.DefaultDBLockConfig(), testenv.Logger(t))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/coupons", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var c coupon.Coupon
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if err := db.CreateCoupon(r.Context(), &c); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]int64{"id": c.ID})
	})
	mux.HandleFunc("POST /v1/coupons/{id}/issues", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		var body struct{ UserID int64 }
		_ = json.NewDecoder(r.Body).Decode(&body)
		_, err := iss.Issue(r.Context(), &coupon.Coupon{ID: id}, body.UserID, "")
		switch coupon.ErrorCode(err) {
		case "":
			w.WriteHeader(http.StatusCreated)
		case coupon.EALREADY:
			w.WriteHeader(http.StatusConflict)
		case coupon.ESOLDOUT:
			w.WriteHeader(http.StatusGone)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var lines []string
	say := func(format string, args ...any) { lines = append(lines, format) }
	spec := PhaseSpec{Name: "db-lock", Strategy: coupon.StrategyDBLock, Coupons: 2, Supply: 50, InTable: true,
		Load: Load{Requests: 300, Concurrency: 16, DupShare: 0.2, UserBase: 1, Seed: 9}}
	res, err := RunPhase(context.Background(), Target{BaseURL: srv.URL, AdminToken: "tok", DB: db}, spec, say)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.CouponIDs) != 2 || res.Stats.Sent != 300 {
		t.Fatalf("coupons %v, sent %d", res.CouponIDs, res.Stats.Sent)
	}
	v := res.Verdict
	if !v.OK() || v.Accepted != 100 || v.Rows != 100 || v.Total != 100 || v.OverIssued != 0 || !res.Sink.Drained || res.Sink.Drain != 0 {
		t.Fatalf("verdict %+v sink %+v (lines %v)", v, res.Sink, lines)
	}
	if res.Stats.Accepted+res.Stats.Already+res.Stats.SoldOut != 300 || res.Stats.Errors != 0 {
		t.Fatalf("stats %+v", res.Stats)
	}
	if res.Sink.RowsPerSec <= 0 || res.Stats.AcceptedPerSec <= 0 {
		t.Fatalf("rates: sink %+v stats %+v", res.Sink, res.Stats)
	}

	// Now break it behind the bench's back: an extra row beyond the total
	// (the CHECK allows raising issued_quantity only to the total, so the
	// row alone over-issues). The verifier must see it.
	if _, err := testenv.MustOpenDB(t).Exec(`INSERT INTO coupon_issues (coupon_id, user_id, issue_rank, admitted_at) VALUES (?, ?, ?, NOW(6))`, res.CouponIDs[0], 1<<40, 999); err != nil {
		t.Fatal(err)
	}
	st, err := Collect(context.Background(), db, res.CouponIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	v = Verify(append([]DBState{st}, res.DB[1:]...), res.Stats.AcceptedUsers)
	if v.OverIssued != 1 || v.OK() || !strings.Contains(strings.Join(v.Problems, ";"), "over-issued: 1") {
		t.Fatalf("an extra row was not reported as over-issue: %+v", v)
	}
}
