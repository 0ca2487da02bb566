package sinker

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the sinker's Prometheus series, on a registry of its own so
// several sinkers may live in one test process.
type metrics struct {
	reg            *prometheus.Registry
	batchSize      prometheus.Histogram
	records        prometheus.Counter
	inserted       prometheus.Counter
	duplicates     prometheus.Counter
	commitDuration *prometheus.HistogramVec // stage: db, dlq, offsets
	lag            *prometheus.GaugeVec     // partition
	deadLettered   *prometheus.CounterVec   // reason
	dbErrors       *prometheus.CounterVec   // kind: transient, other
	commitErrors   prometheus.Counter
	unavailable    *prometheus.GaugeVec   // dependency: kafka, mysql
	readerErrors   *prometheus.CounterVec // kind: fetch, read_timeout, other
}

// Kinds of coupon_sinker_db_errors_total.
const (
	dbErrorTransient = "transient" // lost connection, deadlock, lock wait timeout, failover (mysql.IsTransient)
	dbErrorOther     = "other"
)

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coupon_sinker_batch_size",
			Help:    "Records per batch the sinker wrote in one transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9), // 1 .. 65536
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coupon_sinker_records_total",
			Help: "Records consumed and settled (inserted, duplicate or dead-lettered) and committed past.",
		}),
		inserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coupon_sinker_rows_inserted_total",
			Help: "coupon_issues rows inserted.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coupon_sinker_duplicates_skipped_total",
			Help: "Records whose row was already there (redeliveries): nothing changed.",
		}),
		commitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coupon_sinker_commit_duration_seconds",
			Help:    "Time to settle a batch, by stage: db (the insert transaction), dlq (dead-letter write), offsets (Kafka commit).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1 ms .. 8 s
		}, []string{"stage"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coupon_sinker_lag",
			Help: "Records behind the partition's high watermark after the last batch.",
		}, []string{"partition"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coupon_sinker_dead_lettered_total",
			Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		dbErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coupon_sinker_db_errors_total",
			Help: "Failed insert transactions (retried with backoff, offsets not committed), by kind.",
		}, []string{"kind"}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coupon_sinker_offset_commit_errors_total",
			Help: "Failed offset commits (the batch will be redelivered and skipped as duplicates).",
		}),
		unavailable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "coupon_sinker_unavailable",
			Help: "1 while the sinker waits for a dependency (kafka, mysql) to come back, else 0.",
		}, []string{"dependency"}),
		readerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coupon_sinker_kafka_reader_errors_total",
			Help: "Errors the Kafka reader reported, by kind: fetch (a fetch failed: the reader's retries ran out for now), read_timeout (a read i/o timeout the reader reconnects after by itself, noise), other.",
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.batchSize, m.records, m.inserted, m.duplicates, m.commitDuration, m.lag,
		m.deadLettered, m.dbErrors, m.commitErrors, m.unavailable, m.readerErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every label value exists from the start, so the dashboard shows 0,
	// not "No data", before the first dead letter or database error.
	for _, r := range []string{ReasonUndecodable, ReasonUnknownCoupon, ReasonOverTotal} {
		m.deadLettered.WithLabelValues(r)
	}
	for _, d := range []string{depKafka, depMySQL} {
		m.unavailable.WithLabelValues(d)
	}
	for _, k := range []string{"fetch", "read_timeout", "other"} {
		m.readerErrors.WithLabelValues(k)
	}
	for _, k := range []string{dbErrorTransient, dbErrorOther} {
		m.dbErrors.WithLabelValues(k)
	}
	return m
}
