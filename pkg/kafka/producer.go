package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// ErrClosed is returned by Publish after Close has begun.
var ErrClosed = errors.New("kafka: producer closed")

// ErrQueueFull is returned when librdkafka's local queue stayed full for longer than
// ProducerConfig.QueueFullTimeout: the message was not accepted.
var ErrQueueFull = errors.New("kafka: local producer queue full")

// ProducerConfig configures the process's producer. Zero values take the defaults noted.
type ProducerConfig struct {
	// Brokers is the bootstrap list, e.g. "127.0.0.1:19092". Required.
	Brokers string
	// ClientID names the process to the broker (default "eventshop").
	ClientID string
	// Linger is how long librdkafka waits to fill a batch (default 5ms).
	Linger time.Duration
	// Compression is the codec: none, gzip, snappy, lz4, zstd (default lz4).
	Compression string
	// DeliveryTimeout bounds how long librdkafka retries one message (default 30s).
	DeliveryTimeout time.Duration
	// ConnectTimeout bounds the start-up check that a broker answers (default 10s).
	ConnectTimeout time.Duration
	// QueueFullTimeout bounds the back-off while the local queue is full (default 5s).
	QueueFullTimeout time.Duration
	// Extra holds further librdkafka properties; they override the above.
	Extra map[string]any
	// Observer, if set, receives every delivery report (for metrics).
	Observer ProducerObserver
	// ProbeTimeout bounds one broker probe of Ping (default 1s).
	ProbeTimeout time.Duration
}

// Producer is the long-lived, idempotent producer of a process. It is safe for
// concurrent use. Delivery reports are always drained by one goroutine.
type Producer struct {
	p      *ckafka.Producer
	log    *slog.Logger
	cfg    ProducerConfig
	closed atomic.Bool
	// inflight counts messages handed to librdkafka whose report has not arrived.
	inflight atomic.Int64
	fatal    atomic.Pointer[error]
	// intake lets Close wait for Publish calls that are inside Produce.
	intake sync.RWMutex
	done   chan struct{}

	// probe caches the last broker probe of Ping.
	probeMu  sync.Mutex
	probeAt  time.Time
	probeErr error

	// OnFatal, when set before the first Publish, is called once with a fatal
	// librdkafka error (the producer is unusable after it; the process should exit).
	OnFatal func(error)
}

// delivery is the per-message opaque: where the delivery report goes.
type delivery struct {
	ch    chan error  // Publish waits on it (buffered 1)
	cb    func(error) // PublishAsync calls it
	start time.Time   // when Publish was called, for the observer's latency
}

// NewProducer creates the producer and checks within cfg.ConnectTimeout that a broker
// answers; it returns a clear error otherwise. The caller must Close it.
func NewProducer(ctx context.Context, cfg ProducerConfig, log *slog.Logger) (*Producer, error) {
	if cfg.Brokers == "" {
		return nil, errors.New("kafka: producer: no brokers configured")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "eventshop"
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 5 * time.Millisecond
	}
	if cfg.Compression == "" {
		cfg.Compression = "lz4"
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.QueueFullTimeout <= 0 {
		cfg.QueueFullTimeout = 5 * time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cm := ckafka.ConfigMap{
		"bootstrap.servers":                  cfg.Brokers,
		"client.id":                          cfg.ClientID,
		"acks":                               "all",
		"enable.idempotence":                 true,
		"linger.ms":                          int(cfg.Linger.Milliseconds()),
		"compression.type":                   cfg.Compression,
		"message.timeout.ms":                 int(cfg.DeliveryTimeout.Milliseconds()),
		"socket.connection.setup.timeout.ms": int(cfg.ConnectTimeout.Milliseconds()),
		"go.delivery.reports":                true,
		"go.logs.channel.enable":             false,
		"partitioner":                        "murmur2_random", // same key -> same partition as the Java client
		// confluent-kafka-go allocates both Go channels up front with room for a million
		// entries (24 MB of heap). drain empties the events channel as fast as librdkafka
		// fills it, and Produce never uses the produce channel.
		"go.events.channel.size":  10000,
		"go.produce.channel.size": 1,
	}
	for k, v := range cfg.Extra {
		cm[k] = v
	}
	p, err := ckafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("kafka: create producer: %w", err)
	}
	pr := &Producer{p: p, log: log, cfg: cfg, done: make(chan struct{})}
	go pr.drain()

	if err := pr.checkConnect(ctx); err != nil {
		pr.p.Close()
		<-pr.done
		return nil, err
	}
	return pr, nil
}

// checkConnect asks for cluster metadata so that an unreachable broker fails the start.
func (pr *Producer) checkConnect(ctx context.Context) error {
	timeout := pr.cfg.ConnectTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout < time.Millisecond {
		return fmt.Errorf("kafka: producer: no time left to reach brokers %s: %w", pr.cfg.Brokers, context.DeadlineExceeded)
	}
	if _, err := pr.p.GetMetadata(nil, false, int(timeout.Milliseconds())); err != nil {
		return fmt.Errorf("kafka: brokers %s unreachable within %s: %w", pr.cfg.Brokers, timeout, err)
	}
	return nil
}

// drain consumes every event librdkafka emits until the producer is closed.
func (pr *Producer) drain() {
	defer close(pr.done)
	for ev := range pr.p.Events() {
		switch e := ev.(type) {
		case *ckafka.Message:
			d, _ := e.Opaque.(*delivery)
			pr.inflight.Add(-1)
			var err error
			if e.TopicPartition.Error != nil {
				err = fmt.Errorf("kafka: deliver to %s: %w", topicOf(e), e.TopicPartition.Error)
			}
			if d != nil && pr.cfg.Observer != nil {
				pr.cfg.Observer.Delivered(topicOf(e), time.Since(d.start), e.TopicPartition.Error)
			}
			if d != nil {
				if d.ch != nil {
					d.ch <- err
				}
				if d.cb != nil {
					d.cb(err)
				}
			}
		case ckafka.Error:
			if e.IsFatal() {
				err := fmt.Errorf("kafka: fatal producer error: %w", e)
				if pr.fatal.CompareAndSwap(nil, &err) {
					pr.log.Error("kafka producer fatal error", "err", e)
					if pr.OnFatal != nil {
						pr.OnFatal(err)
					}
				}
				continue
			}
			// Transient client errors (broker down, all brokers down) are retried by
			// librdkafka itself; messages fail through their delivery report.
			pr.log.Warn("kafka producer error", "err", e, "code", e.Code().String())
		default:
			// Statistics and other events are not used yet.
		}
	}
}

func topicOf(m *ckafka.Message) string {
	if m.TopicPartition.Topic == nil {
		return "?"
	}
	return *m.TopicPartition.Topic
}

// Healthy returns the fatal error that made the producer unusable, or nil.
func (pr *Producer) Healthy() error {
	if e := pr.fatal.Load(); e != nil {
		return *e
	}
	if pr.closed.Load() {
		return ErrClosed
	}
	return nil
}

// probeCache is how long Ping reuses its last answer, so that frequent readiness
// checks cost at most one metadata request a second.
const probeCache = time.Second

// Ping reports whether the producer is usable and a broker answers now: the fatal
// error if any, else the result of a cheap metadata request bounded by ProbeTimeout (and
// ctx). Answers are cached for a second. It is the "kafka" readiness check.
func (pr *Producer) Ping(ctx context.Context) error {
	if err := pr.Healthy(); err != nil {
		return err
	}
	pr.probeMu.Lock()
	defer pr.probeMu.Unlock()
	if !pr.probeAt.IsZero() && time.Since(pr.probeAt) < probeCache {
		return pr.probeErr
	}
	timeout := pr.cfg.ProbeTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout < time.Millisecond {
		return fmt.Errorf("kafka: probe brokers %s: %w", pr.cfg.Brokers, context.DeadlineExceeded)
	}
	pr.probeErr = nil
	if _, err := pr.p.GetMetadata(nil, false, int(timeout.Milliseconds())); err != nil {
		pr.probeErr = fmt.Errorf("kafka: brokers %s do not answer: %w", pr.cfg.Brokers, err)
	}
	pr.probeAt = time.Now()
	return pr.probeErr
}

// Publish sends m and waits for the broker's acknowledgement (acks=all). It returns the
// delivery error, ErrQueueFull, ErrClosed, a fatal error, or ctx's error when ctx ends
// first (the message may then still be delivered: consumers deduplicate by event id).
func (pr *Producer) Publish(ctx context.Context, m Message) error {
	d := &delivery{ch: make(chan error, 1), start: time.Now()}
	if err := pr.produce(ctx, m, d); err != nil {
		return err
	}
	select {
	case err := <-d.ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("kafka: waiting for ack: %w", ctx.Err())
	}
}

// PublishAsync hands m to the producer and returns at once; cb is called exactly once
// with the delivery result, from the delivery goroutine (it must not block long). An
// error returned here means the message was not accepted and cb will not be called.
func (pr *Producer) PublishAsync(ctx context.Context, m Message, cb func(error)) error {
	return pr.produce(ctx, m, &delivery{cb: cb, start: time.Now()})
}

func (pr *Producer) produce(ctx context.Context, m Message, d *delivery) error {
	if m.Topic == "" {
		return errors.New("kafka: publish: empty topic")
	}
	pr.intake.RLock()
	defer pr.intake.RUnlock()
	if pr.closed.Load() {
		return ErrClosed
	}
	if err := pr.Healthy(); err != nil {
		return err
	}
	km := toCkafka(m)
	km.Opaque = d
	backoff := time.Millisecond
	deadline := time.Now().Add(pr.cfg.QueueFullTimeout)
	for {
		pr.inflight.Add(1)
		err := pr.p.Produce(km, nil)
		if err == nil {
			return nil
		}
		pr.inflight.Add(-1)
		var kerr ckafka.Error
		if !errors.As(err, &kerr) || kerr.Code() != ckafka.ErrQueueFull {
			return fmt.Errorf("kafka: produce to %s: %w", m.Topic, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w for %s (topic %s)", ErrQueueFull, pr.cfg.QueueFullTimeout, m.Topic)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: produce to %s: queue full: %w", m.Topic, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 100*time.Millisecond)
	}
}

// Pending is the number of messages handed to librdkafka whose delivery report has not
// arrived yet.
func (pr *Producer) Pending() int64 { return pr.inflight.Load() }

// Close stops intake, flushes until ctx ends, purges what is left and closes the producer.
// It returns how many messages were not delivered (their callers get an error) and, when
// that is not zero, an error saying so. Close is safe to call once.
func (pr *Producer) Close(ctx context.Context) (undelivered int, err error) {
	pr.intake.Lock() // waits for Produce calls in progress; none start after this
	pr.closed.Store(true)
	pr.intake.Unlock()

	for pr.p.Len() > 0 || pr.inflight.Load() > 0 {
		if ctx.Err() != nil {
			break
		}
		wait := 100 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			wait = max(time.Until(dl), time.Millisecond)
		}
		pr.p.Flush(int(wait.Milliseconds()))
	}
	left := int(pr.inflight.Load())
	if left > 0 {
		// Purge so that every waiting caller gets its failed report before we close.
		_ = pr.p.Purge(ckafka.PurgeQueue | ckafka.PurgeInFlight | ckafka.PurgeNonBlocking)
		deadline := time.Now().Add(2 * time.Second)
		for pr.inflight.Load() > 0 && time.Now().Before(deadline) {
			pr.p.Flush(50)
		}
	}
	pr.p.Close()
	<-pr.done
	if left > 0 {
		return left, fmt.Errorf("kafka: producer closed with %d undelivered message(s)", left)
	}
	return 0, nil
}
