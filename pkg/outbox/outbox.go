// Package outbox implements the transactional outbox: a service writes its state change
// and the event announcing it in one database transaction (Enqueue), and a Relay publishes
// pending events through the process's producer, marking them sent only after the
// broker's acknowledgement. A crash anywhere loses nothing; a re-publish is harmless
// because consumers deduplicate by event id.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"go.opentelemetry.io/otel/attribute"

	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/pkg/tracing"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the outbox table; add it to the service's postgres.Migrate.
var Migrations = postgres.Migrations("outbox", migrationFiles, "migrations")

// NotifyChannel is the LISTEN/NOTIFY channel that wakes relays after an Enqueue commits
// (a trigger on the outbox table notifies it).
const NotifyChannel = "eventshop_outbox"

// relayLockKey is the advisory lock that lets one relay at a time publish, so that rows of
// one aggregate are never published out of order or twice at once by two processes.
const relayLockKey = 0x6576656e74 // "event"

// HeaderEventID is the message header that carries the event id (CloudEvents ce_id).
const HeaderEventID = "ce_id"

type storedHeader struct {
	Key   string `json:"k"`
	Value []byte `json:"v"`
}

// Enqueue stores msgs in the outbox within the caller's transaction. Each message needs
// a topic and a ce_id header (the event id, unique). Relays are woken when tx commits.
// Rows of one aggregate are published in the order they were enqueued, provided the caller
// serializes its writes per aggregate (for example with a row lock or version check).
// The insert runs in an "outbox enqueue" span of the caller's trace.
func Enqueue(ctx context.Context, tx *sqlx.Tx, msgs ...kafka.Message) (err error) {
	ctx, span := tracing.Tracer().Start(ctx, "outbox enqueue")
	defer func() { tracing.End(span, err) }()
	span.SetAttributes(attribute.Int("outbox.messages", len(msgs)))
	if len(msgs) == 0 {
		return nil
	}
	ids, topics, headers := make([]string, len(msgs)), make([]string, len(msgs)), make([]string, len(msgs))
	keys, values := make([][]byte, len(msgs)), make([][]byte, len(msgs))
	for i, m := range msgs {
		id := m.Header(HeaderEventID)
		if id == "" || m.Topic == "" {
			return fmt.Errorf("outbox: message needs a topic and a %s header (topic %q)", HeaderEventID, m.Topic)
		}
		hs := make([]storedHeader, len(m.Headers))
		for j, h := range m.Headers {
			hs[j] = storedHeader{Key: h.Key, Value: h.Value}
		}
		hj, err := json.Marshal(hs)
		if err != nil {
			return fmt.Errorf("outbox: headers of %s: %w", id, err)
		}
		ids[i], topics[i], headers[i] = id, m.Topic, string(hj)
		keys[i], values[i] = m.Key, m.Value
		if keys[i] == nil {
			keys[i] = []byte{}
		}
		if values[i] == nil {
			values[i] = []byte{}
		}
	}
	// One statement for all rows; its trigger (migration 00002) notifies the relays.
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO outbox (event_id, topic, msg_key, payload, headers)
		SELECT event_id, topic, msg_key, payload, headers
		FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[], $5::text[]::jsonb[]) WITH ORDINALITY AS r(event_id, topic, msg_key, payload, headers, n)
		ORDER BY n`,
		pq.Array(ids), pq.Array(topics), pq.ByteaArray(keys), pq.ByteaArray(values), pq.Array(headers)); err != nil {
		return fmt.Errorf("outbox: enqueue %s: %w", strings.Join(ids, ", "), err)
	}
	return nil
}

// Publisher is what the relay needs of the producer.
type Publisher interface {
	PublishAsync(ctx context.Context, m kafka.Message, cb func(error)) error
}

var _ Publisher = (*kafka.Producer)(nil)

// RelayConfig tunes a Relay. Zero values take the defaults noted.
type RelayConfig struct {
	// ListenURL, when set, is the database URL used to LISTEN for new rows; without it the
	// relay only polls.
	ListenURL string
	// BatchSize bounds the rows published per transaction (default 500).
	BatchSize int
	// PollInterval is the fallback wake-up when no notification arrives (default 1s).
	PollInterval time.Duration
	// PublishTimeout bounds the wait for a batch's acknowledgements (default 15s).
	PublishTimeout time.Duration
	// MaxBackoff bounds the wait between failing batches (default 5s).
	MaxBackoff time.Duration
	// Retention is how long sent rows are kept before deletion (default 1h).
	Retention time.Duration
	// DrainTimeout bounds the final publishing after Run's context ends (default 10s).
	DrainTimeout time.Duration
	// Observer, if set, receives the backlog (at most every BacklogInterval) and the
	// published row counts, for metrics.
	Observer Observer
	// BacklogInterval is how often Run measures the backlog for Observer (default 5s).
	BacklogInterval time.Duration
}

// Observer receives what a Relay sees, for metrics.
type Observer interface {
	// OutboxBacklog reports the pending rows and the age of the oldest (see Backlog).
	OutboxBacklog(pending int64, oldest time.Duration)
	// OutboxPublished reports rows published and marked sent.
	OutboxPublished(n int)
}

// Relay publishes pending outbox rows. Several relays (processes) may run against one
// database: an advisory lock lets one publish at a time.
type Relay struct {
	db  *sqlx.DB
	pub Publisher
	cfg RelayConfig
	log *slog.Logger
}

// NewRelay returns a relay over db that publishes through pub.
func NewRelay(db *sqlx.DB, pub Publisher, cfg RelayConfig, log *slog.Logger) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 15 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.BacklogInterval <= 0 {
		cfg.BacklogInterval = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{db: db, pub: pub, cfg: cfg, log: log.With("component", "outbox-relay")}
}

// Run publishes until ctx ends, then keeps publishing for at most DrainTimeout so that
// rows committed before shutdown leave with this process.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	if r.cfg.ListenURL != "" {
		l := pq.NewListener(r.cfg.ListenURL, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
			if err != nil {
				r.log.Warn("outbox listener", "event", ev, "err", err)
			}
		})
		defer func() { _ = l.Close() }()
		if err := l.Listen(NotifyChannel); err != nil {
			r.log.Warn("outbox listen failed; polling only", "err", err)
		}
		go func() {
			for range l.Notify {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}

	backoff := 100 * time.Millisecond
	lastCleanup := time.Now()
	var lastBacklog time.Time
	for ctx.Err() == nil {
		if r.cfg.Observer != nil && time.Since(lastBacklog) >= r.cfg.BacklogInterval {
			lastBacklog = time.Now()
			if pending, oldest, err := Backlog(ctx, r.db); err == nil {
				r.cfg.Observer.OutboxBacklog(pending, oldest)
			} else if ctx.Err() == nil {
				r.log.Warn("outbox backlog unknown", "err", err)
			}
		}
		n, err := r.PublishBatch(ctx)
		if n > 0 && r.cfg.Observer != nil {
			r.cfg.Observer.OutboxPublished(n)
		}
		switch {
		case errors.Is(err, ErrBusy):
			// Another relay is publishing; stand by.
		case err != nil && ctx.Err() == nil:
			r.log.Warn("outbox batch failed; rows stay pending", "err", err, "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(backoff*2, r.cfg.MaxBackoff)
			continue
		case n == r.cfg.BatchSize:
			backoff = 100 * time.Millisecond
			continue // more may be waiting
		}
		backoff = 100 * time.Millisecond
		if time.Since(lastCleanup) > time.Minute {
			lastCleanup = time.Now()
			if err := r.Cleanup(ctx); err != nil {
				r.log.Warn("outbox cleanup failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-time.After(r.cfg.PollInterval):
		}
	}
	return r.drain(context.WithoutCancel(ctx))
}

func (r *Relay) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DrainTimeout)
	defer cancel()
	for {
		n, err := r.PublishBatch(ctx)
		if errors.Is(err, ErrBusy) {
			return nil // the active relay publishes what is left
		}
		if err != nil {
			return fmt.Errorf("outbox: drain: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

type row struct {
	ID      int64           `db:"id"`
	EventID string          `db:"event_id"`
	Topic   string          `db:"topic"`
	Key     []byte          `db:"msg_key"`
	Payload []byte          `db:"payload"`
	Headers json.RawMessage `db:"headers"`
}

// ErrBusy is returned by PublishBatch when another relay holds the publishing lock.
var ErrBusy = errors.New("outbox: another relay is publishing")

// PublishBatch publishes up to BatchSize pending rows in id order and marks the
// acknowledged ones sent, all in one transaction. For each aggregate (topic and key) only
// the rows before its first failure are marked, so a failed event is retried before any
// later event of the same aggregate is considered done. It returns how many rows it
// published, or ErrBusy (with 0) when another relay is active.
func (r *Relay) PublishBatch(ctx context.Context) (int, error) {
	var published int
	var batchErr error
	err := postgres.InTx(ctx, r.db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		published, batchErr = 0, nil
		var locked bool
		if err := tx.GetContext(ctx, &locked, `SELECT pg_try_advisory_xact_lock($1)`, relayLockKey); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if !locked {
			return ErrBusy
		}
		var rows []row
		if err := tx.SelectContext(ctx, &rows,
			`SELECT id, event_id, topic, msg_key, payload, headers FROM outbox
			  WHERE sent_at IS NULL ORDER BY id LIMIT $1`, r.cfg.BatchSize); err != nil {
			return fmt.Errorf("select pending: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		results, err := r.publish(ctx, rows)
		if err != nil {
			return err
		}
		sent, failed := settle(rows, results)
		if len(sent) > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET sent_at = now() WHERE id = ANY($1)`, pq.Array(sent)); err != nil {
				return fmt.Errorf("mark sent: %w", err)
			}
		}
		var firstErr error
		for id, ferr := range failed {
			if firstErr == nil {
				firstErr = ferr
			}
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, id, ferr.Error()); err != nil {
				return fmt.Errorf("mark failed: %w", err)
			}
		}
		published = len(sent)
		if firstErr != nil {
			// Commit what was acknowledged, then report the failure so Run backs off.
			batchErr = fmt.Errorf("outbox: %d row(s) not acknowledged: %w", len(failed), firstErr)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return published, batchErr
}

// publish sends every row and waits for all acknowledgements (or PublishTimeout).
func (r *Relay) publish(ctx context.Context, rows []row) ([]error, error) {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	results := make([]error, len(rows))
	var wg sync.WaitGroup
	for i, rw := range rows {
		var hs []storedHeader
		if err := json.Unmarshal(rw.Headers, &hs); err != nil {
			return nil, fmt.Errorf("headers of %s: %w", rw.EventID, err)
		}
		m := kafka.Message{Topic: rw.Topic, Key: rw.Key, Value: rw.Payload, Headers: make([]kafka.Header, len(hs))}
		for j, h := range hs {
			m.Headers[j] = kafka.Header{Key: h.Key, Value: h.Value}
		}
		wg.Add(1)
		if err := r.pub.PublishAsync(pctx, m, func(err error) { results[i] = err; wg.Done() }); err != nil {
			results[i] = err
			wg.Done()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return results, nil
	case <-pctx.Done():
		// Acknowledgements may still arrive; the rows stay pending and are published
		// again later (consumers deduplicate). Nothing is marked sent.
		return nil, fmt.Errorf("waiting for acknowledgements: %w", pctx.Err())
	}
}

// settle returns the ids to mark sent (per aggregate, the acknowledged prefix) and the
// failed rows with their errors.
func settle(rows []row, results []error) (sent []int64, failed map[int64]error) {
	failed = map[int64]error{}
	blocked := map[string]bool{}
	for i, rw := range rows {
		agg := rw.Topic + "\x00" + string(rw.Key)
		if results[i] != nil {
			failed[rw.ID] = results[i]
			blocked[agg] = true
			continue
		}
		if !blocked[agg] {
			sent = append(sent, rw.ID)
		}
	}
	return sent, failed
}

// Cleanup deletes rows sent longer than Retention ago.
func (r *Relay) Cleanup(ctx context.Context) error {
	_, err := r.db.ExecContext(ctx, `DELETE FROM outbox WHERE sent_at < now() - $1::interval`,
		fmt.Sprintf("%d milliseconds", r.cfg.Retention.Milliseconds()))
	if err != nil {
		return fmt.Errorf("outbox: cleanup: %w", err)
	}
	return nil
}

// Backlog returns the number of pending rows and the age of the oldest one.
func Backlog(ctx context.Context, db *sqlx.DB) (pending int64, oldest time.Duration, err error) {
	var res struct {
		N      int64      `db:"n"`
		Oldest *time.Time `db:"oldest"`
	}
	if err := db.GetContext(ctx, &res, `SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE sent_at IS NULL`); err != nil {
		return 0, 0, fmt.Errorf("outbox: backlog: %w", err)
	}
	if res.Oldest != nil {
		oldest = time.Since(*res.Oldest)
	}
	return res.N, oldest, nil
}
