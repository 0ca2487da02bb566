package stack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coupondrop/coupon/infra"
	"github.com/segmentio/kafka-go"
)

// kafkaService runs one Apache Kafka node in KRaft mode (combined broker and
// controller) from the official jars, resolved by Maven from
// infra/kafka/pom.xml into a cache folder shared by every stack: the one
// node "kafka", or node kafka-1..3 of a three-node cluster.
type kafkaService struct {
	s    *Stack
	node int // 1-based
}

func (k *kafkaService) name() string {
	if k.s.cfg.KafkaNodes == 1 {
		return Kafka
	}
	return Kafka + "-" + strconv.Itoa(k.node)
}
func (k *kafkaService) port() int       { return k.s.cfg.KafkaPort + 2*(k.node-1) }
func (k *kafkaService) ctrlPort() int   { return k.s.cfg.KafkaControllerPort + 2*(k.node-1) }
func (k *kafkaService) ports() []int    { return []int{k.port(), k.ctrlPort()} }
func (k *kafkaService) addr() string    { return fmt.Sprintf("127.0.0.1:%d", k.port()) }
func (k *kafkaService) dir() string     { return k.s.svcDir(k.name()) }
func (k *kafkaService) data() string    { return filepath.Join(k.dir(), "data") }
func (k *kafkaService) logFile() string { return filepath.Join(k.dir(), "kafka.log") }
func (k *kafkaService) props() string   { return filepath.Join(k.dir(), "server.properties") }
func (k *kafkaService) log4j() string   { return filepath.Join(k.dir(), "log4j2.properties") }
func (k *kafkaService) gcLog() string   { return filepath.Join(k.dir(), GCLogName) }
func (k *kafkaService) tools() []tool {
	return []tool{{"java", "openjdk-17-jre-headless"}, {"mvn", "maven"}}
}

func (k *kafkaService) stopTimeout() time.Duration  { return 45 * time.Second }
func (k *kafkaService) startTimeout() time.Duration { return 120 * time.Second }

var kafkaVersionRE = regexp.MustCompile(`<kafka.version>([^<]+)</kafka.version>`)

// KafkaVersion is the Kafka version the pom resolves.
func KafkaVersion() string {
	if m := kafkaVersionRE.FindSubmatch(infra.KafkaPOM); m != nil {
		return string(m[1])
	}
	return "unknown"
}

// libDir is the jar folder for the current pom: a new pom gets a new folder.
func (k *kafkaService) libDir() string {
	h := sha256.Sum256(infra.KafkaPOM)
	return filepath.Join(k.s.cfg.CacheDir, "kafka-"+KafkaVersion()+"-"+hex.EncodeToString(h[:4]))
}

// ensureJars copies the broker's runtime jars into libDir once.
func (k *kafkaService) ensureJars(ctx context.Context) error {
	lib := k.libDir()
	done := filepath.Join(lib, ".complete")
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	if err := os.MkdirAll(k.s.cfg.CacheDir, 0o755); err != nil {
		return err
	}
	unlock, err := flock(ctx, filepath.Join(k.s.cfg.CacheDir, "kafka.lock"), nil)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(done); err == nil {
		return nil // another process did it while we waited
	}
	t0 := time.Now()
	k.s.printf("%-5s resolving Kafka %s jars with Maven into %s (first time only)", Kafka, KafkaVersion(), lib)
	work := lib + ".work"
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	pom := filepath.Join(work, "pom.xml")
	if err := os.WriteFile(pom, infra.KafkaPOM, 0o644); err != nil {
		return err
	}
	mvnLog := filepath.Join(k.s.cfg.CacheDir, "maven.log")
	if err := run(ctx, mvnLog, work, nil, mustLook("mvn"), "-B", "-q", "-f", pom,
		"dependency:copy-dependencies", "-DoutputDirectory="+filepath.Join(work, "lib")); err != nil {
		return fmt.Errorf("resolve Kafka jars: %w%s", err, tailNote(mvnLog))
	}
	_ = os.RemoveAll(lib)
	if err := os.Rename(filepath.Join(work, "lib"), lib); err != nil {
		return err
	}
	_ = os.RemoveAll(work)
	if err := os.WriteFile(done, []byte(time.Now().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	k.s.printf("%-5s jars ready in %s", Kafka, time.Since(t0).Round(10*time.Millisecond))
	return nil
}

func (k *kafkaService) prepare(ctx context.Context) error {
	if err := k.ensureJars(ctx); err != nil {
		return err
	}
	c := k.s.cfg
	voters := make([]string, c.KafkaNodes)
	for i := range voters {
		peer := kafkaService{s: k.s, node: i + 1}
		voters[i] = fmt.Sprintf("%d@127.0.0.1:%d", i+1, peer.ctrlPort())
	}
	// Three nodes: every topic, the internal ones too, has three replicas
	// and takes a write once two have it (acks=all).
	rf, isr := c.KafkaNodes, min(c.KafkaNodes, 2)
	props := fmt.Sprintf(`# Written by couponctl stack; rewritten on every start.
process.roles=broker,controller
node.id=%[5]d
controller.quorum.voters=%[6]s
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=%[3]s
num.partitions=%[4]d
default.replication.factor=%[7]d
min.insync.replicas=%[8]d
offsets.topic.replication.factor=%[7]d
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=%[7]d
transaction.state.log.min.isr=%[8]d
share.coordinator.state.topic.replication.factor=%[7]d
share.coordinator.state.topic.min.isr=%[8]d
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
num.network.threads=3
num.io.threads=4
log.retention.hours=168
log.segment.bytes=268435456
`, k.port(), k.ctrlPort(), k.data(), c.KafkaPartitions, k.node, strings.Join(voters, ","), rf, isr)
	if err := os.WriteFile(k.props(), []byte(props), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(k.log4j(), infra.KafkaLog4j2, 0o644); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(k.data(), "meta.properties")); err == nil {
		return nil // formatted before
	}
	if err := os.MkdirAll(k.data(), 0o755); err != nil {
		return err
	}
	id, err := k.s.kafkaClusterID()
	if err != nil {
		return err
	}
	k.s.printf("%-5s formatting KRaft storage %s (cluster %s)", k.name(), k.data(), id)
	argv := append(k.java("256m"), "kafka.tools.StorageTool", "format", "--ignore-formatted",
		"--cluster-id", id, "--config", k.props())
	if err := run(ctx, k.logFile(), k.dir(), nil, argv...); err != nil {
		return fmt.Errorf("format storage: %w", err)
	}
	return nil
}

// java returns the JVM command line up to the main class.
//
// TieredStopAtLevel=1 keeps the JIT at C1: a broker of this stack lives for
// a test run or a bench, and on two cores C2 spent a quarter of a core
// compiling for the first half minute of load, when the broker used 45-80%
// of a core against 20-25% warm. With C1 alone it uses 25-28% from the
// first second (couponctl bench, async phase, fresh stack: 18.6k -> 20.4k
// accepted req/s); a long-lived production broker wants the default.
func (k *kafkaService) java(heap string) []string {
	return []string{mustLook("java"),
		"-Xmx" + heap, "-Xms" + heap,
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
		"-XX:TieredStopAtLevel=1",
		"-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + k.log4j(),
		"-Dkafka.log.file=" + k.logFile(),
		"-cp", filepath.Join(k.libDir(), "*"),
	}
}

// GCLogName is the file in each broker's folder where its JVM logs every
// garbage collection, one line per pause with its end time (UTC) and length:
//
//	[2026-12-02T03:37:55.506+0000][info][gc] GC(14) Pause Young (Normal) (G1 Evacuation Pause) 182M->165M(512M) 4.796ms
//
// Kafka's own start script logs GC the same way (kafkaServer-gc.log). A
// restart moves the last log aside (gc.log.0, .1), so gc.log is this run's.
const GCLogName = "gc.log"

func (k *kafkaService) command() ([]string, error) {
	argv := k.java(k.s.cfg.KafkaHeap)
	n := len(argv) - 2 // before -cp <jars>
	gc := `-Xlog:gc:file="` + k.gcLog() + `":utctime,level,tags:filecount=2,filesize=16m`
	argv = append(argv[:n:n], append([]string{gc}, argv[n:]...)...)
	return append(argv, "kafka.Kafka", k.props()), nil
}

// ready asks the broker for cluster metadata and wants to see itself.
func (k *kafkaService) ready(ctx context.Context) error {
	// A transport of its own: the shared one answers metadata from its
	// cache, so a broker killed a moment ago would still look ready.
	md, err := k.metadata(ctx)
	if err != nil {
		return err
	}
	if len(md.Brokers) == 0 || md.Controller.ID < 0 {
		return errors.New("no broker in metadata yet")
	}
	if !hasBroker(md, k.node) {
		return fmt.Errorf("broker %d not registered yet", k.node)
	}
	// The broker answering must be ours, not another stack's on this port.
	if id := k.clusterID(); id != "" && md.ClusterID != id {
		return fmt.Errorf("the broker on %s belongs to cluster %s, not this stack's %s", k.addr(), md.ClusterID, id)
	}
	return nil
}

func hasBroker(md *kafka.MetadataResponse, id int) bool {
	for _, b := range md.Brokers {
		if b.ID == id {
			return true
		}
	}
	return false
}

// metadata asks this node for the cluster's metadata over a transport of
// its own (the shared one answers from its cache).
func (k *kafkaService) metadata(ctx context.Context) (*kafka.MetadataResponse, error) {
	tr := &kafka.Transport{DialTimeout: 3 * time.Second}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(k.addr()), Timeout: 3 * time.Second, Transport: tr}
	return cl.Metadata(ctx, &kafka.MetadataRequest{})
}

func (k *kafkaService) role(context.Context) string { return "broker+controller" }

// kafkaClusterID returns the KRaft cluster id every node of this stack is
// formatted with: the one on disk, or a new one.
func (s *Stack) kafkaClusterID() (string, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	for _, name := range s.groups[Kafka] {
		if id := s.svcs[name].(*kafkaService).clusterID(); id != "" {
			return id, nil
		}
	}
	path := filepath.Join(s.cfg.Dir, "kafka-cluster.id")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	id, err := clusterID()
	if err != nil {
		return "", err
	}
	if s.cfg.KafkaNodes > 1 {
		if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	return id, nil
}

// waitKafkaCluster waits until a node's metadata lists every broker.
func (s *Stack) waitKafkaCluster(ctx context.Context) error {
	first := s.svcs[s.groups[Kafka][0]].(*kafkaService)
	return s.waitGroup(ctx, Kafka, fmt.Sprintf("all %d brokers in the metadata", s.cfg.KafkaNodes), 90*time.Second, func(ctx context.Context) error {
		md, err := first.metadata(ctx)
		if err != nil {
			return err
		}
		if len(md.Brokers) != s.cfg.KafkaNodes {
			return fmt.Errorf("%d of %d brokers registered", len(md.Brokers), s.cfg.KafkaNodes)
		}
		return nil
	})
}

// clusterID reads the cluster id this node's storage was formatted with.
func (k *kafkaService) clusterID() string {
	b, err := os.ReadFile(filepath.Join(k.data(), "meta.properties"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster.id="); ok {
			return v
		}
	}
	return ""
}

// clusterID returns a random KRaft cluster id (16 bytes, base64url).
func clusterID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	b[0] &= 0x7f // keep the text from starting with '-'
	return base64.RawURLEncoding.EncodeToString(b), nil
}
