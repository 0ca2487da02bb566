package stack

import (
	"strconv"
	"strings"
)

// Clients is how the system's processes reach a stack: the settings `make
// run` gives the gateway and sinker, and the servers the operator commands
// default to.
type Clients struct {
	// RedisAddrs is the one server, every cluster node, or (with
	// RedisMaster) the Sentinels.
	RedisAddrs  []string
	RedisMaster string // sentinel mode: the master name the Sentinels monitor
	// RedisWaitReplicas is how many replicas acknowledge each admission
	// batch (sentinel mode: one of the two, so a failover keeps it).
	RedisWaitReplicas int
	MySQLDSN          string
	KafkaBrokers      []string
}

// Clients returns how to reach the stack, with database db.
func (s *Stack) Clients(db string) Clients {
	c := Clients{RedisAddrs: []string{s.RedisAddr()}, MySQLDSN: s.MySQLDSN(db), KafkaBrokers: s.KafkaBrokers()}
	switch s.cfg.RedisMode {
	case RedisCluster:
		c.RedisAddrs = s.RedisAddrs()
	case RedisSentinel:
		c.RedisAddrs, c.RedisMaster, c.RedisWaitReplicas = s.SentinelAddrs(), SentinelMaster, 1
	}
	return c
}

// Env is c as the COUPON_* variables the gateway, the sinker and couponctl
// read.
func (c Clients) Env() []string {
	env := []string{"COUPON_REDIS_ADDRS=" + strings.Join(c.RedisAddrs, ",")}
	if c.RedisMaster != "" {
		env = append(env, "COUPON_REDIS_MASTER_NAME="+c.RedisMaster)
	}
	if c.RedisWaitReplicas > 0 {
		env = append(env, "COUPON_REDIS_WAIT_REPLICAS="+strconv.Itoa(c.RedisWaitReplicas))
	}
	return append(env, "COUPON_MYSQL_DSN="+c.MySQLDSN, "COUPON_KAFKA_BROKERS="+strings.Join(c.KafkaBrokers, ","))
}
