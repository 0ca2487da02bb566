package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon/admitter"
	"github.com/coupondrop/coupon/gateway"
	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/internal/droptest"
	"github.com/coupondrop/coupon/internal/testenv"
	"github.com/coupondrop/coupon/kafka"
	"github.com/coupondrop/coupon/mysql"
)

func TestParseConfig(t *testing.T) {
	t.Setenv("COUPON_ADMIN_TOKEN", "")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // substrings of the error; none means valid
	}{
		{"defaults need a token", nil, nil, []string{"admin token is required (COUPON_ADMIN_TOKEN)"}},
		{"valid", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef"}, nil, nil},
		{"flag over env", map[string]string{"COUPON_ADMIN_TOKEN": "short"}, []string{"--admin-token", "0123456789abcdef"}, nil},
		{"every problem at once", map[string]string{"COUPON_ADMIN_TOKEN": "short", "COUPON_LOG_FORMAT": "xml", "COUPON_BASELINES": "async,nope", "COUPON_BODY_LIMIT": "10"},
			nil, []string{"admin token must be at least 16", "log format must be json or text", `baselines: "async"`, `baselines: "nope"`, "body limit must be from 256 bytes"}},
		{"bad duration", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef", "COUPON_CACHE_TTL": "soon"}, nil, []string{`COUPON_CACHE_TTL="soon": not a duration`}},
		{"negative timeout", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef"}, []string{"--publish-timeout", "-1s"}, []string{"publish timeout must be positive"}},
		{"short jwt secret", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef", "COUPON_JWT_HS256_SECRET": "x"}, nil, []string{"HS256 secret must be at least 32 bytes"}},
		{"two jwt keys", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef", "COUPON_JWT_HS256_SECRET": strings.Repeat("s", 32), "COUPON_JWT_PUBLIC_KEY_FILE": "/k.pem"}, nil, []string{"only one of"}},
		{"rate limit", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef", "COUPON_RATE_LIMIT": "30/m", "COUPON_RATE_LIMIT_BY_IP": "true"}, nil, nil},
		{"gate batch too large", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef", "COUPON_GATE_BATCH_MAX": "5000"}, nil, []string{"gate batch max must be 1..2048 (COUPON_GATE_BATCH_MAX)"}},
		{"bad rate limit", map[string]string{"COUPON_ADMIN_TOKEN": "0123456789abcdef", "COUPON_RATE_LIMIT": "fast"}, nil, []string{`rate limit "fast"`, "COUPON_RATE_LIMIT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, fs, err := parseConfig(tt.args)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				for i := 0; i+1 < len(fs.Redacted()); i += 2 {
					if kv := fs.Redacted(); kv[i] == "admin-token" && kv[i+1] != "[redacted]" {
						t.Fatalf("admin token logged as %v", kv[i+1])
					}
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("error %v; want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestParseConfigDefaults: with nothing set but the admin token, each
// component's configuration is its DefaultConfig (the binary has no
// defaults of its own); the connection settings arrive as lists of every
// address given.
func TestParseConfigDefaults(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "COUPON_") {
			t.Setenv(k, "") // restored at cleanup
			os.Unsetenv(k)
		}
	}
	t.Setenv("COUPON_ADMIN_TOKEN", "0123456789abcdef")
	cfg, _, err := parseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	http := gateway.DefaultConfig()
	http.AdminToken = "0123456789abcdef"
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"gateway", cfg.HTTP, http}, {"admitter", cfg.Gate, admitter.DefaultConfig()},
		{"kafka", cfg.Kafka, kafka.DefaultConfig()}, {"mysql", cfg.MySQL, mysql.DefaultConfig()},
		{"log", cfg.Log, cli.DefaultLog()},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s config %+v, want its DefaultConfig %+v", c.name, c.got, c.want)
		}
	}

	t.Setenv("COUPON_KAFKA_BROKERS", "127.0.0.1:1,127.0.0.1:2, 127.0.0.1:3")
	cfg, _, err = parseConfig([]string{"--redis-addrs", "127.0.0.1:4,127.0.0.1:5", "--baselines", ""})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}; !reflect.DeepEqual(cfg.Kafka.Brokers, want) {
		t.Errorf("kafka brokers %q, want %q", cfg.Kafka.Brokers, want)
	}
	if want := []string{"127.0.0.1:4", "127.0.0.1:5"}; !reflect.DeepEqual(cfg.Gate.Addrs, want) {
		t.Errorf("redis addresses %q, want %q", cfg.Gate.Addrs, want)
	}
	if len(cfg.Baselines) != 0 {
		t.Errorf("baselines %q, want none", cfg.Baselines)
	}
}

// TestSIGTERMUnderLoad runs the whole gateway binary in-process with a
// sinker, sends SIGTERM during load, and checks that the gateway drains and
// exits 0, and every 202 it gave ends up as an issued row with its rank.
func TestSIGTERMUnderLoad(t *testing.T) {
	testenv.Integration(t)
	store := testenv.MustOpenStore(t) // migrated
	topic := testenv.MustCreateTopic(t, 3)
	dlq := testenv.MustCreateTopic(t, 1)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	const token = "sigterm-test-admin-token"

	code := make(chan int, 1)
	logs := &syncWriter{w: &bytes.Buffer{}}
	go func() {
		code <- realMain([]string{"--http-addr", addr, "--admin-token", token,
			"--redis-addrs", testenv.RedisAddr, fmt.Sprintf("--redis-cluster=%t", testenv.RedisCluster), "--mysql-dsn", testenv.MySQLDSN, "--kafka-brokers", strings.Join(testenv.KafkaBrokers, ","),
			"--topic", topic, "--log-format", "text", "--log-level", "warn", "--shutdown-timeout", "10s"}, logs)
	}()
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	testenv.Eventually(t, 30*time.Second, func() error {
		select {
		case c := <-code:
			t.Fatalf("gateway exited with %d before serving: %s", c, logs.String())
		default:
		}
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	couponID := mustCreateCoupon(t, client, base, token, "sigterm")

	sk := mustStartSinker(t, topic, dlq)

	load := startIssueLoad(client, base, couponID, 60*time.Second)
	testenv.Eventually(t, 30*time.Second, load.AtLeast(droptest.Accepted, 300))
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("gateway exited with %d after SIGTERM: %s", c, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit within 30s of SIGTERM")
	}
	load.Stop()
	res := load.Wait(t)
	t.Logf("before shutdown: %s", res)

	// Every 202 is an issued row with its rank.
	droptest.Check(t, store, nil, couponID, supply, res, 60*time.Second)
	sk()
}

// supply is the coupons' of mustCreateCoupon: more than any load takes.
const supply = 1_000_000

// mustCreateCoupon creates an async coupon of supply through the admin API
// and returns its ID.
func mustCreateCoupon(t *testing.T, client *http.Client, base, token, name string) int64 {
	t.Helper()
	return createCoupon(t, client, base, token, name, supply)
}

// startIssueLoad is 16 clients issuing the coupon (of supply) to fresh
// users through base until the gateway refuses connections, or within
// passes; a connection broken by the shutdown is an unknown outcome.
func startIssueLoad(client *http.Client, base string, couponID int64, within time.Duration) *droptest.Load {
	return droptest.Start(droptest.Config{Client: client, Bases: []string{base}, CouponID: couponID, Within: within,
		GatewaysMayDie: true, StopWhenRefused: true})
}

// mustAllIssued waits until every accepted user of couponID is an issued
// row, then checks each row keeps the rank the user was told.
func mustAllIssued(t *testing.T, db *sql.DB, couponID int64, accepted map[int64]int64, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM coupon_issues WHERE coupon_id = ?`, couponID).Scan(&n); err != nil {
			return err
		}
		if n < len(accepted) {
			return fmt.Errorf("%d of %d accepted requests issued", n, len(accepted))
		}
		return nil
	})
	rows, err := db.Query(`SELECT user_id, issue_rank FROM coupon_issues WHERE coupon_id = ?`, couponID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	issued := map[int64]int64{}
	for rows.Next() {
		var u, r int64
		if err := rows.Scan(&u, &r); err != nil {
			t.Fatal(err)
		}
		issued[u] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for u, r := range accepted {
		if got, ok := issued[u]; !ok || got != r {
			t.Fatalf("user %d accepted with rank %d; issued %v with rank %d", u, r, ok, got)
		}
	}
}

// mustStartSinker runs a sinker on topic in-process; the returned func stops it.
func mustStartSinker(t *testing.T, topic, dlq string) func() {
	t.Helper()
	return startSinkerInGroup(t, topic, dlq, "test-"+testenv.RandomID())
}

// syncWriter serialises writes of concurrent loggers into w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.w)
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
