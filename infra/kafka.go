package infra

import _ "embed"

// KafkaPOM is infra/kafka/pom.xml: the Maven project whose runtime
// dependencies are the jars of one Apache Kafka broker (see infra/stack).
//
//go:embed kafka/pom.xml
var KafkaPOM []byte

// KafkaLog4j2 is infra/kafka/log4j2.properties: the broker's logging
// configuration, writing to the file named by -Dkafka.log.file.
//
//go:embed kafka/log4j2.properties
var KafkaLog4j2 []byte
