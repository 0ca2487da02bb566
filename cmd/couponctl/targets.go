package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coupondrop/coupon/internal/cli"
	"github.com/coupondrop/coupon/mysql"
	gomysql "github.com/go-sql-driver/mysql"
)

// servers binds the connection settings of the operator commands and
// resolves them the way `make run` does: the stack settings (--profile,
// --*-port, COUPON_STACK_*) give every address, and an explicit
// --mysql-dsn, --redis-addrs or --kafka-brokers (or its COUPON_* variable)
// replaces one. Stack settings and an explicit address naming different
// servers are ambiguous: commands that change something refuse them.
type servers struct {
	stack                     stackFlags
	dsn                       string
	redisAddrs, brokers       []string
	withMySQL, withRedis      bool
	fs                        *cli.FlagSet
	redisMaster               string // bound by the commands using Redis
	resolvedDSN               string
	resolvedRedis, resolvedKB []string
	resolvedMaster            string
	lines, ambiguous          []string // what each server is and where it came from
}

// bind declares the stack flags and the connections the command uses.
func (s *servers) bind(fs *cli.FlagSet, withMySQL, withRedis bool) {
	s.fs, s.withMySQL, s.withRedis = fs, withMySQL, withRedis
	s.stack.bind(fs)
	fs.NoDefault = "the stack's"
	fs.KafkaBrokersVar(&s.brokers)
	if withMySQL {
		fs.MySQLDSNVar(&s.dsn)
	}
	if withRedis {
		fs.RedisAddrsVar(&s.redisAddrs)
	}
}

// stackEnv are the stack settings that pick servers.
var stackEnv = map[string]string{
	"profile": "COUPON_STACK_PROFILE", "redis-port": "COUPON_STACK_REDIS_PORT", "redis-mode": "COUPON_STACK_REDIS_MODE",
	"mysql-port": "COUPON_STACK_MYSQL_PORT", "kafka-port": "COUPON_STACK_KAFKA_PORT", "kafka-nodes": "COUPON_STACK_KAFKA_NODES",
}

// origin names where a setting came from: its flag when given, else its
// environment variable when set, else "".
func (s *servers) origin(flagName, env string) string {
	given := false
	s.fs.Visit(func(f *flag.Flag) { given = given || f.Name == flagName })
	if given {
		return "--" + flagName
	}
	if v, ok := os.LookupEnv(env); ok && v != "" {
		return env
	}
	return ""
}

// resolve computes the servers after Parse.
func (s *servers) resolve() error {
	st, err := s.stack.open()
	if err != nil {
		return err
	}
	// pick chooses one server: the explicit value when given, else the
	// stack's; stackFlags are the stack settings of that server besides
	// the profile.
	pick := func(what, flagName, env string, stackFlags []string, explicit, fromStack []string, show func([]string) string) []string {
		var from []string
		for _, name := range append([]string{"profile"}, stackFlags...) {
			if o := s.origin(name, stackEnv[name]); o != "" {
				from = append(from, o)
			}
		}
		stackNote := "the " + s.stack.profile + " stack's default"
		if len(from) > 0 {
			stackNote = "the " + s.stack.profile + " stack (" + strings.Join(from, ", ") + ")"
		}
		o := s.origin(flagName, env)
		if o == "" || len(explicit) == 0 {
			s.lines = append(s.lines, fmt.Sprintf("%-6s %s, from %s", what, show(fromStack), stackNote))
			return fromStack
		}
		s.lines = append(s.lines, fmt.Sprintf("%-6s %s, from %s", what, show(explicit), o))
		if len(from) > 0 && show(explicit) != show(fromStack) {
			s.ambiguous = append(s.ambiguous, fmt.Sprintf("%s: the stack (%s) gives %s but %s gives %s",
				what, strings.Join(from, ", "), show(fromStack), o, show(explicit)))
		}
		return explicit
	}
	list := func(v []string) string { return strings.Join(v, ",") }
	clients := st.Clients(dbName(s.stack.profile)) // as `make run` gives the gateway and sinker
	s.resolvedKB = pick("Kafka", "kafka-brokers", "COUPON_KAFKA_BROKERS", []string{"kafka-port", "kafka-nodes"}, s.brokers, clients.KafkaBrokers, list)
	if s.withRedis {
		s.resolvedRedis = pick("Redis", "redis-addrs", "COUPON_REDIS_ADDRS", []string{"redis-port", "redis-mode"}, s.redisAddrs, clients.RedisAddrs, list)
		s.resolvedMaster = s.redisMaster
		if len(s.redisAddrs) == 0 && s.redisMaster == "" {
			s.resolvedMaster = clients.RedisMaster
		}
		if s.resolvedMaster != "" {
			s.lines[len(s.lines)-1] += " (Sentinels of master " + s.resolvedMaster + ")"
		}
	}
	if s.withMySQL {
		var bad error
		showDSN := func(v []string) string {
			cfg, err := gomysql.ParseDSN(v[0])
			if err != nil {
				bad = fmt.Errorf("parse MySQL DSN: %w", err)
				return "?"
			}
			return cfg.Addr + "/" + cfg.DBName
		}
		var explicit []string
		if s.dsn != "" {
			explicit = []string{s.dsn}
		}
		s.resolvedDSN = pick("MySQL", "mysql-dsn", "COUPON_MYSQL_DSN", []string{"mysql-port"}, explicit, []string{clients.MySQLDSN}, showDSN)[0]
		if bad != nil {
			return bad
		}
	}
	return nil
}

// announce prints the servers the command is about to use, to w:
//
//	couponctl replay changes:
//	  MySQL  127.0.0.1:13306/coupon_test, from the test stack (COUPON_STACK_PROFILE)
func (s *servers) announce(w io.Writer, command string, change bool) {
	verb := "reads"
	if change {
		verb = "changes"
	}
	fmt.Fprintf(w, "couponctl %s %s:\n", command, verb)
	for _, l := range s.lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// mayChange refuses ambiguous targets; with db, also a database without the
// coupon schema.
func (s *servers) mayChange(ctx context.Context, db *mysql.DB) error {
	if len(s.ambiguous) > 0 {
		return fmt.Errorf("ambiguous servers, refusing to change anything (unset one of each pair):\n  %s",
			strings.Join(s.ambiguous, "\n  "))
	}
	if db != nil {
		return db.CheckSchema(ctx)
	}
	return nil
}

// warnAmbiguous prints the ambiguity for a command that only reads.
func (s *servers) warnAmbiguous(w io.Writer) {
	for _, a := range s.ambiguous {
		fmt.Fprintf(w, "warning: ambiguous servers: %s (using the latter)\n", a)
	}
}
