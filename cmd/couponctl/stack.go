package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/coupondrop/coupon/infra/stack"
	"github.com/coupondrop/coupon/internal/cli"
)

func init() {
	register("stack", "up|down|status the local Redis, MariaDB and Kafka (--profile dev|test)", runStack)
}

// stackFlags binds the flags shared by the commands that manage the stack.
type stackFlags struct {
	profile, state, services                  string
	redisPort, mysqlPort, kafkaPort, ctrlPort int
	kafkaNodes                                int
	redisMode                                 string
}

func (f *stackFlags) bind(fs *cli.FlagSet) {
	fs.StringVar(&f.profile, "profile", "COUPON_STACK_PROFILE", "dev", "stack profile: dev (6379/3306/9092) or test (16379/13306/19092)")
	fs.StringVar(&f.state, "state", "COUPON_STACK_DIR", "", "state folder (default <repo>/.state/<profile>)")
	fs.StringVar(&f.services, "services", "COUPON_STACK_SERVICES", "redis,mysql,kafka", "services to manage")
	fs.IntVar(&f.redisPort, "redis-port", "COUPON_STACK_REDIS_PORT", 0, "Redis port (0: the profile's)")
	fs.IntVar(&f.mysqlPort, "mysql-port", "COUPON_STACK_MYSQL_PORT", 0, "MariaDB port (0: the profile's)")
	fs.IntVar(&f.kafkaPort, "kafka-port", "COUPON_STACK_KAFKA_PORT", 0, "Kafka broker port (0: the profile's)")
	fs.IntVar(&f.ctrlPort, "kafka-controller-port", "COUPON_STACK_KAFKA_CONTROLLER_PORT", 0, "Kafka controller port (0: the profile's)")
	fs.IntVar(&f.kafkaNodes, "kafka-nodes", "COUPON_STACK_KAFKA_NODES", 1, "Kafka nodes: 1, or 3 (a KRaft cluster on consecutive ports from the profile's, replication factor 3, min.insync.replicas 2)")
	fs.StringVar(&f.redisMode, "redis-mode", "COUPON_STACK_REDIS_MODE", stack.RedisStandalone, "Redis shape: standalone, sentinel (a primary, 2 replicas, 3 Sentinels) or cluster (3 primaries with a replica each), on consecutive ports from the profile's")
}

func (f *stackFlags) open() (*stack.Stack, error) {
	cfg, err := stack.Profile(f.profile, repoRoot())
	if err != nil {
		return nil, err
	}
	if f.state != "" {
		cfg.Dir = f.state
	}
	for _, o := range []struct {
		dst *int
		v   int
	}{{&cfg.RedisPort, f.redisPort}, {&cfg.MySQLPort, f.mysqlPort}, {&cfg.KafkaPort, f.kafkaPort}, {&cfg.KafkaControllerPort, f.ctrlPort}} {
		if o.v != 0 {
			*o.dst = o.v
		}
	}
	cfg.Services = cli.List(f.services)
	cfg.KafkaNodes, cfg.RedisMode = f.kafkaNodes, f.redisMode
	cfg.Out = os.Stdout
	return stack.New(cfg, nil)
}

func runStack(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("usage: couponctl stack up|down|status [--profile dev|test] [--state DIR] [--kafka-nodes 1|3] [--redis-mode standalone|sentinel|cluster]")
	}
	verb := args[0]
	fs := cli.New("stack " + verb)
	var f stackFlags
	f.bind(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	st, err := f.open()
	if err != nil {
		return err
	}
	switch verb {
	case "up":
		if err := st.Up(ctx); err != nil {
			return err
		}
		printAddrs(st, f.profile)
		return nil
	case "down":
		return st.Down(ctx)
	case "status":
		return printStatus(ctx, st)
	default:
		return fmt.Errorf("unknown stack command %q (want up, down or status)", verb)
	}
}

// printAddrs prints how the system reaches the stack, ready to paste
// into a shell.
func printAddrs(st *stack.Stack, profile string) {
	for _, kv := range st.Clients(dbName(profile)).Env() {
		if k, v, _ := strings.Cut(kv, "="); strings.ContainsAny(v, "&?()") {
			kv = k + "='" + v + "'"
		}
		fmt.Printf("  %s\n", kv)
	}
}

func printStatus(ctx context.Context, st *stack.Stack) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tROLE\tSTATE\tPID\tRSS\tADDRESS\tLOG")
	down := 0
	for _, s := range st.Status(ctx) {
		state, pid, rss, role := "stopped", "-", "-", "-"
		switch {
		case s.Running && s.Answers:
			state = "running"
		case s.Running:
			state = "not answering: " + firstLine(s.Err)
		}
		if s.Role != "" {
			role = s.Role
		}
		if s.Running {
			pid = fmt.Sprint(s.PID)
			rss = fmt.Sprintf("%d MiB", s.RSSBytes>>20)
		}
		if !s.Running || !s.Answers {
			down++
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, role, state, pid, rss, s.Addr, s.LogFile)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("state %s\n", st.Config().Dir)
	if down > 0 {
		return fmt.Errorf("%d node(s) not running", down)
	}
	return nil
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.SplitN(err.Error(), "\n", 2)[0]
}

// repoRoot is the nearest folder upward holding this module's go.mod, else
// the working folder.
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/coupondrop/coupon\n") {
			return d
		}
		if filepath.Dir(d) == d {
			return wd
		}
	}
}

// dbName is the database a profile's programs use.
func dbName(profile string) string {
	if profile == "test" {
		return "coupon_test"
	}
	return "coupon"
}
