package cli

// The connection settings the binaries share, each declared here once: the
// same flag, environment variable and usage wherever it appears. Each
// binds p with *p as the default (the component's DefaultConfig); an empty
// default is described by the FlagSet's NoDefault.

// KafkaBrokersVar binds --kafka-brokers (COUPON_KAFKA_BROKERS).
func (fs *FlagSet) KafkaBrokersVar(p *[]string) {
	fs.ListVar(p, "kafka-brokers", "COUPON_KAFKA_BROKERS", *p, fs.connUsage("Kafka bootstrap brokers, comma-separated", len(*p) == 0))
}

// TopicVar binds --topic (COUPON_TOPIC).
func (fs *FlagSet) TopicVar(p *string) {
	fs.StringVar(p, "topic", "COUPON_TOPIC", *p, "admitted-request topic")
}

// DLQTopicVar binds --dlq-topic (COUPON_DLQ_TOPIC); role, when not empty,
// is appended to its usage: what this command does with the topic.
func (fs *FlagSet) DLQTopicVar(p *string, role string) {
	usage := "dead-letter topic for poison records"
	if role != "" {
		usage += "; " + role
	}
	fs.StringVar(p, "dlq-topic", "COUPON_DLQ_TOPIC", *p, usage)
}

// GroupIDVar binds --group-id (COUPON_GROUP_ID).
func (fs *FlagSet) GroupIDVar(p *string) {
	fs.StringVar(p, "group-id", "COUPON_GROUP_ID", *p, "the consumer group every sinker process joins (the gateway's drop page and couponctl read its offsets)")
}

// MySQLDSNVar binds --mysql-dsn (COUPON_MYSQL_DSN), a secret.
func (fs *FlagSet) MySQLDSNVar(p *string) {
	fs.SecretVar(p, "mysql-dsn", "COUPON_MYSQL_DSN", *p, fs.connUsage("MySQL/MariaDB DSN (go-sql-driver format)", *p == ""))
}

// RedisAddrsVar binds --redis-addrs (COUPON_REDIS_ADDRS).
func (fs *FlagSet) RedisAddrsVar(p *[]string) {
	fs.ListVar(p, "redis-addrs", "COUPON_REDIS_ADDRS", *p, fs.connUsage("Redis address, or Redis Cluster seed addresses, or with redis-master-name the Sentinels, comma-separated", len(*p) == 0))
}

// RedisMasterNameVar binds --redis-master-name (COUPON_REDIS_MASTER_NAME).
func (fs *FlagSet) RedisMasterNameVar(p *string) {
	fs.StringVar(p, "redis-master-name", "COUPON_REDIS_MASTER_NAME", *p, fs.connUsage("Redis Sentinel: the primary's master name; redis-addrs then lists the Sentinels", *p == ""))
}

// RedisPasswordVar binds --redis-password (COUPON_REDIS_PASSWORD), a secret.
func (fs *FlagSet) RedisPasswordVar(p *string) {
	fs.SecretVar(p, "redis-password", "COUPON_REDIS_PASSWORD", *p, "Redis password")
}

func (fs *FlagSet) connUsage(usage string, empty bool) string {
	if empty && fs.NoDefault != "" {
		return usage + "; default " + fs.NoDefault
	}
	return usage
}
