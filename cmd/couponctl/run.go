package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coupondrop/coupon/internal/cli"
)

func init() {
	register("run", "the whole system in the foreground: dev stack, migrations, topics, gateway and sinker", runRun)
}

// child is one binary run by `couponctl run`.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func runRun(ctx context.Context, args []string) error {
	fs := cli.New("run")
	var f stackFlags
	f.bind(fs)
	var binDir, httpAddr, metricsAddr string
	var tf topicFlags
	var stopTimeout time.Duration
	fs.StringVar(&binDir, "bin-dir", "COUPON_BIN_DIR", "", "folder of the gateway and sinker binaries (default <repo>/bin)")
	fs.StringVar(&httpAddr, "http-addr", "COUPON_HTTP_ADDR", "127.0.0.1:8080", "gateway listen address")
	fs.StringVar(&metricsAddr, "metrics-addr", "COUPON_METRICS_ADDR", "127.0.0.1:9464", "sinker metrics listen address")
	tf.bind(fs)
	fs.DurationVar(&stopTimeout, "stop-timeout", "COUPON_STOP_TIMEOUT", 30*time.Second, "how long gateway and sinker get to exit after SIGTERM")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if binDir == "" {
		binDir = filepath.Join(repoRoot(), "bin")
	}

	// 1. The stack (idempotent; it stays up after run exits: `make down`).
	st, err := f.open()
	if err != nil {
		return err
	}
	if err := st.Up(ctx); err != nil {
		return err
	}
	dsn := st.MySQLDSN(dbName(f.profile))
	tf.brokers = st.KafkaBrokers()

	// 2. Schema and topics.
	if err := migrateDB(ctx, dsn); err != nil {
		return err
	}
	if err := tf.ensure(ctx); err != nil {
		return err
	}

	// 3. The admin token.
	token := os.Getenv("COUPON_ADMIN_TOKEN")
	if token == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		token = hex.EncodeToString(b)
		fmt.Printf("\nCOUPON_ADMIN_TOKEN was unset; generated admin token for this run:\n  %s\n", token)
	}

	env := append(os.Environ(),
		"COUPON_MYSQL_DSN="+dsn,
		"COUPON_KAFKA_BROKERS="+strings.Join(tf.brokers, ","),
		"COUPON_TOPIC="+tf.topic,
		"COUPON_DLQ_TOPIC="+tf.dlq,
		"COUPON_ADMIN_TOKEN="+token,
		"COUPON_HTTP_ADDR="+httpAddr,
		"COUPON_METRICS_ADDR="+metricsAddr,
	)
	env = append(env, redisEnv(st)...)

	// 4. Gateway and sinker, when built.
	var children []*child
	var missing []string
	for _, name := range []string{"sinker", "gateway"} {
		path := filepath.Join(binDir, name)
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			missing = append(missing, name)
			continue
		}
		cmd := exec.Command(path)
		cmd.Env = env
		cmd.Stdout = prefixWriter(name, os.Stdout)
		cmd.Stderr = prefixWriter(name, os.Stderr)
		// Own process group: a terminal's Ctrl-C reaches couponctl only,
		// which forwards SIGTERM; Pdeathsig stops it if couponctl dies.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			stopChildren(children, stopTimeout)
			return fmt.Errorf("start %s: %w", name, err)
		}
		c := &child{name: name, cmd: cmd, done: make(chan struct{})}
		go func() { c.err = cmd.Wait(); close(c.done) }()
		children = append(children, c)
		fmt.Printf("started %s (pid %d)\n", name, cmd.Process.Pid)
	}
	if len(missing) > 0 {
		fmt.Printf("\nnot built yet: %s (no %s); `make build` builds what exists.\n", strings.Join(missing, ", "), filepath.Join(binDir, missing[0]))
	}
	if len(children) == 0 {
		fmt.Printf("the stack is up:\n")
		printAddrs(st, f.profile)
		fmt.Println("waiting; press Ctrl-C to exit (the stack keeps running: `make down` stops it)")
		<-ctx.Done()
		return nil
	}
	for _, c := range children {
		if c.name == "gateway" {
			go waitHTTP(ctx, "http://"+httpAddr+"/healthz")
		}
	}

	// 5. Wait for Ctrl-C/SIGTERM or a child exiting on its own.
	exited := make(chan *child, len(children))
	for _, c := range children {
		go func() { <-c.done; exited <- c }()
	}
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping gateway and sinker...")
		return stopChildren(children, stopTimeout)
	case c := <-exited:
		fmt.Printf("%s exited: %v; stopping the rest\n", c.name, c.err)
		_ = stopChildren(children, stopTimeout)
		if c.err == nil {
			return fmt.Errorf("%s exited unexpectedly", c.name)
		}
		return fmt.Errorf("%s: %w", c.name, c.err)
	}
}

// stopChildren sends SIGTERM to every running child (gateway first: it
// stops taking requests before the sinker drains), then SIGKILL after the
// bound; it returns the first unclean exit.
func stopChildren(children []*child, bound time.Duration) error {
	var errs []error
	for i := len(children) - 1; i >= 0; i-- {
		c := children[i]
		select {
		case <-c.done:
			continue
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
			if c.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.name, c.err))
			} else {
				fmt.Printf("%s stopped cleanly\n", c.name)
			}
		case <-time.After(bound):
			_ = c.cmd.Process.Kill()
			<-c.done
			errs = append(errs, fmt.Errorf("%s did not exit within %s after SIGTERM: killed", c.name, bound))
		}
	}
	return errors.Join(errs...)
}

// waitHTTP announces when url first answers 200.
func waitHTTP(ctx context.Context, url string) {
	cl := &http.Client{Timeout: time.Second}
	for i := 0; i < 600; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := cl.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				fmt.Printf("gateway answering on %s\n", strings.TrimSuffix(url, "/healthz"))
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prefixWriter prefixes each line a child prints with its name.
func prefixWriter(name string, w *os.File) *lineWriter {
	return &lineWriter{prefix: fmt.Sprintf("%-7s| ", name), w: w}
}

type lineWriter struct {
	mu     sync.Mutex
	prefix string
	w      *os.File
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}
