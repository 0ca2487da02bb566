// Package stack runs the local development and test servers (Redis, MariaDB,
// Apache Kafka in KRaft mode) as detached processes under one state folder.
//
// Each service listens on 127.0.0.1 only, keeps its data and its log file in
// <Dir>/<service>/, and is recorded in a pid file so that Down stops exactly
// what Up started. Up is idempotent and waits until every service answers.
// Several processes may call Up at once: an exclusive lock on the state
// folder serialises them. Tests use the same API to run PRIVATE servers on
// free ports in a temporary folder (see internal/testenv.MustStartPrivate).
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Service names.
const (
	Redis = "redis"
	MySQL = "mysql"
	Kafka = "kafka"
)

// AllServices lists every service in start order.
var AllServices = []string{Redis, MySQL, Kafka}

// Redis modes.
const (
	RedisStandalone = "standalone" // one server
	RedisSentinel   = "sentinel"   // a primary, two replicas and three Sentinels
	RedisCluster    = "cluster"    // Redis Cluster: three primaries with a replica each
)

// SentinelMaster is the name the Sentinels monitor the primary under.
const SentinelMaster = "coupon"

// Config says where the stack lives and which ports it uses.
type Config struct {
	Dir                 string   // state folder; each service gets <Dir>/<service>/
	RedisPort           int      // Redis on 127.0.0.1
	MySQLPort           int      // MariaDB on 127.0.0.1 (user root, no password)
	KafkaPort           int      // Kafka broker listener on 127.0.0.1
	KafkaControllerPort int      // Kafka KRaft controller listener on 127.0.0.1
	Services            []string // services managed by Up/Down/Status; default AllServices

	// KafkaNodes is 1 (default) or 3: a KRaft cluster of combined
	// broker+controller nodes, node i (1-based) on KafkaPort+2(i-1) and
	// KafkaControllerPort+2(i-1), with replication factor 3 and
	// min.insync.replicas 2 for every topic, the internal ones too.
	KafkaNodes int
	// RedisMode is RedisStandalone (default), RedisSentinel (primary on
	// RedisPort, replicas on RedisPort+1..2, Sentinels on RedisPort+3..5)
	// or RedisCluster (nodes on RedisPort..RedisPort+5, their cluster bus
	// on RedisPort+6..11).
	RedisMode string

	// MySQLBufferPool is innodb_buffer_pool_size (default "1G").
	MySQLBufferPool string
	// MySQLLogFileSize is innodb_log_file_size (default "512M").
	MySQLLogFileSize string
	// KafkaHeap is the broker's -Xmx/-Xms (default "512m").
	KafkaHeap string
	// KafkaPartitions is the broker's num.partitions (default 12).
	KafkaPartitions int
	// CacheDir holds the Kafka jars resolved by Maven, shared by every stack
	// (default $COUPON_STACK_CACHE, else <user cache dir>/coupondrop).
	CacheDir string

	// Out receives human progress lines (nil: discarded).
	Out io.Writer
	// InstallPackages lets a root process apt-get install missing Debian
	// packages (default true through Profile; tests leave it false and fail
	// with the install command instead).
	InstallPackages bool
}

// Profile returns the configuration of a named profile: "dev" (Redis 6379,
// MariaDB 3306, Kafka 9092/9093) or "test" (16379, 13306, 19092/19093), with
// its state folder <root>/.state/<profile>.
func Profile(name, root string) (Config, error) {
	cfg := Config{Dir: filepath.Join(root, ".state", name), InstallPackages: true}
	switch name {
	case "dev":
		cfg.RedisPort, cfg.MySQLPort, cfg.KafkaPort, cfg.KafkaControllerPort = 6379, 3306, 9092, 9093
	case "test":
		cfg.RedisPort, cfg.MySQLPort, cfg.KafkaPort, cfg.KafkaControllerPort = 16379, 13306, 19092, 19093
	default:
		return Config{}, fmt.Errorf("unknown profile %q (want dev or test)", name)
	}
	return cfg, nil
}

func (c *Config) defaults() error {
	if c.Dir == "" {
		return errors.New("stack: Config.Dir is empty")
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return fmt.Errorf("stack dir: %w", err)
	}
	c.Dir = abs
	if len(c.Services) == 0 {
		c.Services = AllServices
	}
	for _, s := range c.Services {
		if !known(s) {
			return fmt.Errorf("unknown service %q (want %s)", s, strings.Join(AllServices, ", "))
		}
	}
	if c.KafkaNodes == 0 {
		c.KafkaNodes = 1
	}
	if c.KafkaNodes != 1 && c.KafkaNodes != 3 {
		return fmt.Errorf("stack: %d Kafka nodes: want 1 or 3", c.KafkaNodes)
	}
	if c.RedisMode == "" {
		c.RedisMode = RedisStandalone
	}
	switch c.RedisMode {
	case RedisStandalone, RedisSentinel, RedisCluster:
	default:
		return fmt.Errorf("stack: Redis mode %q: want %s, %s or %s", c.RedisMode, RedisStandalone, RedisSentinel, RedisCluster)
	}
	type namedPort struct {
		port int
		name string
	}
	all := []namedPort{{c.RedisPort, "redis port"}, {c.MySQLPort, "mysql port"}, {c.KafkaPort, "kafka port"}, {c.KafkaControllerPort, "kafka controller port"}}
	for i := 1; i < c.KafkaNodes; i++ {
		all = append(all, namedPort{c.KafkaPort + 2*i, fmt.Sprintf("kafka node %d port", i+1)},
			namedPort{c.KafkaControllerPort + 2*i, fmt.Sprintf("kafka node %d controller port", i+1)})
	}
	for i := 1; i < redisPorts(c.RedisMode); i++ {
		all = append(all, namedPort{c.RedisPort + i, fmt.Sprintf("redis %s port %d", c.RedisMode, i+1)})
	}
	ports := map[int]string{}
	for _, p := range all {
		if p.port <= 0 || p.port > 65535 {
			return fmt.Errorf("stack: %s %d out of range", p.name, p.port)
		}
		if other, dup := ports[p.port]; dup {
			return fmt.Errorf("stack: %s and %s are both %d", other, p.name, p.port)
		}
		ports[p.port] = p.name
	}
	if c.MySQLBufferPool == "" {
		c.MySQLBufferPool = "1G"
	}
	if c.MySQLLogFileSize == "" {
		c.MySQLLogFileSize = "512M"
	}
	if c.KafkaHeap == "" {
		c.KafkaHeap = "512m"
	}
	if c.KafkaPartitions == 0 {
		c.KafkaPartitions = 12
	}
	if c.CacheDir == "" {
		c.CacheDir = os.Getenv("COUPON_STACK_CACHE")
	}
	if c.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = filepath.Join(os.TempDir(), "coupondrop-cache")
		}
		c.CacheDir = filepath.Join(base, "coupondrop")
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return nil
}

func known(name string) bool {
	for _, s := range AllServices {
		if s == name {
			return true
		}
	}
	return false
}

// redisPorts is how many consecutive ports from RedisPort a mode uses.
func redisPorts(mode string) int {
	switch mode {
	case RedisSentinel:
		return 6
	case RedisCluster:
		return 12
	}
	return 1
}

// Stack manages the services of one state folder. Its methods are safe for
// concurrent use; across processes the state folder's lock serialises them.
//
// A service is one node (redis, mysql, kafka) or, in the replicated
// shapes, several: kafka-1..3, redis-1..3 and sentinel-1..3, or
// redis-1..6. Start, Stop and Kill take a service or a node name.
type Stack struct {
	cfg    Config
	logger *slog.Logger
	mu     sync.Mutex
	outMu  sync.Mutex
	svcs   map[string]service  // by node name
	groups map[string][]string // service -> its node names, in start order
	idMu   sync.Mutex          // the Kafka cluster id file
}

// New returns the stack of cfg; it starts nothing.
func New(cfg Config, logger *slog.Logger) (*Stack, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Stack{cfg: cfg, logger: logger, svcs: map[string]service{}, groups: map[string][]string{}}
	add := func(group string, svc service) {
		s.svcs[svc.name()] = svc
		s.groups[group] = append(s.groups[group], svc.name())
	}
	switch cfg.RedisMode {
	case RedisStandalone:
		add(Redis, &redisService{s: s})
	case RedisSentinel:
		for i := 1; i <= 3; i++ {
			add(Redis, &redisService{s: s, node: i, mode: RedisSentinel})
		}
		for i := 1; i <= 3; i++ {
			add(Redis, &sentinelService{s: s, node: i})
		}
	case RedisCluster:
		for i := 1; i <= 6; i++ {
			add(Redis, &redisService{s: s, node: i, mode: RedisCluster})
		}
	}
	add(MySQL, &mysqlService{s: s})
	for i := 1; i <= cfg.KafkaNodes; i++ {
		add(Kafka, &kafkaService{s: s, node: i})
	}
	return s, nil
}

// nodes resolves a service or node name to node names.
func (s *Stack) nodes(name string) ([]string, error) {
	if ns, ok := s.groups[name]; ok {
		return ns, nil
	}
	if _, ok := s.svcs[name]; ok {
		return []string{name}, nil
	}
	return nil, fmt.Errorf("unknown service or node %q (want %s, or a node of `couponctl stack status`)", name, strings.Join(AllServices, ", "))
}

// configuredNodes lists the nodes of the configured services, in start order.
func (s *Stack) configuredNodes() []string {
	var out []string
	for _, g := range s.cfg.Services {
		out = append(out, s.groups[g]...)
	}
	return out
}

// Config returns the effective configuration.
func (s *Stack) Config() Config { return s.cfg }

// RedisAddr is host:port of Redis: the server, the first primary
// (sentinel: the primary the stack started with; it may fail over) or the
// first cluster node.
func (s *Stack) RedisAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.cfg.RedisPort) }

// RedisAddrs lists every Redis data node (not the Sentinels).
func (s *Stack) RedisAddrs() []string {
	n := map[string]int{RedisStandalone: 1, RedisSentinel: 3, RedisCluster: 6}[s.cfg.RedisMode]
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.1:%d", s.cfg.RedisPort+i)
	}
	return out
}

// SentinelAddrs lists the Sentinels (sentinel mode; else nil). They
// monitor the primary as SentinelMaster.
func (s *Stack) SentinelAddrs() []string {
	if s.cfg.RedisMode != RedisSentinel {
		return nil
	}
	out := make([]string, 3)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.1:%d", s.cfg.RedisPort+3+i)
	}
	return out
}

// MySQLAddr is host:port of MariaDB.
func (s *Stack) MySQLAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.cfg.MySQLPort) }

// MySQLDSN is a go-sql-driver DSN for database db (may be empty) as root.
func (s *Stack) MySQLDSN(db string) string {
	return fmt.Sprintf("root@tcp(%s)/%s?parseTime=true&loc=UTC&multiStatements=true", s.MySQLAddr(), db)
}

// KafkaBrokers lists every Kafka broker (the bootstrap list).
func (s *Stack) KafkaBrokers() []string {
	out := make([]string, s.cfg.KafkaNodes)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.1:%d", s.cfg.KafkaPort+2*i)
	}
	return out
}

// ReplicationFactor is the replication factor topics of this stack's
// Kafka get: 1, or 3 on three nodes.
func (s *Stack) ReplicationFactor() int { return s.cfg.KafkaNodes }

func (s *Stack) printf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.cfg.Out, format+"\n", args...)
}

// service is one managed server.
type service interface {
	name() string
	ports() []int
	addr() string
	logFile() string
	// tools lists the executables the service needs.
	tools() []tool
	// prepare initialises the data folder and writes config files.
	prepare(ctx context.Context) error
	// command returns the argv of the server process.
	command() ([]string, error)
	// ready returns nil once the server answers.
	ready(ctx context.Context) error
	// role asks the running node what it is now (primary, replica,
	// sentinel, broker+controller, ...).
	role(ctx context.Context) string
	// stopTimeout bounds the wait after SIGTERM before SIGKILL.
	stopTimeout() time.Duration
	// startTimeout bounds the wait for ready after start.
	startTimeout() time.Duration
}

func (s *Stack) service(name string) (service, error) {
	svc, ok := s.svcs[name]
	if !ok {
		return nil, fmt.Errorf("unknown node %q (want %s)", name, strings.Join(s.allNodes(), ", "))
	}
	return svc, nil
}

func (s *Stack) allNodes() []string {
	var out []string
	for _, g := range AllServices {
		out = append(out, s.groups[g]...)
	}
	return out
}

func (s *Stack) svcDir(name string) string { return filepath.Join(s.cfg.Dir, name) }
func (s *Stack) pidFile(name string) string {
	return filepath.Join(s.svcDir(name), name+".pid")
}

// lock takes the exclusive lock of the state folder, waiting for other
// processes; the returned func releases it.
func (s *Stack) lock(ctx context.Context) (func(), error) {
	s.mu.Lock()
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	unlock, err := flock(ctx, filepath.Join(s.cfg.Dir, ".lock"), func() {
		s.printf("waiting for another couponctl holding %s/.lock", s.cfg.Dir)
	})
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return func() { unlock(); s.mu.Unlock() }, nil
}

// flock takes an exclusive flock on path, polling so ctx can cancel the wait.
func flock(ctx context.Context, path string, waiting func()) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Up starts every configured service that is not running and waits until
// all answer. Services already running and answering are left alone.
func (s *Stack) Up(ctx context.Context) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	nodes := s.configuredNodes()
	if other := s.otherShapeNodes(); len(other) > 0 {
		return fmt.Errorf("the state folder %s runs %s of another shape (KafkaNodes, RedisMode); stop them first: couponctl stack down (any shape stops them)",
			s.cfg.Dir, strings.Join(other, ", "))
	}
	if err := s.ensureTools(ctx, nodes); err != nil {
		return err
	}
	// Check every port before starting anything: a busy port fails the
	// whole Up without leaving half a stack behind.
	var busy []error
	for _, name := range nodes {
		if p, ok := readPID(s.pidFile(name)); ok && p.alive() {
			continue
		}
		busy = append(busy, s.portsFree(name))
	}
	if err := errors.Join(busy...); err != nil {
		return err
	}
	start := time.Now()
	if err := parallel(s.cfg.Services, func(group string) error { return s.startGroup(ctx, group, s.groups[group]) }); err != nil {
		return err
	}
	s.printf("stack up in %s (state %s)", time.Since(start).Round(10*time.Millisecond), s.cfg.Dir)
	return nil
}

// Down stops every configured service this stack started (SIGTERM, then
// SIGKILL after a bound) and waits until their processes are gone.
func (s *Stack) Down(ctx context.Context) error {
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	// Reverse start order: Kafka, MariaDB, Redis.
	for i := len(s.cfg.Services) - 1; i >= 0; i-- {
		errs = append(errs, s.stopAll(ctx, s.groups[s.cfg.Services[i]], false))
	}
	// Nodes a previous shape of this state folder left running.
	for _, name := range s.otherShapeNodes() {
		if p, ok := readPID(s.pidFile(name)); ok {
			_ = p.signal(syscall.SIGTERM)
			if !p.waitGone(ctx, 45*time.Second) {
				_ = p.signal(syscall.SIGKILL)
				p.waitGone(ctx, 30*time.Second)
			}
			_ = os.Remove(s.pidFile(name))
			s.printf("%-5s stopped (pid %d; a node of another shape)", name, p.PID)
		}
	}
	return errors.Join(errs...)
}

// otherShapeNodes lists running nodes of the configured services that the
// current shape does not have (a 3-node Kafka's kafka-1 when KafkaNodes is 1).
func (s *Stack) otherShapeNodes() []string {
	var out []string
	for _, g := range s.cfg.Services {
		prefixes := []string{g}
		if g == Redis {
			prefixes = append(prefixes, "sentinel")
		}
		for _, pre := range prefixes {
			for _, name := range append([]string{pre}, numbered(pre, 6)...) {
				if _, ours := s.svcs[name]; ours {
					continue
				}
				if p, ok := readPID(s.pidFile(name)); ok && p.alive() {
					out = append(out, name)
				}
			}
		}
	}
	return out
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	return out
}

// stopAll stops nodes at once: the last node of a Kafka cluster stopped
// alone would wait for a quorum that is gone; the caller holds the lock.
func (s *Stack) stopAll(ctx context.Context, nodes []string, kill bool) error {
	return parallel(nodes, func(name string) error { return s.stop(ctx, name, kill) })
}

// parallel calls f for every name at once and joins their errors.
func parallel(names []string, f func(string) error) error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(name)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startGroup starts the given nodes of a service at once, then does what
// the service needs once they all answer (a Redis Cluster is created, a
// Sentinel group waits to see its replicas and peers, a Kafka cluster to
// see every broker).
func (s *Stack) startGroup(ctx context.Context, group string, nodes []string) error {
	if err := parallel(nodes, func(name string) error { return s.start(ctx, name) }); err != nil {
		return err
	}
	switch {
	case group == Redis && s.cfg.RedisMode == RedisCluster:
		return s.formRedisCluster(ctx)
	case group == Redis && s.cfg.RedisMode == RedisSentinel:
		return s.waitSentinels(ctx)
	case group == Kafka && s.cfg.KafkaNodes > 1:
		return s.waitKafkaCluster(ctx)
	}
	return nil
}

// Start starts one service (any of AllServices) or node and waits until it
// answers; a no-op when it already runs.
func (s *Stack) Start(ctx context.Context, name string) error {
	nodes, err := s.nodes(name)
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.ensureTools(ctx, nodes); err != nil {
		return err
	}
	group := name
	if _, isGroup := s.groups[name]; !isGroup {
		group = "" // one node: the group's checks are for a whole start
	}
	return s.startGroup(ctx, group, nodes)
}

// Stop stops one service or node gracefully (SIGTERM, SIGKILL after a bound).
func (s *Stack) Stop(ctx context.Context, name string) error {
	return s.stopNodes(ctx, name, false)
}

// Kill stops one service or node with SIGKILL at once (a crash) and waits
// until its processes are gone. Data folders stay, so Start brings it back.
func (s *Stack) Kill(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.stopNodes(ctx, name, true)
}

func (s *Stack) stopNodes(ctx context.Context, name string, kill bool) error {
	nodes, err := s.nodes(name)
	if err != nil {
		return err
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return s.stopAll(ctx, nodes, kill)
}

// ServiceStatus describes one node of a service.
type ServiceStatus struct {
	Name     string // node name: the service's (redis, mysql, kafka) or kafka-2, sentinel-1, ...
	Service  string // redis, mysql or kafka
	Role     string // what the node is now, when it answers: primary, replica, sentinel, broker+controller (active controller), ...
	Running  bool   // its recorded process is alive
	Answers  bool   // it answered a probe
	PID      int    // 0 when not running
	RSSBytes int64  // resident memory of the process
	Addr     string // host:port it listens on
	LogFile  string
	Err      error // probe error, when running but not answering
}

// Status reports every node of the configured services, asking each
// running one at once; it does not take the lock.
func (s *Stack) Status(ctx context.Context) []ServiceStatus {
	var out []ServiceStatus
	for _, group := range s.cfg.Services {
		for _, name := range s.groups[group] {
			svc := s.svcs[name]
			out = append(out, ServiceStatus{Name: name, Service: group, Addr: svc.addr(), LogFile: svc.logFile()})
		}
	}
	var wg sync.WaitGroup
	for i := range out {
		st := &out[i]
		p, ok := readPID(s.pidFile(st.Name))
		if !ok || !p.alive() {
			continue
		}
		st.Running, st.PID, st.RSSBytes = true, p.PID, p.rss()
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := s.svcs[st.Name]
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if st.Err = svc.ready(pctx); st.Err == nil {
				st.Answers, st.Role = true, svc.role(pctx)
			}
		}()
	}
	wg.Wait()
	return out
}

// KafkaGCLogs returns each Kafka node's GC log (see GCLogName), nil when
// the stack does not manage Kafka.
func (s *Stack) KafkaGCLogs() []string {
	if !slices.Contains(s.cfg.Services, Kafka) {
		return nil
	}
	var out []string
	for _, name := range s.groups[Kafka] {
		out = append(out, s.svcs[name].(*kafkaService).gcLog())
	}
	return out
}

// PIDs returns the pid of each running node (for tests and reports).
func (s *Stack) PIDs() map[string]int {
	m := map[string]int{}
	for _, name := range s.allNodes() {
		if p, ok := readPID(s.pidFile(name)); ok && p.alive() {
			m[name] = p.PID
		}
	}
	return m
}

// start brings one service up; the caller holds the lock.
func (s *Stack) start(ctx context.Context, name string) error {
	svc, err := s.service(name)
	if err != nil {
		return err
	}
	if p, ok := readPID(s.pidFile(name)); ok && p.alive() {
		// Ours and alive: wait until it answers (it may still be starting).
		if err := s.waitReady(ctx, svc, p); err != nil {
			return err
		}
		s.printf("%-5s already running on %s (pid %d, log %s)", name, svc.addr(), p.PID, svc.logFile())
		return nil
	}
	_ = os.Remove(s.pidFile(name))
	if err := s.portsFree(name); err != nil {
		return err
	}
	if err := os.MkdirAll(s.svcDir(name), 0o755); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	t0 := time.Now()
	if err := svc.prepare(ctx); err != nil {
		return fmt.Errorf("%s: prepare: %w%s", name, err, tailNote(svc.logFile()))
	}
	argv, err := svc.command()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	s.printf("%-5s starting on %s (log %s)", name, svc.addr(), svc.logFile())
	p, err := spawn(argv, svc.logFile(), s.svcDir(name))
	if err != nil {
		return fmt.Errorf("%s: start: %w", name, err)
	}
	if err := writePID(s.pidFile(name), p); err != nil {
		_ = p.signal(syscall.SIGKILL)
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := s.waitReady(ctx, svc, p); err != nil {
		// Leave nothing half-started behind.
		_ = s.stop(context.Background(), name, false)
		return err
	}
	s.printf("%-5s ready on %s in %s (pid %d)", name, svc.addr(), time.Since(t0).Round(10*time.Millisecond), p.PID)
	return nil
}

// portsFree returns an error naming the first busy port of a service.
func (s *Stack) portsFree(name string) error {
	for _, port := range s.svcs[name].ports() {
		if err := portFree(port); err != nil {
			return fmt.Errorf("%s: port %d on 127.0.0.1 is already in use by another process (%v); stop it or choose another port", name, port, err)
		}
	}
	return nil
}

func (s *Stack) waitReady(ctx context.Context, svc service, p proc) error {
	ctx, cancel := context.WithTimeout(ctx, svc.startTimeout())
	defer cancel()
	var last error
	delay := 50 * time.Millisecond
	for {
		if !p.alive() {
			return fmt.Errorf("%s exited during start-up%s", svc.name(), tailNote(svc.logFile()))
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		last = svc.ready(pctx)
		pcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer on %s within %s: %v%s", svc.name(), svc.addr(), svc.startTimeout(), last, tailNote(svc.logFile()))
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

// stop stops one service; the caller holds the lock.
func (s *Stack) stop(ctx context.Context, name string, kill bool) error {
	svc, err := s.service(name)
	if err != nil {
		return err
	}
	p, ok := readPID(s.pidFile(name))
	if !ok || !p.alive() {
		_ = os.Remove(s.pidFile(name))
		if !kill {
			s.printf("%-5s not running", name)
		}
		return nil
	}
	t0 := time.Now()
	if kill {
		_ = p.signal(syscall.SIGKILL)
	} else {
		_ = p.signal(syscall.SIGTERM)
	}
	if !p.waitGone(ctx, svc.stopTimeout()) {
		s.printf("%-5s did not stop within %s after SIGTERM: SIGKILL", name, svc.stopTimeout())
		_ = p.signal(syscall.SIGKILL)
		if !p.waitGone(context.Background(), 30*time.Second) {
			return fmt.Errorf("%s: pid %d still alive after SIGKILL", name, p.PID)
		}
	}
	_ = os.Remove(s.pidFile(name))
	verb := "stopped"
	if kill {
		verb = "killed"
	}
	s.printf("%-5s %s (pid %d) in %s", name, verb, p.PID, time.Since(t0).Round(10*time.Millisecond))
	return nil
}

// tailNote returns the last lines of a log file as an error suffix.
func tailNote(path string) string {
	t := Tail(path, 30)
	if t == "" {
		return ""
	}
	return fmt.Sprintf("\n--- last lines of %s ---\n%s", path, t)
}

// Tail returns the last n lines of a file ("" when unreadable).
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - max
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sortedKeys is a small helper for deterministic output.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
