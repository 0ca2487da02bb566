package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/internal/proc"
)

func init() {
	register("run", "the whole system in the foreground: dev stack, migrations, topics, gateway and sinker", runRun)
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
	clients := st.Clients(dbName(f.profile))
	tf.brokers = clients.KafkaBrokers

	// 2. Schema and topics.
	if err := migrateDB(ctx, clients.MySQLDSN); err != nil {
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

	env := append(append(os.Environ(), clients.Env()...),
		"COUPON_TOPIC="+tf.topic,
		"COUPON_DLQ_TOPIC="+tf.dlq,
		"COUPON_ADMIN_TOKEN="+token,
		"COUPON_HTTP_ADDR="+httpAddr,
		"COUPON_METRICS_ADDR="+metricsAddr,
	)

	// 4. Gateway and sinker, when built.
	var children proc.Group
	var missing []string
	for _, name := range []string{"sinker", "gateway"} {
		path := filepath.Join(binDir, name)
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			missing = append(missing, name)
			continue
		}
		c, err := proc.Start(name, path, nil, env, proc.PrefixWriter(name, os.Stdout), proc.PrefixWriter(name, os.Stderr), nil)
		if err != nil {
			_ = children.Stop(stopTimeout, os.Stdout)
			return err
		}
		children = append(children, c)
		fmt.Printf("started %s (pid %d)\n", name, c.Pid())
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
	if children[len(children)-1].Name == "gateway" {
		go func() {
			if children.WaitReady(ctx, "http://"+httpAddr+"/healthz", time.Minute) == nil {
				fmt.Printf("gateway answering on http://%s\n", httpAddr)
			}
		}()
	}

	// 5. Wait for Ctrl-C/SIGTERM or a child exiting on its own.
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping gateway and sinker...")
		return children.Stop(stopTimeout, os.Stdout)
	case c := <-children.Exited():
		fmt.Printf("%s exited: %v; stopping the rest\n", c.Name, c.Err())
		_ = children.Stop(stopTimeout, os.Stdout)
		if c.Err() == nil {
			return fmt.Errorf("%s exited unexpectedly", c.Name)
		}
		return fmt.Errorf("%s: %w", c.Name, c.Err())
	}
}
