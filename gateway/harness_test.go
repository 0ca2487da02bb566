package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
	kafkago "github.com/segmentio/kafka-go"
)

const testToken = "test-admin-token-0123456789"

// harness is one gateway served on a free port against the test stack.
type harness struct {
	t      testing.TB
	url    string
	srv    *gateway.Server
	db     *mysql.DB
	gate   *admitter.Gate
	topic  string
	client *http.Client
}

// harnessOpts adjust the gateway a test starts.
type harnessOpts struct {
	cfg        func(*gateway.Config)
	deps       func(*gateway.Deps)
	partitions int      // of the fresh topic (default 3)
	brokers    []string // default the test Kafka
	topic      string   // default a fresh topic
}

// mustStartGateway starts a gateway on the test stack (fresh topic), stopped
// at cleanup.
func mustStartGateway(tb testing.TB, o harnessOpts) *harness {
	tb.Helper()
	testenv.Integration(tb)
	h := &harness{t: tb}
	h.db = testenv.MustOpenStore(tb)
	rdb := testenv.MustOpenRedis(tb)
	logger := testenv.Logger(tb)
	var err error
	h.gate, err = admitter.NewFromClient(rdb, admitter.DefaultConfig(), logger)
	if err != nil {
		tb.Fatalf("gate: %v", err)
	}
	tb.Cleanup(func() { _ = h.gate.Close() })
	if o.partitions == 0 {
		o.partitions = 3
	}
	brokers := o.brokers
	if brokers == nil {
		brokers = testenv.KafkaBrokers
	}
	h.topic = o.topic
	if h.topic == "" {
		h.topic = testenv.MustCreateTopic(tb, o.partitions)
	}
	pcfg := kafka.DefaultConfig()
	pcfg.Brokers, pcfg.Topic = brokers, h.topic
	pub, err := kafka.New(pcfg, logger)
	if err != nil {
		tb.Fatalf("publisher: %v", err)
	}
	tb.Cleanup(func() { _ = pub.Close() })

	cfg := gateway.DefaultConfig()
	cfg.AdminToken = testToken
	cfg.ShutdownTimeout = 10 * time.Second
	// The tests assert exact outcomes under bursts of thousands of requests
	// on a loaded 2-core machine: bound the dependencies generously so that
	// a slow moment is not mistaken for an unknown outcome (503).
	cfg.GateTimeout = 10 * time.Second
	cfg.PublishTimeout = 15 * time.Second
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	deps := gateway.Deps{Store: h.db, Gate: h.gate, Publisher: pub, Changes: h.gate, Checks: map[string]gateway.Check{
		"redis": func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		"kafka": pub.Ready,
	},
		// No sinker commits in this group: the lag is every record.
		Lag: kafka.NewLag(brokers, h.topic, "test-group-"+testenv.RandomID(), cfg.LiveRefresh),
	}
	if o.deps != nil {
		o.deps(&deps)
	}
	h.srv, err = gateway.New(cfg, deps, logger)
	if err != nil {
		tb.Fatalf("gateway.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	h.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("gateway Serve: %v", err)
		}
		_ = h.srv.Close()
	})
	h.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 512, MaxConnsPerHost: 512, IdleConnTimeout: 30 * time.Second,
	}}
	tb.Cleanup(h.client.CloseIdleConnections)
	return h
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r response) code() string    { s, _ := r.json["error"].(string); return s }
func (r response) message() string { s, _ := r.json["message"].(string); return s }
func (r response) int(key string) int64 {
	f, _ := r.json[key].(float64)
	return int64(f)
}

// do sends a request; body is sent as is when a string or []byte, else as
// JSON, with Content-Type application/json. header is name, value pairs; an
// empty value removes the header. It fails the test on a transport error or
// a non-JSON answer.
func (h *harness) do(method, path string, body any, header ...string) response {
	h.t.Helper()
	r, err := h.try(method, path, body, header...)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// try is do for any goroutine: it returns the error instead.
func (h *harness) try(method, path string, body any, header ...string) (response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, fmt.Errorf("marshal: %w", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		return response{}, fmt.Errorf("request: %w", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.json); err != nil {
			return r, fmt.Errorf("%s %s: answer %d is not a JSON object: %q", method, path, resp.StatusCode, b)
		}
	}
	// Every answer a test sees is checked against the OpenAPI document
	// and counts for its coverage (TestMain).
	if err := spec().check(method, path, resp.StatusCode, resp.Header.Get("Content-Type"), b); err != nil {
		return r, err
	}
	return r, nil
}

// createCoupon creates a coupon through the API and returns its ID.
func (h *harness) createCoupon(body map[string]any) int64 {
	h.t.Helper()
	r := h.do("POST", "/v1/coupons", body, "Authorization", "Bearer "+testToken)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create coupon %v: %d %s", body, r.status, r.body)
	}
	return r.int("id")
}

// insertCoupon writes c straight to the store and initialises its gate,
// bypassing the API's checks (for a window the API refuses, like one
// already ended), and returns its ID.
func (h *harness) insertCoupon(c coupon.Coupon) int64 {
	h.t.Helper()
	if c.Strategy == "" {
		c.Strategy = coupon.StrategyAsync
	}
	ctx := context.Background()
	if err := h.db.CreateCoupon(ctx, &c); err != nil {
		h.t.Fatalf("insert coupon %+v: %v", c, err)
	}
	if err := h.gate.Init(ctx, c.ID, c.TotalQuantity); err != nil {
		h.t.Fatalf("init the gate of coupon %d: %v", c.ID, err)
	}
	return c.ID
}

func (h *harness) issue(couponID, userID int64) response {
	h.t.Helper()
	return h.do("POST", fmt.Sprintf("/v1/coupons/%d/issues", couponID), fmt.Sprintf(`{"userId": %d}`, userID))
}

// readTopic returns every record of topic (all partitions, from the start
// to the current end).
func readTopic(tb testing.TB, brokers []string, topic string) []kafkago.Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	var offs *kafkago.ListOffsetsResponse
	// A broker just restarted may answer before it loaded its partitions.
	testenv.Eventually(tb, 60*time.Second, func() error {
		md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
		if err != nil || len(md.Topics) != 1 {
			return fmt.Errorf("metadata of %s: %v", topic, err)
		}
		req := map[string][]kafkago.OffsetRequest{}
		for _, p := range md.Topics[0].Partitions {
			req[topic] = append(req[topic], kafkago.LastOffsetOf(p.ID))
		}
		if offs, err = cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: req}); err != nil {
			return fmt.Errorf("list offsets of %s: %w", topic, err)
		}
		for _, po := range offs.Topics[topic] {
			if po.Error != nil {
				return fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
		}
		return nil
	})
	var mu sync.Mutex
	var out []kafkago.Message
	var wg sync.WaitGroup
	for _, po := range offs.Topics[topic] {
		if po.LastOffset == 0 {
			continue
		}
		wg.Add(1)
		go func(p int, last int64) {
			defer wg.Done()
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 10 << 20})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					tb.Errorf("read %s/%d: %v", topic, p, err)
					return
				}
				mu.Lock()
				out = append(out, m)
				mu.Unlock()
				if m.Offset >= last-1 {
					return
				}
			}
		}(po.Partition, po.LastOffset)
	}
	wg.Wait()
	return out
}

// couponsNamed counts the coupons named name in MySQL (the raw test pool:
// a refused creation leaves no row the store's API could find).
func (h *harness) couponsNamed(name string) int {
	h.t.Helper()
	var n int
	if err := testenv.MustOpenDB(h.t).QueryRow("SELECT COUNT(*) FROM coupons WHERE name = ?", name).Scan(&n); err != nil {
		h.t.Fatalf("count coupons named %q: %v", name, err)
	}
	return n
}
