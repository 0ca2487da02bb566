package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coupondrop/coupon/internal/droptest"
	"github.com/coupondrop/coupon/internal/testenv"
)

// TestProcessesSIGTERMUnderLoad runs the real binaries as processes: a
// gateway and a sinker built from ./cmd. During load the sinker gets
// SIGTERM (and a second one takes over its group), then the gateway does:
// both exit 0 within their bounds, and every 202 the gateway gave is an
// issued row with its rank.
func TestProcessesSIGTERMUnderLoad(t *testing.T) {
	testenv.Integration(t)
	store := testenv.MustOpenStore(t)
	bins := buildBinaries(t, "gateway", "sinker")
	topic := testenv.MustCreateTopic(t, 3)
	dlq := testenv.MustCreateTopic(t, 1)
	const token = "process-test-admin-token"
	group := "test-" + testenv.RandomID()
	newSinker := func(name string) *binProc {
		p, _ := startSinker(t, name, bins["sinker"], topic, dlq, group, "COUPON_SHUTDOWN_TIMEOUT=10s")
		return p
	}
	sinkerA := newSinker("sinker-a")
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	gw, base := startGateway(t, "gateway", bins["gateway"], client, token, topic, "COUPON_SHUTDOWN_TIMEOUT=10s")
	couponID := mustCreateCoupon(t, client, base, token, "process sigterm")
	load := startIssueLoad(client, base, couponID, 2*time.Minute)

	// The sinker stops mid-load (finishing and committing its batch); a
	// second one takes the group over.
	testenv.Eventually(t, 60*time.Second, load.AtLeast(droptest.Accepted, 300))
	sinkerA.terminate(t, 20*time.Second)
	sinkerB := newSinker("sinker-b")

	// The gateway stops mid-load: it drains the requests in flight.
	testenv.Eventually(t, 60*time.Second, load.AtLeast(droptest.Accepted, load.Count(droptest.Accepted)+300))
	beforeTERM := load.Count(droptest.Accepted)
	gw.terminate(t, 20*time.Second)
	load.Stop()
	res := load.Wait(t)
	t.Logf("%s; %d accepted after SIGTERM", res, res.Counts[droptest.Accepted]-beforeTERM)

	droptest.Check(t, store, nil, couponID, supply, res, 90*time.Second)
	sinkerB.terminate(t, 20*time.Second)
}

// startGateway runs the gateway binary at path on a free port against the
// test stack and topic, with the admin token and env besides, and waits
// until it is ready; it returns the process and its base URL.
func startGateway(t *testing.T, name, path string, client *http.Client, token, topic string, env ...string) (*binProc, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := startBinary(t, name, path, slices.Concat([]string{
		"COUPON_HTTP_ADDR=" + addr, "COUPON_ADMIN_TOKEN=" + token,
		"COUPON_MYSQL_DSN=" + testenv.MySQLDSN, "COUPON_KAFKA_BROKERS=" + strings.Join(testenv.KafkaBrokers, ","), "COUPON_TOPIC=" + topic,
		"COUPON_LOG_FORMAT=text"}, testenv.RedisGatewayEnv(), env)...)
	base := "http://" + addr
	testenv.Eventually(t, 60*time.Second, func() error {
		if p.exited() {
			t.Fatalf("%s exited before serving:\n%s", name, p.logTail())
		}
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})
	return p, base
}

// startSinker runs the sinker binary at path against the test stack's
// brokers and MySQL, reading topic (dead letters to dlq) in group, with a
// metrics listener on a free port and env besides (a later setting wins,
// so env may replace any of these); it returns the process and the
// metrics listener's base URL.
func startSinker(t *testing.T, name, path, topic, dlq, group string, env ...string) (*binProc, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := startBinary(t, name, path, slices.Concat([]string{
		"COUPON_KAFKA_BROKERS=" + strings.Join(testenv.KafkaBrokers, ","), "COUPON_TOPIC=" + topic, "COUPON_DLQ_TOPIC=" + dlq,
		"COUPON_GROUP_ID=" + group, "COUPON_MYSQL_DSN=" + testenv.MySQLDSN,
		"COUPON_METRICS_ADDR=" + addr, "COUPON_LOG_FORMAT=text"}, env)...)
	return p, "http://" + addr
}

// buildBinaries builds ./cmd/<name> for each name into a temporary folder.
func buildBinaries(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, name := range names {
		path := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", path, "github.com/coupondrop/coupon/cmd/"+name)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, b)
		}
		out[name] = path
	}
	return out
}

// binProc is a running binary whose output goes to a log file.
type binProc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error // of Wait, once done is closed
}

// startBinary runs path with the environment plus env; it is killed at
// cleanup if still running.
func startBinary(t *testing.T, name, path string, env ...string) *binProc {
	t.Helper()
	p := &binProc{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(path)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.logTail())
		}
	})
	return p
}

func (p *binProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM and fails unless the process exits 0 within bound.
func (p *binProc) terminate(t *testing.T, bound time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(bound):
		t.Fatalf("%s still running %s after SIGTERM", p.name, bound)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, p.logTail())
	}
	t.Logf("%s exited 0, %s after SIGTERM", p.name, time.Since(start).Round(time.Millisecond))
}

// logTail returns the end of the process's output.
func (p *binProc) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill sends SIGKILL (a crash: nothing drains) and waits until the process is gone.
func (p *binProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	<-p.done
	t.Logf("killed %s (-9)", p.name)
}
