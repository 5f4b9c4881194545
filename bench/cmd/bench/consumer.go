package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/eventshop/eventshop/bench/consumer"
	"github.com/eventshop/eventshop/bench/proc"
	"github.com/eventshop/eventshop/bench/report"
)

// consumerSection builds the inventory command and measures how fast it applies
// pre-produced cart events on a fresh database and topics of its own.
func consumerSection(ctx context.Context, o options) (report.Section, error) {
	dir, err := os.MkdirTemp("", "eventshop-bench-")
	if err != nil {
		return report.Section{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	fmt.Fprintf(os.Stderr, "consumer: building the inventory command ...\n")
	bin, err := consumer.Build(ctx, o.repoRoot, dir)
	if err != nil {
		return report.Section{}, err
	}
	fmt.Fprintf(os.Stderr, "consumer: %d ItemAdded events into a fresh inventory ...\n", o.consumerN)
	busy0, total0, cpuErr := proc.MachineCPU()
	r, err := consumer.Measure(ctx, consumer.Config{Binary: bin, PostgresURL: o.postgresURL, Brokers: o.brokers, Events: o.consumerN,
		Run: fmt.Sprintf("c%d", time.Now().UnixNano()%1_000_000_000), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		return report.Section{}, err
	}
	busyNote := "machine CPU not measured"
	if busy1, total1, err := proc.MachineCPU(); err == nil && cpuErr == nil && total1 > total0 {
		busyNote = fmt.Sprintf("the machine was %.0f%% busy during the measurement (all processes, all cores)", (busy1-busy0)/(total1-total0)*100)
	}
	sec := report.Section{
		Title:   "Consumer: cart ItemAdded events applied by the inventory service into PostgreSQL, idempotency on",
		Columns: []string{"events", "events_per_sec", "elapsed_s"},
		Rows: []report.Row{{Name: "inventory, one process", Note: "events_per_sec from the first applied event to the last; elapsed_s from the process start (includes joining the group)",
			Metrics: map[string]float64{"events": float64(r.Events), "events_per_sec": r.PerSec, "elapsed_s": r.Elapsed.Seconds()}}},
		Notes: []string{fmt.Sprintf("the %d events (carts of 10 adds each, over 5 products with ample stock, so every event reserves) are produced into a topic of this run before the inventory starts on a fresh database; "+
			"applied = rows of processed_events, written in the same transaction as the reservation, the inventory event and the outbox row", r.Events),
			"pkg/kafka.Runner hands the inventory up to KAFKA_BATCH_SIZE (default 100) already-fetched events at a time, applied in one PostgreSQL transaction (each event still recorded and version-checked); one member applies its events in order, one statement after another, so its rate is bounded by the round trips per event (about 10 for an ItemAdded) more than by commits; " + busyNote},
	}
	return sec, nil
}
