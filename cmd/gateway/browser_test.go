package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/internal/testsink"
	"github.com/coupondrop/coupon/sinker"
)

// TestDropPageInBrowser opens the live drop page in headless Chromium
// against the real stack (this gateway, a sinker, Redis, MariaDB, Kafka),
// issues the whole supply while the page is open and waits until the page
// shows every user admitted and issued, "sold out", no pending row and no
// sinker lag. The coupon's name is markup, which the page must show as
// text. A screenshot is saved under COUPON_TEST_ARTIFACTS (the test prints
// its path).
func TestDropPageInBrowser(t *testing.T) {
	testenv.Integration(t)
	chromium := chromiumPath(t)
	topic := testenv.MustCreateTopic(t, 3)
	dlq := testenv.MustCreateTopic(t, 1)
	group := "test-browser-" + testenv.RandomID()
	stopSinker := startSinkerInGroup(t, topic, dlq, group)
	defer stopSinker()

	const token = "browser-test-admin-token"
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg, _, err := parseConfig([]string{"--http-addr", addr, "--admin-token", token,
		"--redis-addrs", testenv.RedisAddr, fmt.Sprintf("--redis-cluster=%t", testenv.RedisCluster), "--mysql-dsn", testenv.MySQLDSN, "--kafka-brokers", strings.Join(testenv.KafkaBrokers, ","),
		"--topic", topic, "--group-id", group, "--log-format", "text", "--log-level", "warn"})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncWriter{w: &bytes.Buffer{}}
	logger, _ := cfg.Log.New(logs)
	gctx, stopGateway := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- run(gctx, cfg, logger) }()
	defer func() {
		stopGateway()
		if err := <-served; err != nil {
			t.Errorf("gateway: %v\n%s", err, logs.String())
		}
	}()
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	testenv.Eventually(t, 30*time.Second, func() error {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	const supply = 400
	name := `Flash sale <img src=x onerror="document.title='pwned'"> & "friends"` // markup, shown as text
	id := createCoupon(t, client, base, token, name, supply)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1000, 960),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	var jsErrs []string
	var jsMu sync.Mutex
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			jsMu.Lock()
			d := e.ExceptionDetails
			jsErrs = append(jsErrs, fmt.Sprintf("%s (%s:%d)", d.Text, d.URL, d.LineNumber+1))
			jsMu.Unlock()
		}
	}); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(fmt.Sprintf("%s/drops/%d", base, id)),
		chromedp.WaitVisible(chromedp.ID("supply"))); err != nil {
		t.Fatalf("open the drop page: %v", err)
	}
	// page reads what the page shows, by element ID.
	page := func() map[string]string {
		p, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]string](`Object.fromEntries(
			["name", "supply", "admitted", "issued", "pending", "remaining", "state", "soldout", "lag", "selltime"]
				.map((id) => [id, document.getElementById(id).textContent]))`))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return p
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if p := page(); p["supply"] != "400" || p["admitted"] != "0" || p["state"] != "live" {
			return fmt.Errorf("before the drop the page shows %v", p)
		}
		return nil
	})

	// The supply goes in four waves; the page shows each one without a
	// reload before the next starts.
	users := testenv.RandomCouponID()
	for wave := range 4 {
		issueRange(t, client, base, id, users+int64(wave*supply/4), supply/4, http.StatusAccepted)
		want := fmt.Sprint((wave + 1) * supply / 4)
		testenv.Eventually(t, 30*time.Second, func() error {
			if p := page(); p["admitted"] != want {
				return fmt.Errorf("after wave %d the page shows %v, want %s admitted", wave+1, p, want)
			}
			return nil
		})
	}
	issueRange(t, client, base, id, users+supply, 1, http.StatusGone)
	var p map[string]string
	testenv.Eventually(t, 60*time.Second, func() error {
		p = page()
		if p["admitted"] != "400" || p["issued"] != "400" || p["pending"] != "0" || p["remaining"] != "0" ||
			p["state"] != "sold out" || !strings.HasPrefix(p["soldout"], "sold out at ") ||
			strings.Contains(p["soldout"], "approximate") || !strings.HasPrefix(p["lag"], "0 records on partition ") ||
			!strings.Contains(p["selltime"], " s from ") {
			return fmt.Errorf("after issuing the supply the page shows %v", p)
		}
		return nil
	})
	t.Logf("the page shows %v", p)

	if p["name"] != name {
		t.Errorf("the page shows the name as %q, want the raw text %q", p["name"], name)
	}
	imgs, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("img").length`))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(bctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if imgs != 0 || title != name+" · coupon drop" {
		t.Errorf("the coupon's name was rendered as markup: %d img elements, title %q", imgs, title)
	}
	jsMu.Lock()
	if len(jsErrs) > 0 {
		t.Errorf("JavaScript exceptions on the page: %v", jsErrs)
	}
	jsMu.Unlock()

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactsDir(t), "drop-page.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the sold-out page: %s (%d bytes)", path, len(png))

	// The index lists the coupons newest first (through the admin list,
	// the token typed in the page), each linked to its drop page, the name
	// as text. A page's worth of coupons created now puts the drop's on a
	// later page ("More"): they show above it, and every row is older than
	// the one above it, across the pages.
	var newer int64
	for i := range indexPage {
		newer = createCoupon(t, client, base, token, fmt.Sprintf("Browser newer drop %d", i+1), 1)
	}
	tok, _ := json.Marshal(token)
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/drops"), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
		t.Fatalf("open the index: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.getElementById("token").value = `+string(tok)+
		`; document.getElementById("auth").requestSubmit(); true`)); err != nil {
		t.Fatal(err)
	}
	href := fmt.Sprintf("/drops/%d", id)
	var rows []int64
	testenv.Eventually(t, 60*time.Second, func() error {
		// Page on ("More") until the drop's coupon shows.
		shown, err := chromedp.Run(bctx, chromedp.Evaluate[struct {
			IDs   []string
			Names []string
		}](`(() => {
			const found = [...document.querySelectorAll("#rows a")].filter((a) => a.getAttribute("href") === `+fmt.Sprintf("%q", href)+`);
			if (!found.length && !document.getElementById("more").hidden) document.getElementById("more").click();
			return {IDs: [...document.querySelectorAll("#rows tr")].map((tr) => tr.cells[0].textContent),
				Names: found.map((a) => a.textContent)};
		})()`))
		if err != nil {
			return err
		}
		if len(shown.Names) != 2 || shown.Names[1] != name { // the ID's link, then the name's
			msg, _ := chromedp.Run(bctx, chromedp.Text(chromedp.ID("msg")))
			return fmt.Errorf("the index links %s with %q (message %q), want the ID and the name %q", href, shown.Names, msg, name)
		}
		rows = rows[:0]
		for _, s := range shown.IDs {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("the index shows a row with ID %q", s)
			}
			rows = append(rows, n)
		}
		return nil
	})
	if len(rows) <= indexPage || rows[0] < newer {
		t.Errorf("the index shows %d rows, the first coupon %d; want more than a page (%d) from the newest, %d or one created since", len(rows), rows[0], indexPage, newer)
	}
	at := map[int64]int{}
	for i, n := range rows {
		if i > 0 && n >= rows[i-1] {
			t.Errorf("the index shows coupon %d below %d (row %d of %d): not newest first", n, rows[i-1], i+1, len(rows))
			break
		}
		at[n] = i
	}
	if i, ok := at[newer]; !ok || i >= at[id] {
		t.Errorf("the index shows coupon %d at row %d (found %t) and the older %d at row %d; want the newer above", newer, i, ok, id, at[id])
	}
	t.Logf("the index lists %d coupons on %d pages, newest first: %d above the drop's %d", len(rows), (len(rows)+indexPage-1)/indexPage, newer, id)
	if imgs, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll("img").length`)); err != nil || imgs != 0 {
		t.Errorf("the index rendered the name as markup: %d img elements, %v", imgs, err)
	}
}

// indexPage is the coupons a page of /drops holds (index.js asks limit=50).
const indexPage = 50

// chromiumPath returns the browser to drive: COUPON_TEST_CHROMIUM, else
// chromium on PATH (Debian's package, which .ci/run installs).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COUPON_TEST_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium on PATH (apt-get install chromium, or set COUPON_TEST_CHROMIUM): %v", err)
	}
	return p
}

// artifactsDir returns COUPON_TEST_ARTIFACTS (make test sets it to
// $(TEST_STATE)/artifacts), else .state/artifacts at the repository root,
// created.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COUPON_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".state", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// createCoupon creates an async coupon through the admin API.
func createCoupon(t *testing.T, client *http.Client, base, token, name string, supply int) int64 {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": name, "totalQuantity": supply})
	req, _ := http.NewRequest("POST", base+"/v1/coupons", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct{ ID int64 }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated || created.ID == 0 {
		t.Fatalf("create coupon: %d %v", resp.StatusCode, err)
	}
	return created.ID
}

// issueRange issues the coupon to users from, from+1, ... (n of them, 16
// at a time) and fails unless each is answered want.
func issueRange(t *testing.T, client *http.Client, base string, couponID, from int64, n, want int) {
	t.Helper()
	next := make(chan int64)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				resp, err := client.Post(fmt.Sprintf("%s/v1/coupons/%d/issues", base, couponID), "application/json",
					strings.NewReader(fmt.Sprintf(`{"userId":%d}`, u)))
				if err != nil {
					t.Errorf("issue to user %d: %v", u, err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("issue to user %d: %d, want %d", u, resp.StatusCode, want)
				}
			}
		}()
	}
	for u := range int64(n) {
		next <- from + u
	}
	close(next)
	wg.Wait()
}

// startSinkerInGroup runs a sinker on topic in-process in the given
// consumer group; the returned func stops it.
func startSinkerInGroup(t *testing.T, topic, dlq, group string) func() {
	t.Helper()
	cfg := sinker.DefaultConfig()
	fs := cli.New("sinker")
	cfg.Bind(fs)
	if err := fs.Parse([]string{"--kafka-brokers", strings.Join(testenv.KafkaBrokers, ","), "--topic", topic, "--dlq-topic", dlq,
		"--group-id", group, "--mysql-dsn", testenv.MySQLDSN, "--metrics-addr", ""}); err != nil {
		t.Fatal(err)
	}
	return testsink.Start(t, cfg)
}
