package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/testenv"
)

// TestProcessesPatchAcrossGateways runs two gateway processes and a
// sinker on the same stores, with a minute-long coupon cache. Under load
// on gateway B, gateway A takes PATCHes: lowering the total to a little
// above what is admitted sells the coupon out on B at exactly the new
// total, raising it lets B admit again, and ending the window stops B
// within a second. Afterwards every 202 is an issued row with its rank,
// the rows are the admitted users (none was refused by the database's
// guard) and never more than the total.
func TestProcessesPatchAcrossGateways(t *testing.T) {
	testenv.Integration(t)
	db := testenv.MustOpenDB(t)
	bins := buildBinaries(t, "gateway", "sinker")
	topic := testenv.MustCreateTopic(t, 3)
	dlq := testenv.MustCreateTopic(t, 1)
	const token = "patch-process-admin-token"
	sinkerProc, _ := startSinker(t, "sinker", bins["sinker"], topic, dlq, "test-"+testenv.RandomID())
	defer sinkerProc.terminate(t, 20*time.Second)
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	cached := []string{"COUPON_CACHE_TTL=1m", "COUPON_NEGATIVE_CACHE_TTL=1m"} // only a change notice can refresh them
	_, a := startGateway(t, "gateway-a", bins["gateway"], client, token, topic, cached...)
	_, b := startGateway(t, "gateway-b", bins["gateway"], client, token, topic, cached...)
	id := mustCreateCoupon(t, client, a, token, "patch across processes")

	call := func(method, url, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	patch := func(body string) {
		t.Helper()
		if st, m := call("PATCH", fmt.Sprintf("%s/v1/coupons/%d", a, id), body); st != http.StatusOK {
			t.Fatalf("PATCH %s on gateway A: %d %v", body, st, m)
		}
	}
	admitted := func() int64 {
		t.Helper()
		_, m := call("GET", fmt.Sprintf("%s/v1/coupons/%d", b, id), "")
		n, _ := m["admitted"].(float64)
		return int64(n)
	}

	load := startPatchLoad(client, b, id)
	testenv.Eventually(t, 60*time.Second, load.atLeast(200))

	// Lower the total a little above what is admitted: B sells out at it.
	lowered := admitted() + 100
	patch(fmt.Sprintf(`{"totalQuantity": %d}`, lowered))
	testenv.Eventually(t, 60*time.Second, func() error {
		if n := load.soldOut.Load(); n < 50 {
			return fmt.Errorf("%d sold out answers so far", n)
		}
		return nil
	})
	if n := admitted(); n != lowered {
		t.Fatalf("sold out at %d admitted; the total was lowered to %d", n, lowered)
	}
	// Raise it: B admits again.
	patch(fmt.Sprintf(`{"totalQuantity": %d}`, lowered+200))
	testenv.Eventually(t, 60*time.Second, load.atLeast(int(lowered)+100))
	// End the window on A: within a second B refuses every request.
	patch(fmt.Sprintf(`{"issueEndsAt": %q}`, time.Now().UTC().Format(time.RFC3339Nano)))
	stopped := time.Now()
	testenv.Eventually(t, time.Second, func() error {
		if st, m := call("POST", fmt.Sprintf("%s/v1/coupons/%d/issues", b, id), `{"userId": 1}`); st != http.StatusForbidden || m["error"] != "issue_ended" {
			return fmt.Errorf("gateway B answered %d %v", st, m)
		}
		return nil
	})
	t.Logf("the stop reached gateway B after %s", time.Since(stopped).Round(time.Millisecond))
	accepted := load.stop(t)

	mustAllIssued(t, db, id, accepted, 90*time.Second)
	var rows, issued, total int64
	if err := db.QueryRow(`SELECT COUNT(*), MAX(c.issued_quantity), MAX(c.total_quantity) FROM coupon_issues i JOIN coupons c ON c.id = i.coupon_id WHERE i.coupon_id = ?`, id).Scan(&rows, &issued, &total); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := admitted(); n != rows {
			return fmt.Errorf("%d rows for %d admitted users", rows, n)
		}
		return nil
	})
	if rows != issued || rows > total || total != lowered+200 {
		t.Fatalf("%d rows, issued_quantity %d, total %d (want %d): over the total or out of step", rows, issued, total, lowered+200)
	}
	t.Logf("%d accepted, %d sold out answers, %d refused as ended", len(accepted), load.soldOut.Load(), load.ended.Load())
}

// patchLoad is 8 workers issuing a coupon to fresh users until stopped:
// 202, 410 sold_out and 403 issue_ended are expected answers.
type patchLoad struct {
	mu       sync.Mutex
	accepted map[int64]int64
	odd      []string
	soldOut  atomic.Int64
	ended    atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startPatchLoad(client *http.Client, base string, couponID int64) *patchLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &patchLoad{accepted: map[int64]int64{}, cancel: cancel}
	var next atomic.Int64
	next.Store(testenv.RandomCouponID())
	for range 8 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				u := next.Add(1)
				resp, err := client.Post(fmt.Sprintf("%s/v1/coupons/%d/issues", base, couponID), "application/json",
					strings.NewReader(fmt.Sprintf(`{"userId":%d}`, u)))
				if err != nil {
					l.mu.Lock()
					l.odd = append(l.odd, err.Error())
					l.mu.Unlock()
					return
				}
				var body struct {
					Rank  int64
					Error string
				}
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusAccepted && err == nil:
					l.mu.Lock()
					l.accepted[u] = body.Rank
					l.mu.Unlock()
				case resp.StatusCode == http.StatusGone && body.Error == "sold_out":
					l.soldOut.Add(1)
				case resp.StatusCode == http.StatusForbidden && body.Error == "issue_ended":
					l.ended.Add(1)
				default:
					l.mu.Lock()
					l.odd = append(l.odd, fmt.Sprintf("user %d: %d %s %v", u, resp.StatusCode, body.Error, err))
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

func (l *patchLoad) atLeast(n int) func() error {
	return func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.accepted) < n {
			return fmt.Errorf("%d accepted so far", len(l.accepted))
		}
		return nil
	}
}

// stop ends the load, fails on odd answers and returns the accepted users
// with their ranks.
func (l *patchLoad) stop(t *testing.T) map[int64]int64 {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	if len(l.odd) > 0 {
		t.Fatalf("%d odd answers, first: %s", len(l.odd), l.odd[0])
	}
	return l.accepted
}
