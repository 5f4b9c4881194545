package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/postgres"
)

// Outcome is what became of one consumed event.
type Outcome string

// Outcomes of Handler.
const (
	Applied   Outcome = "applied"
	Duplicate Outcome = "duplicate" // event id already applied
	Stale     Outcome = "stale"     // aggregate version not newer than one already applied
	Unknown   Outcome = "unknown"   // payload kind this build does not know
)

// Effect is a consumer's effect for one decoded envelope, run inside the transaction
// that also records the event id and the aggregate version.
type Effect[E envelope.Envelope] func(ctx context.Context, tx *sqlx.Tx, env E, m kafka.Message) error

// HandlerConfig configures Handler.
type HandlerConfig struct {
	// Consumer names the consumer (its group id) in processed_events.
	Consumer string
	// OnOutcome, if set, is called after each event (for metrics).
	OnOutcome func(topic string, o Outcome)
	Log       *slog.Logger
}

// Handler is the consumer preamble every eventshop service uses: decode the envelope
// (undecodable or invalid -> permanent, so the runner dead-letters it), skip unknown
// payload kinds, and in one transaction record the event id (a duplicate is skipped),
// check the aggregate version per topic (an older event is skipped), then apply the
// effect. newEnv returns an empty envelope of the topic's type.
func Handler[E envelope.Envelope](db *sqlx.DB, cfg HandlerConfig, newEnv func(topic string) (E, bool), apply Effect[E]) kafka.Handler {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	report := func(ctx context.Context, topic string, o Outcome) {
		if b := batchOf(ctx, db); b != nil {
			// Counted once the batch commits: a batch that fails is redone one event
			// at a time (or retried whole after a deadlock), and reports then.
			b.after = append(b.after, func() { reportNow(ctx, cfg, topic, o) })
			return
		}
		reportNow(ctx, cfg, topic, o)
	}
	return func(ctx context.Context, m kafka.Message) error {
		env, ok := newEnv(m.Topic)
		if !ok {
			return kafka.Permanent(fmt.Errorf("no envelope type for topic %s", m.Topic))
		}
		if err := envelope.Decode(m, env); err != nil {
			if errors.Is(err, envelope.ErrUnknownPayload) {
				log.Warn("skipping unknown payload kind", "topic", m.Topic, "event_id", env.GetEventId(), "ce_type", m.Header(envelope.HeaderType))
				report(ctx, m.Topic, Unknown)
				return nil
			}
			return err
		}
		if !trace.SpanContextFromContext(ctx).IsValid() {
			ctx = envelope.Context(ctx, m) // no consumer span (tracing.Consume) yet: join the producer's trace
		}
		outcome := Applied
		err := inTx(ctx, db, func(tx *sqlx.Tx) error {
			outcome = Applied
			first, newer, err := recordAndAdvance(ctx, tx, cfg.Consumer, m.Topic, env.GetEventId(), env.GetAggregateId(), env.GetAggregateVersion())
			if err != nil {
				return err
			}
			if !first {
				outcome = Duplicate
				return nil
			}
			if !newer {
				outcome = Stale
				return nil // the event id stays recorded: it will never apply
			}
			return apply(ctx, tx, env, m)
		})
		if postgres.IsDataException(err) {
			// The event's content cannot be stored (e.g. a cart id that is no UUID): a retry
			// would fail the same way forever and stall the partition.
			return kafka.Permanent(fmt.Errorf("event %s: %w", env.GetEventId(), err))
		}
		if err != nil {
			return err
		}
		if outcome != Applied {
			log.Info("event skipped", "outcome", string(outcome), "topic", m.Topic, "event_id", env.GetEventId(),
				"aggregate_id", env.GetAggregateId(), "version", env.GetAggregateVersion())
		}
		report(ctx, m.Topic, outcome)
		return nil
	}
}

// reportNow hands outcome o of an event of topic to cfg.OnOutcome and to WithOutcomes.
func reportNow(ctx context.Context, cfg HandlerConfig, topic string, o Outcome) {
	if cfg.OnOutcome != nil {
		cfg.OnOutcome(topic, o)
	}
	if fn, ok := ctx.Value(outcomeKey{}).(func(string, Outcome)); ok {
		fn(topic, o)
	}
}

// Batch returns a kafka.ConsumerConfig.Batch for Handlers on db: the handler calls of a
// batch share one transaction, so that n events cost one commit instead of n. Each event
// is still recorded, version-checked and applied exactly as alone; if any of them fails,
// the transaction rolls back and the runner handles them one at a time.
func Batch(db *sqlx.DB) func(ctx context.Context, each func(ctx context.Context) error) error {
	return func(ctx context.Context, each func(ctx context.Context) error) error {
		var after []func()
		err := postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
			b := &batch{db: db, tx: tx}
			if err := each(context.WithValue(ctx, batchKey{}, b)); err != nil {
				return err
			}
			after = b.after
			return nil
		})
		if err != nil {
			return err
		}
		for _, fn := range after {
			fn()
		}
		return nil
	}
}

// batch is the transaction a Batch call shares with the Handlers it runs.
type batch struct {
	db    *sqlx.DB
	tx    *sqlx.Tx
	after []func() // run after the commit
}

type batchKey struct{}

// batchOf returns the batch ctx runs in, if it is one on db.
func batchOf(ctx context.Context, db *sqlx.DB) *batch {
	if b, ok := ctx.Value(batchKey{}).(*batch); ok && b.db == db {
		return b
	}
	return nil
}

// inTx runs fn in the batch's transaction, or else in a transaction of its own.
func inTx(ctx context.Context, db *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	if b := batchOf(ctx, db); b != nil {
		return fn(b.tx)
	}
	return postgres.InTx(ctx, db, postgres.TxOptions{}, fn)
}

type outcomeKey struct{}

// WithOutcomes returns ctx carrying fn, which Handler calls after each event besides
// HandlerConfig.OnOutcome. The process host uses it to count outcomes for every
// consumer without each service wiring OnOutcome.
func WithOutcomes(ctx context.Context, fn func(topic string, o Outcome)) context.Context {
	return context.WithValue(ctx, outcomeKey{}, fn)
}

// recordAndAdvance records eventID as applied by consumer (first: it was not before) and,
// for a first event, version as the newest applied of the aggregate (newer: it is newer
// than what was recorded). One statement, one round trip, in tx.
func recordAndAdvance(ctx context.Context, tx *sqlx.Tx, consumer, topic, eventID, aggregateID string, version int64) (first, newer bool, err error) {
	if consumer == "" || eventID == "" {
		return false, false, errors.New("idempotency: consumer and event id are required")
	}
	row := tx.QueryRowxContext(ctx, `
		WITH recorded AS (
			INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1
		), advanced AS (
			INSERT INTO aggregate_versions (consumer, topic, aggregate_id, version)
			SELECT $1, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM recorded)
			ON CONFLICT (consumer, topic, aggregate_id) DO UPDATE SET version = EXCLUDED.version
			WHERE aggregate_versions.version < EXCLUDED.version
			RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM recorded), EXISTS (SELECT 1 FROM advanced)`,
		consumer, eventID, topic, aggregateID, version)
	if err := row.Scan(&first, &newer); err != nil {
		return false, false, fmt.Errorf("idempotency: record %s (aggregate %s v%d): %w", eventID, aggregateID, version, err)
	}
	return first, newer, nil
}
