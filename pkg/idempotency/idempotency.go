// Package idempotency records which events a consumer has applied, inside the same
// transaction as the effect, so that a redelivered event changes nothing.
package idempotency

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/postgres"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations creates the processed_events table; add it to the service's postgres.Migrate.
var Migrations = postgres.Migrations("idempotency", migrationFiles, "migrations")

// Record notes that consumer applies eventID within tx. It returns false when the event
// was already applied (the caller must then skip the effect). A concurrent transaction
// recording the same event blocks on the primary key until the first one ends.
func Record(ctx context.Context, tx *sqlx.Tx, consumer, eventID string) (first bool, err error) {
	if consumer == "" || eventID == "" {
		return false, errors.New("idempotency: consumer and event id are required")
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
		consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("idempotency: record %s: %w", eventID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("idempotency: record %s: %w", eventID, err)
	}
	return n == 1, nil
}

// Apply runs fn in a transaction unless consumer already applied eventID, recording the
// event in that same transaction. It reports whether fn ran and committed.
func Apply(ctx context.Context, db *sqlx.DB, consumer, eventID string, fn func(tx *sqlx.Tx) error) (applied bool, err error) {
	err = postgres.InTx(ctx, db, postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		first, err := Record(ctx, tx, consumer, eventID)
		if err != nil || !first {
			applied = false
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return applied, nil
}
