// Package e2elat measures the time from the cart API's answer to the inventory's
// reservation commit.
//
// Method: every accepted AddItem is recorded with the cart id, the cart version and the
// product the API answered, and the time its response arrived. The inventory announces
// the outcome of each ItemAdded (StockReserved or ReservationRejected) in the transaction
// that applies it, with occurred_at set in that transaction. Per cart and product, the
// k-th outcome in inventory order (aggregate_version) belongs to the k-th add in cart
// order (cart version), because one cart's events stay on one partition and the
// inventory handles each ItemAdded exactly once with exactly one of the two events. The
// latency is occurred_at - response arrival; both clocks are this machine's.
package e2elat

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eventshop/eventshop/bench/cartload"
	"github.com/eventshop/eventshop/bench/load"
	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
)

// Outcome is the inventory's answer to one ItemAdded.
type Outcome struct {
	CartID     string
	Version    int64 // the inventory's aggregate_version for the cart
	ProductID  string
	OccurredAt time.Time
}

// Collector reads outcomes from the inventory events topic.
type Collector struct {
	mu  sync.Mutex
	out []Outcome
}

// Handler returns the kafka handler that collects outcomes; other events are ignored.
func (c *Collector) Handler() kafka.Handler {
	return func(_ context.Context, m kafka.Message) error {
		var e inventorypb.InventoryEvent
		if err := envelope.Decode(m, &e); err != nil {
			return nil //nolint:nilerr // not ours to judge: only outcomes matter here
		}
		o := Outcome{CartID: e.GetAggregateId(), Version: e.GetAggregateVersion(), OccurredAt: e.GetOccurredAt().AsTime()}
		switch p := e.GetPayload().(type) {
		case *inventorypb.InventoryEvent_StockReserved:
			o.ProductID = p.StockReserved.GetProductId()
		case *inventorypb.InventoryEvent_ReservationRejected:
			o.ProductID = p.ReservationRejected.GetProductId()
		default:
			return nil
		}
		c.mu.Lock()
		c.out = append(c.out, o)
		c.mu.Unlock()
		return nil
	}
}

// Outcomes returns what was collected.
func (c *Collector) Outcomes() []Outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Outcome(nil), c.out...)
}

// Match pairs accepted adds with outcomes (see the package comment) and returns the
// latencies of the pairs and how many adds found no outcome.
func Match(accepted []cartload.Accepted, outcomes []Outcome) (lat []time.Duration, unmatched int) {
	type key struct{ cart, product string }
	adds := map[key][]cartload.Accepted{}
	for _, a := range accepted {
		k := key{a.CartID, a.ProductID}
		adds[k] = append(adds[k], a)
	}
	outs := map[key][]Outcome{}
	for _, o := range outcomes {
		k := key{o.CartID, o.ProductID}
		if _, ours := adds[k]; ours {
			outs[k] = append(outs[k], o)
		}
	}
	for k, as := range adds {
		slices.SortFunc(as, func(a, b cartload.Accepted) int { return cmp.Compare(a.Version, b.Version) })
		os := outs[k]
		slices.SortFunc(os, func(a, b Outcome) int { return cmp.Compare(a.Version, b.Version) })
		for i, a := range as {
			if i >= len(os) {
				unmatched++
				continue
			}
			lat = append(lat, os[i].OccurredAt.Sub(a.Responded))
		}
	}
	slices.Sort(lat)
	return lat, unmatched
}

// Result is the end-to-end latency of one run, in milliseconds.
type Result struct {
	Matched, Unmatched int
	P50, P99, Max      float64
}

// Wait collects until every accepted add has its outcome or timeout passes, then
// returns the latencies.
func Wait(ctx context.Context, c *Collector, accepted []cartload.Accepted, timeout time.Duration) (Result, error) {
	deadline := time.Now().Add(timeout)
	for {
		lat, unmatched := Match(accepted, c.Outcomes())
		if unmatched == 0 || time.Now().After(deadline) {
			r := Result{Matched: len(lat), Unmatched: unmatched,
				P50: load.Percentile(lat, 50), P99: load.Percentile(lat, 99)}
			if len(lat) > 0 {
				r.Max = float64(lat[len(lat)-1]) / float64(time.Millisecond)
			}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("waiting for inventory outcomes: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
