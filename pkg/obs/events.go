package obs

import (
	"database/sql"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventshop/eventshop/pkg/kafka"
)

// deliveryBuckets span 1ms to 30s (the default delivery timeout).
var deliveryBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// eventMetrics are the Kafka, outbox, idempotency and database series of a process.
// Every label is bounded by configuration: topic and group names, partitions,
// idempotency outcomes.
type eventMetrics struct {
	deliveries      *prometheus.HistogramVec
	deliveryErrors  *prometheus.CounterVec
	handleDuration  *prometheus.HistogramVec
	handleErrors    *prometheus.CounterVec
	retries         *prometheus.CounterVec
	deadLetters     *prometheus.CounterVec
	lag             *prometheus.GaugeVec
	outcomes        *prometheus.CounterVec
	outboxPending   prometheus.Gauge
	outboxOldest    prometheus.Gauge
	outboxPublished prometheus.Counter

	mu       sync.Mutex
	lagGroup map[string][]prometheus.Labels // series last set per group, to drop revoked partitions
}

func newEventMetrics(constLabels prometheus.Labels) *eventMetrics {
	return &eventMetrics{
		deliveries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventshop_kafka_producer_delivery_seconds", Help: "Time from publish to the broker's acknowledgement (or failure), by topic.",
			ConstLabels: constLabels, Buckets: deliveryBuckets,
		}, []string{"topic"}),
		deliveryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_kafka_producer_errors_total", Help: "Messages whose delivery failed, by topic.",
			ConstLabels: constLabels,
		}, []string{"topic"}),
		handleDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eventshop_kafka_consumer_handle_seconds", Help: "Time of one handler attempt, by group and topic.",
			ConstLabels: constLabels, Buckets: latencyBuckets,
		}, []string{"group", "topic"}),
		handleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_kafka_consumer_handle_errors_total", Help: "Handler attempts that failed, by group and topic.",
			ConstLabels: constLabels,
		}, []string{"group", "topic"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_kafka_consumer_retries_total", Help: "Messages scheduled for another attempt after a failure, by group and topic.",
			ConstLabels: constLabels,
		}, []string{"group", "topic"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_kafka_consumer_dead_letters_total", Help: "Messages sent to the dead-letter topic, by group and origin topic.",
			ConstLabels: constLabels,
		}, []string{"group", "topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventshop_kafka_consumer_lag", Help: "Messages between the group's committed offset and the high watermark, per owned partition (librdkafka statistics).",
			ConstLabels: constLabels,
		}, []string{"group", "topic", "partition"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventshop_consumer_events_total", Help: "Consumed events by idempotency outcome (applied, duplicate, stale, unknown), group and topic.",
			ConstLabels: constLabels,
		}, []string{"group", "topic", "outcome"}),
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventshop_outbox_pending", Help: "Outbox rows not yet published.", ConstLabels: constLabels,
		}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eventshop_outbox_oldest_pending_seconds", Help: "Age of the oldest unpublished outbox row (0 when none).", ConstLabels: constLabels,
		}),
		outboxPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventshop_outbox_published_total", Help: "Outbox rows published and marked sent.", ConstLabels: constLabels,
		}),
		lagGroup: map[string][]prometheus.Labels{},
	}
}

// eventMetricNames are the families of eventMetrics, in the order of collectors.
var eventMetricNames = []string{
	"eventshop_kafka_producer_delivery_seconds", "eventshop_kafka_producer_errors_total",
	"eventshop_kafka_consumer_handle_seconds", "eventshop_kafka_consumer_handle_errors_total",
	"eventshop_kafka_consumer_retries_total", "eventshop_kafka_consumer_dead_letters_total",
	"eventshop_kafka_consumer_lag", "eventshop_consumer_events_total",
	"eventshop_outbox_pending", "eventshop_outbox_oldest_pending_seconds", "eventshop_outbox_published_total",
}

func (e *eventMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.deliveries, e.deliveryErrors, e.handleDuration, e.handleErrors, e.retries,
		e.deadLetters, e.lag, e.outcomes, e.outboxPending, e.outboxOldest, e.outboxPublished}
}

// Delivered records one delivery report (kafka.ProducerObserver).
func (m *Metrics) Delivered(topic string, latency time.Duration, err error) {
	m.events.deliveries.WithLabelValues(topic).Observe(latency.Seconds())
	if err != nil {
		m.events.deliveryErrors.WithLabelValues(topic).Inc()
	}
}

// Handled records one handler attempt (kafka.ConsumerObserver).
func (m *Metrics) Handled(group, topic string, d time.Duration, err error) {
	m.events.handleDuration.WithLabelValues(group, topic).Observe(d.Seconds())
	if err != nil {
		m.events.handleErrors.WithLabelValues(group, topic).Inc()
	}
}

// Retrying counts a message scheduled for another attempt (kafka.ConsumerObserver).
func (m *Metrics) Retrying(group, topic string) { m.events.retries.WithLabelValues(group, topic).Inc() }

// DeadLettered counts a dead-lettered message (kafka.ConsumerObserver).
func (m *Metrics) DeadLettered(group, topic string) {
	m.events.deadLetters.WithLabelValues(group, topic).Inc()
}

// Lags replaces the lag series of group with lags (kafka.ConsumerObserver); partitions
// no longer reported (revoked) disappear.
func (m *Metrics) Lags(group string, lags []kafka.PartitionLag) {
	e := m.events
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.lagGroup[group] {
		e.lag.Delete(l)
	}
	var set []prometheus.Labels
	for _, pl := range lags {
		l := prometheus.Labels{"group": group, "topic": pl.Topic, "partition": strconv.Itoa(int(pl.Partition))}
		e.lag.With(l).Set(float64(pl.Lag))
		set = append(set, l)
	}
	e.lagGroup[group] = set
}

// ConsumerOutcome counts one consumed event by its idempotency outcome ("applied",
// "duplicate", "stale", "unknown").
func (m *Metrics) ConsumerOutcome(group, topic, outcome string) {
	m.events.outcomes.WithLabelValues(group, topic, outcome).Inc()
}

// OutboxBacklog sets the outbox backlog gauges (outbox.Observer).
func (m *Metrics) OutboxBacklog(pending int64, oldest time.Duration) {
	m.events.outboxPending.Set(float64(pending))
	m.events.outboxOldest.Set(oldest.Seconds())
}

// OutboxPublished counts rows published by the relay (outbox.Observer).
func (m *Metrics) OutboxPublished(n int) { m.events.outboxPublished.Add(float64(n)) }

// ProducerPending exports pending() as eventshop_kafka_producer_pending: messages
// handed to the producer whose delivery report has not arrived. Call it once.
func (m *Metrics) ProducerPending(pending func() int64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "eventshop_kafka_producer_pending", Help: "Messages handed to the producer and not yet acknowledged or failed.",
		ConstLabels: m.constLabels,
	}, func() float64 { return float64(pending()) }))
}

// DBStats exports the pool statistics of db (eventshop_db_connections_in_use, _idle,
// _max_open, eventshop_db_wait_seconds_total), read at scrape time. Call it once.
func (m *Metrics) DBStats(stats func() sql.DBStats) {
	m.Registry.MustRegister(&dbCollector{stats: stats, constLabels: m.constLabels})
}

type dbCollector struct {
	stats       func() sql.DBStats
	constLabels prometheus.Labels
}

func (c *dbCollector) descs() (inUse, idle, maxOpen, wait *prometheus.Desc) {
	return prometheus.NewDesc("eventshop_db_connections_in_use", "Database connections in use.", nil, c.constLabels),
		prometheus.NewDesc("eventshop_db_connections_idle", "Idle database connections.", nil, c.constLabels),
		prometheus.NewDesc("eventshop_db_connections_max_open", "Maximum open database connections.", nil, c.constLabels),
		prometheus.NewDesc("eventshop_db_wait_seconds_total", "Time spent waiting for a database connection.", nil, c.constLabels)
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	a, b, d, e := c.descs()
	ch <- a
	ch <- b
	ch <- d
	ch <- e
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	a, b, d, e := c.descs()
	ch <- prometheus.MustNewConstMetric(a, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(b, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(s.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(e, prometheus.CounterValue, s.WaitDuration.Seconds())
}

// Names lists the eventshop_* metric families of a process whose producer and pool are
// wired (ProducerPending, DBStats), as every service's host does, whether or not they
// have series yet: dashboards and alerts are checked against it.
func (m *Metrics) Names() []string {
	return append([]string{"eventshop_grpc_requests_total", "eventshop_grpc_request_duration_seconds",
		"eventshop_http_requests_total", "eventshop_http_request_duration_seconds",
		"eventshop_kafka_producer_pending",
		"eventshop_db_connections_in_use", "eventshop_db_connections_idle", "eventshop_db_connections_max_open", "eventshop_db_wait_seconds_total",
	}, eventMetricNames...)
}
