package sinker_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coupondrop/coupon"
	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/sinker"
	driver "github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
)

// TestRidesOutBrokerKill: kill -9 the (private) broker while admissions are
// published and the built sinker consumes them: the sinker stays up through
// the outage, its /readyz answers 503 naming Kafka, it logs the outage once
// and its end once, and once the broker is back every acknowledged
// admission is exactly one row.
func TestRidesOutBrokerKill(t *testing.T) {
	st := testenv.MustStartPrivate(t, stack.Kafka)
	brokers := st.KafkaBrokers()
	db := testenv.MustOpenDB(t)
	o := startOutageRun(t, db, brokers, brokers, testenv.MySQLDSN)

	// The old sinker exited on the reader's first fetch error: wait for
	// two during the outage.
	o.killAndRestart(t, st, stack.Kafka, func() {
		o.waitMetric(t, `coupon_sinker_kafka_reader_errors_total{kind="fetch"}`, 2)
	})
}

// TestRidesOutDatabaseKill: the same with the (private) MariaDB killed -9
// under load: the sinker retries its batch without committing, /readyz
// names MySQL, and every acknowledged admission is exactly one row.
func TestRidesOutDatabaseKill(t *testing.T) {
	st := testenv.MustStartPrivate(t, stack.MySQL)
	db, dsn := testenv.MustOpenStackDB(t, st)
	o := startOutageRun(t, db, testenv.KafkaBrokers, nil, dsn)

	o.killAndRestart(t, st, stack.MySQL, func() {})
}

// TestWaitsForDatabaseAtStart: a sinker started while MariaDB is down does
// not exit: /readyz answers 503 naming MySQL, it logs the outage once, and
// once MariaDB is up it writes every acknowledged admission exactly once.
func TestWaitsForDatabaseAtStart(t *testing.T) {
	st := testenv.MustStartPrivate(t, stack.MySQL)
	db, dsn := testenv.MustOpenStackDB(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := startOutageRunUnready(t, db, testenv.KafkaBrokers, nil, dsn, func() {
		if err := st.Stop(ctx, stack.MySQL); err != nil {
			t.Fatalf("stop mysql: %v", err)
		}
	})
	o.waitUnready(t, "mysql: ")
	o.waitLog(t, `level=WARN msg="mysql unavailable`)
	o.alive(t)
	if err := st.Start(ctx, stack.MySQL); err != nil {
		t.Fatalf("start mysql: %v", err)
	}
	o.finish(t)
	o.mustLogOutageOnce(t, stack.MySQL)
}

// killAndRestart kills service -9 once the sinker has written rows, waits
// until /readyz names it and the sinker has logged the outage (and for
// during), restarts it, and checks the rows and that the outage was logged
// once.
func (o *outageRun) killAndRestart(t *testing.T, st *stack.Stack, service string, during func()) {
	t.Helper()
	o.waitRows(t, 2000)
	t0 := time.Now()
	if err := st.Kill(service); err != nil {
		t.Fatalf("kill -9 %s: %v", service, err)
	}
	o.waitUnready(t, service+": ")
	during()
	o.waitLog(t, `level=WARN msg="`+service+` unavailable`)
	t.Logf("%s after the kill: restarting %s", time.Since(t0).Round(time.Millisecond), service)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := st.Start(ctx, service); err != nil {
		t.Fatalf("restart %s: %v", service, err)
	}
	t1 := time.Now()
	o.finish(t)
	t.Logf("ready again %s after %s", o.readyAt.Sub(t1).Round(time.Millisecond), service)
	o.mustLogOutageOnce(t, service)
}

// outageRun is a sinker process consuming a steady stream of admissions.
type outageRun struct {
	db      *sql.DB
	sinker  *proc
	metrics string // host:port of its /metrics and /readyz
	load    *admissionLoad
	readyAt time.Time // when finish saw /readyz answer 200 again
}

// startOutageRun starts an outage run (startOutageRunUnready) and waits
// until the sinker is ready.
func startOutageRun(t *testing.T, db *sql.DB, brokers, topicBrokers []string, dsn string) *outageRun {
	t.Helper()
	o := startOutageRunUnready(t, db, brokers, topicBrokers, dsn, nil)
	o.waitReady(t)
	return o
}

// startOutageRunUnready creates coupons and a topic (on topicBrokers when
// set, else the test stack's), runs before (if set), starts the built
// sinker against brokers and dsn, and starts publishing.
func startOutageRunUnready(t *testing.T, db *sql.DB, brokers, topicBrokers []string, dsn string, before func()) *outageRun {
	t.Helper()
	if topicBrokers == nil {
		topicBrokers = testenv.KafkaBrokers
	}
	topic := testenv.MustCreateTopicOn(t, topicBrokers, 4)
	dlq := testenv.MustCreateTopicOn(t, topicBrokers, 1)
	var coupons []int64
	for range 4 {
		coupons = append(coupons, mustCreateCoupon(t, db, 10_000_000))
	}
	if before != nil {
		before()
	}
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	p := startSinkerProc(t, topic, dlq, "sinker-outage-"+testenv.RandomID(),
		"COUPON_KAFKA_BROKERS="+strings.Join(brokers, ","), "COUPON_MYSQL_DSN="+dsn, "COUPON_METRICS_ADDR="+addr)
	return &outageRun{db: db, sinker: p, metrics: addr, load: startAdmissionLoad(t, brokers, topic, coupons)}
}

// waitRows waits until the sinker has written n rows.
func (o *outageRun) waitRows(t *testing.T, n int64) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() error {
		if got := o.rows(t); got < n {
			return fmt.Errorf("%d of %d rows", got, n)
		}
		return nil
	})
}

func (o *outageRun) rows(t *testing.T) int64 {
	t.Helper()
	var n int64
	q := `SELECT COUNT(*) FROM coupon_issues WHERE coupon_id IN (` + joinIDs(o.load.coupons) + `)`
	if err := o.db.QueryRow(q).Scan(&n); err != nil {
		return -1 // the database may be down
	}
	return n
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}

func (o *outageRun) waitReady(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() error {
		code, body, err := httpGet("http://" + o.metrics + "/readyz")
		if err != nil || code != 200 {
			return fmt.Errorf("/readyz: %d %s %v", code, body, err)
		}
		return nil
	})
}

// waitUnready waits until /readyz answers 503 with an error starting with
// prefix.
func (o *outageRun) waitUnready(t *testing.T, prefix string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		o.alive(t)
		code, body, err := httpGet("http://" + o.metrics + "/readyz")
		if err != nil || code != 503 || !strings.Contains(body, `"error":"`+prefix) {
			return fmt.Errorf("/readyz: %d %s %v", code, strings.TrimSpace(body), err)
		}
		t.Logf("during the outage /readyz: %d %s", code, strings.TrimSpace(body))
		return nil
	})
}

// waitLog waits until the sinker has logged a line holding s.
func (o *outageRun) waitLog(t *testing.T, s string) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		o.alive(t)
		if !strings.Contains(o.log(), s) {
			return fmt.Errorf("the sinker has not logged %s yet", s)
		}
		return nil
	})
}

func (o *outageRun) log() string {
	o.sinker.mu.Lock()
	defer o.sinker.mu.Unlock()
	return o.sinker.log.String()
}

// waitMetric waits until the sinker's series reaches at least min.
func (o *outageRun) waitMetric(t *testing.T, series string, min float64) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() error {
		o.alive(t)
		v, err := o.metric(series)
		if err != nil || v < min {
			return fmt.Errorf("%s = %v (%v), want >= %v", series, v, err, min)
		}
		return nil
	})
}

func (o *outageRun) metric(series string) (float64, error) {
	code, body, err := httpGet("http://" + o.metrics + "/metrics")
	if err != nil || code != 200 {
		return 0, fmt.Errorf("/metrics: %d %v", code, err)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no series %s", series)
}

// alive fails the test if the sinker process has exited.
func (o *outageRun) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-o.sinker.done:
		o.sinker.done <- err
		t.Fatalf("the sinker exited during the outage: %v", err)
	default:
	}
}

// finish waits for the sinker to be ready again, goes on publishing until
// admissions published after the outage are written too, stops the load
// and checks MySQL: every acknowledged admission is exactly one row, and
// no row is of an admission never published.
func (o *outageRun) finish(t *testing.T) {
	t.Helper()
	o.waitReady(t)
	o.readyAt = time.Now()
	after := o.load.ackedCount() + 2000
	testenv.Eventually(t, 2*time.Minute, func() error {
		if n := o.load.ackedCount(); n < after {
			return fmt.Errorf("%d admissions acknowledged, waiting for %d", n, after)
		}
		return nil
	})
	acked, unknown := o.load.stop(t)
	o.alive(t)
	var want int64
	for _, us := range acked {
		want += int64(len(us))
	}
	testenv.Eventually(t, 3*time.Minute, func() error {
		if got := o.rows(t); got < want {
			return fmt.Errorf("%d rows of %d acknowledged admissions", got, want)
		}
		return nil
	})
	var extra, nUnknown int
	for _, id := range o.load.coupons {
		rows := map[int64]int{}
		var issued int64
		if err := o.db.QueryRow(`SELECT issued_quantity FROM coupons WHERE id = ?`, id).Scan(&issued); err != nil {
			t.Fatal(err)
		}
		r, err := o.db.Query(`SELECT user_id, issue_rank FROM coupon_issues WHERE coupon_id = ?`, id)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var u, rank int64
			if err := r.Scan(&u, &rank); err != nil {
				t.Fatal(err)
			}
			rows[u]++
			if rank != u-o.load.userBase {
				t.Errorf("coupon %d user %d has rank %d, published with %d", id, u, rank, u-o.load.userBase)
			}
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		r.Close()
		for u := range acked[id] {
			if rows[u] != 1 {
				t.Errorf("coupon %d: acknowledged user %d has %d rows, want 1", id, u, rows[u])
			}
		}
		for u, n := range rows {
			switch {
			case n != 1:
				t.Errorf("coupon %d: user %d has %d rows", id, u, n)
			case acked[id][u]:
			case unknown[id][u]:
				extra++ // a publish that failed on our side yet reached the broker
			default:
				t.Errorf("coupon %d: row for user %d, never published", id, u)
			}
		}
		if issued != int64(len(rows)) {
			t.Errorf("coupon %d: issued_quantity %d, %d rows", id, issued, len(rows))
		}
		nUnknown += len(unknown[id])
	}
	t.Logf("%d admissions acknowledged, %d publishes failed (%d of them reached the topic anyway): %d rows",
		want, nUnknown, extra, want+int64(extra))
}

// mustLogOutageOnce checks the sinker logged the outage of dep once when it
// started and once when it ended, and no reader read-timeout warnings.
func (o *outageRun) mustLogOutageOnce(t *testing.T, dep string) {
	t.Helper()
	log := o.log()
	starts := strings.Count(log, "level=WARN msg=\""+dep+" unavailable")
	ends := strings.Count(log, "level=INFO msg=\""+dep+" available again")
	warns := strings.Count(log, "level=WARN")
	if starts != 1 || ends != 1 {
		t.Errorf("the sinker logged %d outage starts and %d ends of %s, want one each:\n%s", starts, ends, dep, log)
	}
	if strings.Contains(log, "level=WARN msg=\"the kafka reader got an unknown error") {
		t.Errorf("the reader's errors were logged as warnings:\n%s", log)
	}
	t.Logf("sinker log: %d lines, %d warnings", strings.Count(log, "\n"), warns)
}

// admissionLoad publishes admissions of its coupons round robin, about
// 4,000 a second in batches, the way the gateway does (acks=all), and
// records which ones the broker acknowledged and which failed (these may
// still have reached the topic).
type admissionLoad struct {
	coupons  []int64
	userBase int64
	w        *kafka.Writer
	halt     atomic.Bool
	done     chan struct{}

	mu      sync.Mutex
	acked   map[int64]map[int64]bool // coupon -> users
	unknown map[int64]map[int64]bool
	nAcked  int64
}

func startAdmissionLoad(t *testing.T, brokers []string, topic string, coupons []int64) *admissionLoad {
	t.Helper()
	l := &admissionLoad{
		coupons: coupons, userBase: 1 << 32, done: make(chan struct{}),
		acked: map[int64]map[int64]bool{}, unknown: map[int64]map[int64]bool{},
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Topic:        topic,
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: 2 * time.Millisecond,
			BatchSize:    1000,
			MaxAttempts:  2,
			WriteTimeout: 2 * time.Second,
		},
	}
	for _, id := range coupons {
		l.acked[id], l.unknown[id] = map[int64]bool{}, map[int64]bool{}
	}
	go l.run()
	t.Cleanup(func() { l.stop(t) })
	return l
}

func (l *admissionLoad) run() {
	defer close(l.done)
	const perTick = 200
	tick := time.NewTicker(50 * time.Millisecond) // the load's pace
	defer tick.Stop()
	rank := int64(0)
	for !l.halt.Load() {
		<-tick.C
		msgs := make([]kafka.Message, 0, perTick)
		as := make([]coupon.Admission, 0, perTick)
		for i := range perTick {
			if i%len(l.coupons) == 0 {
				rank++
			}
			a := coupon.Admission{CouponID: l.coupons[i%len(l.coupons)], UserID: l.userBase + rank, Rank: rank,
				AdmittedAt: time.Now().UTC().Truncate(time.Microsecond), RequestID: "outage"}
			v, err := coupon.MarshalAdmission(a)
			if err != nil {
				panic(err)
			}
			as = append(as, a)
			msgs = append(msgs, kafka.Message{Key: coupon.EventKey(a.CouponID), Value: v})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := l.w.WriteMessages(ctx, msgs...)
		cancel()
		werrs, _ := err.(kafka.WriteErrors)
		l.mu.Lock()
		for i, a := range as {
			if err == nil || (werrs != nil && werrs[i] == nil) {
				l.acked[a.CouponID][a.UserID] = true
				l.nAcked++
			} else {
				l.unknown[a.CouponID][a.UserID] = true
			}
		}
		l.mu.Unlock()
	}
}

func (l *admissionLoad) ackedCount() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nAcked
}

// stop ends the load and returns what was acknowledged and what failed.
func (l *admissionLoad) stop(t *testing.T) (acked, unknown map[int64]map[int64]bool) {
	if !l.halt.Swap(true) {
		<-l.done
		if err := l.w.Close(); err != nil {
			t.Logf("close the load's writer: %v", err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked, l.unknown
}

// TestRefusedDatabaseEndsRun: a MySQL that answers and refuses the sinker
// (an unknown user: a configuration error) ends Run with an error naming
// it, instead of being waited for.
func TestRefusedDatabaseEndsRun(t *testing.T) {
	testenv.Integration(t)
	cfg := testConfig(testenv.MustCreateTopic(t, 1), testenv.MustCreateTopic(t, 1))
	dsn, err := driver.ParseDSN(testenv.MySQLDSN)
	if err != nil {
		t.Fatal(err)
	}
	dsn.User, dsn.Passwd = "no_such_user_"+testenv.RandomID(), "x"
	cfg.MySQL.DSN = dsn.FormatDSN()
	s, err := sinker.New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Run(ctx); err == nil || !strings.Contains(err.Error(), "refused the connection") || ctx.Err() != nil {
		t.Fatalf("Run with an unknown MySQL user: %v (ctx %v); want a refused connection", err, ctx.Err())
	}
}
