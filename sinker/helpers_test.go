package sinker_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/internal/testsink"
	"github.com/coupondrop/coupon/sinker"
	"github.com/segmentio/kafka-go"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mustBuildSinker builds ./cmd/sinker once per test binary.
func mustBuildSinker(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sinker-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sinker")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/sinker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/sinker: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// proc is a sinker subprocess.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  *bytes.Buffer
	done chan error
}

// Write collects the process output.
func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

// startSinkerProc runs the built sinker with the test stack's addresses;
// it is killed at cleanup if still running.
func startSinkerProc(tb testing.TB, topic, dlq, group string, extraEnv ...string) *proc {
	tb.Helper()
	cmd := exec.Command(mustBuildSinker(tb))
	cmd.Env = append(os.Environ(),
		"COUPON_KAFKA_BROKERS="+strings.Join(testenv.KafkaBrokers, ","),
		"COUPON_TOPIC="+topic,
		"COUPON_DLQ_TOPIC="+dlq,
		"COUPON_GROUP_ID="+group,
		"COUPON_MYSQL_DSN="+testenv.MySQLDSN,
		"COUPON_METRICS_ADDR=",
		"COUPON_SESSION_TIMEOUT=6s",
		"COUPON_LOG_FORMAT=text",
		"COUPON_LOG_LEVEL=info",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	p := &proc{cmd: cmd, log: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout = p
	cmd.Stderr = p
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start sinker: %v", err)
	}
	go func() { p.done <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if tb.Failed() {
			p.mu.Lock()
			tb.Logf("sinker pid %d log:\n%s", cmd.Process.Pid, p.log.String())
			p.mu.Unlock()
		}
	})
	return p
}

// batches counts the batches the process logged as settled (debug level).
func (p *proc) batches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Count(p.log.String(), "batch settled")
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *proc) kill9(tb testing.TB) {
	tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatalf("kill -9: %v", err)
	}
	err := <-p.done
	p.done <- err // for the cleanup
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		tb.Fatalf("sinker exited with %v, not by SIGKILL", err)
	}
}

// runSinker runs a sinker in this process until cleanup.
func runSinker(tb testing.TB, cfg sinker.Config) {
	tb.Helper()
	testsink.Start(tb, cfg)
}

func testConfig(topic, dlq string) sinker.Config {
	return testsink.Config("sinker-test", topic, dlq)
}

// mustCreateCoupon inserts an async coupon with the given total.
func mustCreateCoupon(tb testing.TB, db *sql.DB, total int64) int64 {
	tb.Helper()
	r, err := db.ExecContext(context.Background(),
		`INSERT INTO coupons (name, total_quantity) VALUES (?, ?)`, "sinker-test", total)
	if err != nil {
		tb.Fatalf("create coupon: %v", err)
	}
	id, _ := r.LastInsertId()
	return id
}

// admissions returns n admissions of couponID: user userBase+rank, ranks 1..n.
func admissions(couponID, userBase int64, n int) []coupon.Admission {
	at := time.Now().UTC().Truncate(time.Microsecond)
	out := make([]coupon.Admission, n)
	for i := range out {
		rank := int64(i + 1)
		out[i] = coupon.Admission{CouponID: couponID, UserID: userBase + rank, Rank: rank,
			AdmittedAt: at.Add(time.Duration(i) * time.Microsecond), RequestID: "r" + strconv.FormatInt(rank, 10)}
	}
	return out
}

// mustProduce writes records keyed by coupon (Murmur2, like the gateway) in
// large batches from a few goroutines, in order per coupon.
func mustProduce(tb testing.TB, topic string, recs []kafka.Message) {
	tb.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(testenv.KafkaBrokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    5_000,
		BatchBytes:   1_000_000, // the broker's default max.message.bytes is 1 MiB
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const chunk = 50_000 // WriteMessages keeps order within one call
	for start := 0; start < len(recs); start += chunk {
		if err := w.WriteMessages(ctx, recs[start:min(start+chunk, len(recs))]...); err != nil {
			tb.Fatalf("produce: %v", err)
		}
	}
}

func admissionMessages(tb testing.TB, as []coupon.Admission) []kafka.Message {
	tb.Helper()
	out := make([]kafka.Message, len(as))
	for i, a := range as {
		v, err := coupon.MarshalAdmission(a)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = kafka.Message{Key: coupon.EventKey(a.CouponID), Value: v}
	}
	return out
}

// couponState is what MySQL holds for a coupon.
type couponState struct {
	rows, issued       int64
	minRank, maxRank   int64
	badUsers, distinct int64
}

// mustCouponState checks rows against the admissions' shape: user = base + rank.
func mustCouponState(tb testing.TB, db *sql.DB, couponID, userBase int64) couponState {
	tb.Helper()
	var s couponState
	err := db.QueryRowContext(context.Background(), `SELECT COUNT(*), COALESCE(MIN(issue_rank),0), COALESCE(MAX(issue_rank),0),
		COALESCE(SUM(user_id - ? <> issue_rank),0), COUNT(DISTINCT issue_rank),
		(SELECT issued_quantity FROM coupons WHERE id = ?)
		FROM coupon_issues WHERE coupon_id = ?`, userBase, couponID, couponID).
		Scan(&s.rows, &s.minRank, &s.maxRank, &s.badUsers, &s.distinct, &s.issued)
	if err != nil {
		tb.Fatalf("coupon %d state: %v", couponID, err)
	}
	return s
}

// mustEndOffsets returns the topic's end offsets per partition.
func mustEndOffsets(tb testing.TB, topic string, parts int) map[int]int64 {
	tb.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers...), Timeout: 10 * time.Second}
	req := make([]kafka.OffsetRequest, parts)
	for p := range req {
		req[p] = kafka.LastOffsetOf(p)
	}
	res, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		tb.Fatalf("list offsets: %v", err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			tb.Fatalf("list offsets %d: %v", p.Partition, p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out
}

// committedOffsets returns the group's committed offsets per partition.
func committedOffsets(topic, group string, parts int) (map[int]int64, error) {
	cl := &kafka.Client{Addr: kafka.TCP(testenv.KafkaBrokers...), Timeout: 10 * time.Second}
	ps := make([]int, parts)
	for p := range ps {
		ps[p] = p
	}
	res, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// waitCommitted waits until the group has committed up to the end offsets.
func waitCommitted(tb testing.TB, topic, group string, parts int, within time.Duration) {
	tb.Helper()
	end := mustEndOffsets(tb, topic, parts)
	testenv.Eventually(tb, within, func() error {
		got, err := committedOffsets(topic, group, parts)
		if err != nil {
			return err
		}
		for p, e := range end {
			if got[p] != e && !(e == 0 && got[p] < 0) { // an empty partition has nothing to commit
				return fmt.Errorf("partition %d committed %d, end %d", p, got[p], e)
			}
		}
		return nil
	})
}

// readAll reads every record of a topic partition up to its end offset.
func readAll(tb testing.TB, topic string, partition int) []kafka.Message {
	tb.Helper()
	end := mustEndOffsets(tb, topic, partition+1)[partition]
	if end == 0 {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: testenv.KafkaBrokers, Topic: topic, Partition: partition, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			tb.Fatalf("read %s/%d: %v", topic, partition, err)
		}
		out = append(out, m)
		if m.Offset >= end-1 {
			return out
		}
	}
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func httpGet(url string) (int, string, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	return res.StatusCode, b.String(), nil
}
