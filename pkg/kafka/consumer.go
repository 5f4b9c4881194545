package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Handler processes one message. Returning nil lets the runner store the message's
// offset; an error marked with Permanent sends the message to the dead-letter topic;
// any other error is transient and the same message is retried.
type Handler func(ctx context.Context, m Message) error

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: retrying the message cannot help (undecodable,
// invalid). A nil err stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// DLQ header names set on dead-lettered messages, beside the original headers.
const (
	HeaderDLQError     = "dlq_error"
	HeaderDLQTopic     = "dlq_origin_topic"
	HeaderDLQPartition = "dlq_origin_partition"
	HeaderDLQOffset    = "dlq_origin_offset"
	HeaderDLQGroup     = "dlq_group"
	HeaderDLQTime      = "dlq_failed_at"
)

// DLQTopic is the dead-letter topic of a topic for one consumer group.
func DLQTopic(topic, group string) string { return topic + ".dlq." + group }

// ConsumerConfig configures a Runner. Zero values take the defaults noted.
type ConsumerConfig struct {
	// Brokers is the bootstrap list. Required.
	Brokers string
	// GroupID is the consumer group. Required.
	GroupID string
	// Topics to subscribe to. Required.
	Topics []string
	// RetryMin and RetryMax bound the back-off between attempts of a transient
	// failure (defaults 100ms and 10s).
	RetryMin, RetryMax time.Duration
	// SessionTimeout is the group session timeout (default 10s).
	SessionTimeout time.Duration
	// MaxPollInterval is the longest a handler may keep the runner from polling
	// before the member is removed from the group (default 5m).
	MaxPollInterval time.Duration
	// ShutdownTimeout bounds the in-flight handler after shutdown begins (default 30s).
	ShutdownTimeout time.Duration
	// BatchSize bounds how many messages, already fetched when the first arrives, the
	// runner hands to Batch together (default 1: one message at a time).
	BatchSize int
	// Batch, when set and BatchSize > 1, runs the handler over several messages as one
	// unit, typically one database transaction (see idempotency.Batch): it calls each
	// once and returns its error, or the error of committing the unit. When it fails, the
	// unit must have changed nothing: the runner then handles those messages one at a
	// time, so that a poison message is dead-lettered alone and the others apply. A handler
	// that writes outside the unit sees those messages again, as it may anyway under
	// at-least-once delivery.
	Batch func(ctx context.Context, each func(ctx context.Context) error) error
	// Extra holds further librdkafka properties; they override the above.
	Extra map[string]any
	// Observer, if set, receives handler timings, retries, dead letters and, from
	// librdkafka statistics every DefaultStatsInterval, the lag per partition.
	Observer ConsumerObserver
}

// Runner consumes Topics in GroupID and calls the handler for each message, one at a
// time per runner, in partition order; with ConsumerConfig.Batch, the messages already
// fetched (up to BatchSize) go through the handler inside one Batch call. Offsets are
// stored only after the handler returned nil (or the message reached the DLQ), and
// committed by librdkafka's auto-commit, on every partition revocation and at shutdown. Delivery is therefore at least once; the
// handler makes the effect exactly once with the idempotency package.
type Runner struct {
	cfg     ConsumerConfig
	handler Handler
	dlq     *Producer
	log     *slog.Logger
	// assigned counts the partitions this member owns now.
	assigned atomic.Int64
}

// NewRunner validates cfg. dlq is the process's producer, used for dead letters.
func NewRunner(cfg ConsumerConfig, dlq *Producer, h Handler, log *slog.Logger) (*Runner, error) {
	switch {
	case cfg.Brokers == "":
		return nil, errors.New("kafka: consumer: no brokers configured")
	case cfg.GroupID == "":
		return nil, errors.New("kafka: consumer: no group id")
	case len(cfg.Topics) == 0:
		return nil, errors.New("kafka: consumer: no topics")
	case h == nil:
		return nil, errors.New("kafka: consumer: nil handler")
	case dlq == nil:
		return nil, errors.New("kafka: consumer: nil producer for the dead-letter topic")
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.MaxPollInterval <= 0 {
		cfg.MaxPollInterval = 5 * time.Minute
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.BatchSize <= 0 || cfg.Batch == nil {
		cfg.BatchSize = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("group", cfg.GroupID)
	return &Runner{cfg: cfg, handler: h, dlq: dlq, log: log}, nil
}

// DLQTopics lists the dead-letter topics this runner may write, for creation at start.
func (r *Runner) DLQTopics() []string {
	out := make([]string, len(r.cfg.Topics))
	for i, t := range r.cfg.Topics {
		out[i] = DLQTopic(t, r.cfg.GroupID)
	}
	return out
}

// Assigned returns how many partitions this member owns at the moment.
func (r *Runner) Assigned() int { return int(r.assigned.Load()) }

// Run creates the dead-letter topics if needed, then consumes until ctx is cancelled,
// finishes the in-flight message, commits the stored offsets and leaves the group. It
// returns nil after a clean shutdown.
func (r *Runner) Run(ctx context.Context) error {
	dlqs := make([]TopicSpec, 0, len(r.cfg.Topics))
	for _, t := range r.DLQTopics() {
		dlqs = append(dlqs, TopicSpec{Name: t, Partitions: 1})
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := EnsureTopics(tctx, r.cfg.Brokers, dlqs...)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil //nolint:nilerr // stopped while starting: nothing consumed, nothing to commit
		}
		return fmt.Errorf("kafka: dead-letter topics: %w", err)
	}
	cm := ckafka.ConfigMap{
		"bootstrap.servers":             r.cfg.Brokers,
		"group.id":                      r.cfg.GroupID,
		"client.id":                     r.cfg.GroupID,
		"auto.offset.reset":             "earliest",
		"enable.auto.commit":            true,
		"auto.commit.interval.ms":       1000,
		"enable.auto.offset.store":      false,
		"partition.assignment.strategy": "cooperative-sticky",
		"session.timeout.ms":            int(r.cfg.SessionTimeout.Milliseconds()),
		"heartbeat.interval.ms":         int(max(r.cfg.SessionTimeout/5, 100*time.Millisecond).Milliseconds()),
		"max.poll.interval.ms":          int(r.cfg.MaxPollInterval.Milliseconds()),
		"enable.partition.eof":          false,
		"go.logs.channel.enable":        false,
		// librdkafka pre-fetches up to 64 MB per consumer by default; a handler that
		// writes to PostgreSQL cannot use more than a few thousand events ahead.
		"queued.max.messages.kbytes": 8192,
	}
	if r.cfg.Observer != nil {
		cm["statistics.interval.ms"] = int(DefaultStatsInterval.Milliseconds())
	}
	for k, v := range r.cfg.Extra {
		cm[k] = v
	}
	c, err := ckafka.NewConsumer(&cm)
	if err != nil {
		return fmt.Errorf("kafka: create consumer for group %s: %w", r.cfg.GroupID, err)
	}
	if err := c.SubscribeTopics(r.cfg.Topics, r.rebalance); err != nil {
		_ = c.Close()
		return fmt.Errorf("kafka: subscribe %v: %w", r.cfg.Topics, err)
	}
	r.log.Info("consumer started", "topics", r.cfg.Topics)

	runErr := r.loop(ctx, c)

	if _, err := c.Commit(); err != nil && !isNoOffset(err) {
		r.log.Warn("final commit failed", "err", err)
	}
	if err := c.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("kafka: close consumer: %w", err))
	}
	r.log.Info("consumer stopped")
	return runErr
}

func (r *Runner) loop(ctx context.Context, c *ckafka.Consumer) error {
	batch := make([]*ckafka.Message, 0, r.cfg.BatchSize)
	for ctx.Err() == nil {
		m, err := r.event(c.Poll(100))
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		// Take what has already been fetched, without waiting for more.
		batch = append(batch[:0], m)
		for len(batch) < r.cfg.BatchSize {
			ev := c.Poll(0)
			if ev == nil {
				break
			}
			m, err := r.event(ev)
			if err != nil {
				return err // nothing of the batch is stored: it is delivered again
			}
			if m != nil {
				batch = append(batch, m)
			}
		}
		if !r.processBatch(ctx, c, batch) {
			return nil // shutting down mid-retry: the unfinished messages stay unstored
		}
	}
	return nil
}

// event deals with one polled event and returns it if it is a message to handle.
func (r *Runner) event(ev ckafka.Event) (*ckafka.Message, error) {
	switch e := ev.(type) {
	case *ckafka.Message:
		if e.TopicPartition.Error != nil {
			r.log.Warn("consumer message error", "err", e.TopicPartition.Error)
			return nil, nil //nolint:nilerr // logged; librdkafka goes on fetching the partition
		}
		return e, nil
	case ckafka.Error:
		if e.IsFatal() {
			return nil, fmt.Errorf("kafka: fatal consumer error: %w", e)
		}
		r.log.Warn("consumer error", "err", e, "code", e.Code().String())
	case *ckafka.Stats:
		if r.cfg.Observer == nil {
			return nil, nil
		}
		lags, err := statsLags(e.String())
		if err != nil {
			r.log.Warn("unreadable consumer statistics", "err", err)
			return nil, nil
		}
		r.cfg.Observer.Lags(r.cfg.GroupID, lags)
	}
	return nil, nil
}

// processBatch handles ms, as one Batch call when there are several, else (or when that
// call fails) one message at a time, and stores the offset of every message done. It
// returns false when ctx ended before every message was done. The batch and its
// fallback share one handler context: after shutdown begins they have ShutdownTimeout
// in all, not each.
func (r *Runner) processBatch(ctx context.Context, c *ckafka.Consumer, ms []*ckafka.Message) bool {
	hctx, done := r.handlerContext(ctx)
	defer done()
	msgs := make([]Message, len(ms))
	for i, e := range ms {
		msgs[i] = fromCkafka(e)
	}
	if len(ms) > 1 {
		start := time.Now()
		err := r.callBatch(hctx, msgs)
		if err == nil {
			if r.cfg.Observer != nil {
				per := time.Since(start) / time.Duration(len(ms))
				for _, m := range msgs {
					r.cfg.Observer.Handled(r.cfg.GroupID, m.Topic, per, nil)
				}
			}
			r.store(c, ms...)
			return true
		}
		r.log.Info("batch failed, handling its messages one at a time", "messages", len(ms), "err", err)
	}
	for i, m := range msgs {
		if !r.process(ctx, hctx, m) {
			return false
		}
		r.store(c, ms[i])
	}
	return true
}

// store stores the offsets of finished messages for the next commit.
func (r *Runner) store(c *ckafka.Consumer, ms ...*ckafka.Message) {
	for _, e := range ms {
		if _, err := c.StoreMessage(e); err != nil {
			// The partition may have been revoked meanwhile; the new owner redoes it.
			r.log.Warn("store offset failed", "err", err, "topic", topicOf(e), "partition", e.TopicPartition.Partition)
		}
	}
}

// process runs the handler (in hctx, see handlerContext) until the message is done
// (handled or dead-lettered). It returns false when ctx ended before that: the message
// must not be stored.
func (r *Runner) process(ctx, hctx context.Context, m Message) bool {
	backoff := r.cfg.RetryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := r.call(hctx, m)
		if r.cfg.Observer != nil {
			r.cfg.Observer.Handled(r.cfg.GroupID, m.Topic, time.Since(start), err)
		}
		if err == nil {
			return true
		}
		log := r.log.With("topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "event_id", m.Header("ce_id"), "attempt", attempt)
		if IsPermanent(err) {
			dlqErr := r.deadLetter(ctx, m, err)
			if dlqErr == nil {
				log.Error("message sent to dead-letter topic", "err", err, "dlq", DLQTopic(m.Topic, r.cfg.GroupID))
				if r.cfg.Observer != nil {
					r.cfg.Observer.DeadLettered(r.cfg.GroupID, m.Topic)
				}
				return true
			}
			err = dlqErr
		}
		log.Warn("handler failed, will retry", "err", err, "backoff", backoff)
		if r.cfg.Observer != nil {
			r.cfg.Observer.Retrying(r.cfg.GroupID, m.Topic)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, r.cfg.RetryMax)
	}
}

// call runs the handler in hctx, which survives shutdown for ShutdownTimeout so that
// the in-flight message finishes; a panic makes the message permanent (poison).
func (r *Runner) call(hctx context.Context, m Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("handler panic: %v\n%s", p, debug.Stack()))
		}
	}()
	return r.handler(hctx, m)
}

// handlerContext returns the context handlers run in: it ends ShutdownTimeout after ctx
// does, so that work in flight at shutdown can finish. done releases it.
func (r *Runner) handlerContext(ctx context.Context) (hctx context.Context, done func()) {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(r.cfg.ShutdownTimeout, cancel)
		context.AfterFunc(hctx, func() { t.Stop() })
	})
	return hctx, func() { stop(); cancel() }
}

// callBatch runs the handler over ms inside one Batch call in hctx, with call's panic
// safety.
func (r *Runner) callBatch(hctx context.Context, ms []Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic in batch: %v", p)
		}
	}()
	return r.cfg.Batch(hctx, func(ctx context.Context) error {
		for _, m := range ms {
			if err := r.handler(ctx, m); err != nil {
				return fmt.Errorf("%s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
			}
		}
		return nil
	})
}

func (r *Runner) deadLetter(ctx context.Context, m Message, cause error) error {
	reason := cause.Error()
	if len(reason) > 4096 { // a panic's stack can be long; headers should stay small
		reason = reason[:4096]
	}
	headers := append(append([]Header(nil), m.Headers...),
		Header{HeaderDLQError, []byte(reason)},
		Header{HeaderDLQTopic, []byte(m.Topic)},
		Header{HeaderDLQPartition, []byte(strconv.Itoa(int(m.Partition)))},
		Header{HeaderDLQOffset, []byte(strconv.FormatInt(m.Offset, 10))},
		Header{HeaderDLQGroup, []byte(r.cfg.GroupID)},
		Header{HeaderDLQTime, []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return r.dlq.Publish(pctx, Message{
		Topic:   DLQTopic(m.Topic, r.cfg.GroupID),
		Key:     m.Key,
		Value:   m.Value,
		Headers: headers,
	})
}

// rebalance commits the stored offsets of partitions being revoked, so that the next
// owner starts right after the last finished message. Assignment itself is left to the
// client library (incremental for cooperative-sticky).
func (r *Runner) rebalance(c *ckafka.Consumer, ev ckafka.Event) error {
	switch e := ev.(type) {
	case ckafka.AssignedPartitions:
		r.assigned.Add(int64(len(e.Partitions)))
		r.log.Info("partitions assigned", "partitions", describe(e.Partitions))
	case ckafka.RevokedPartitions:
		r.assigned.Add(-int64(len(e.Partitions)))
		if c.AssignmentLost() {
			r.log.Warn("partitions lost (session expired); uncommitted work will be redone by their new owner", "partitions", describe(e.Partitions))
			return nil
		}
		if _, err := c.Commit(); err != nil && !isNoOffset(err) {
			r.log.Warn("commit on revoke failed", "err", err)
		}
		r.log.Info("partitions revoked", "partitions", describe(e.Partitions))
	}
	return nil
}

func isNoOffset(err error) bool {
	var kerr ckafka.Error
	return errors.As(err, &kerr) && kerr.Code() == ckafka.ErrNoOffset
}

func describe(tps []ckafka.TopicPartition) []string {
	out := make([]string, len(tps))
	for i, tp := range tps {
		t := ""
		if tp.Topic != nil {
			t = *tp.Topic
		}
		out[i] = t + "/" + strconv.Itoa(int(tp.Partition))
	}
	return out
}
