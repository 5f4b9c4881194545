package e2elat_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/bench/cartload"
	"github.com/eventshop/eventshop/bench/e2elat"
)

func TestMatchPairsKthAddWithKthOutcomePerCartAndProduct(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Cart c1 added mug twice; the answers arrived out of version order.
	accepted := []cartload.Accepted{
		{CartID: "c1", Version: 2, ProductID: "mug", Responded: at(30)},
		{CartID: "c1", Version: 1, ProductID: "mug", Responded: at(20)},
		{CartID: "c1", Version: 3, ProductID: "pen", Responded: at(40)},
		{CartID: "c2", Version: 1, ProductID: "mug", Responded: at(10)}, // no outcome yet
	}
	outcomes := []e2elat.Outcome{
		{CartID: "c1", Version: 7, ProductID: "mug", OccurredAt: at(90)}, // second mug add
		{CartID: "c1", Version: 6, ProductID: "mug", OccurredAt: at(25)}, // first mug add
		{CartID: "c1", Version: 8, ProductID: "pen", OccurredAt: at(45)},
		{CartID: "other", Version: 1, ProductID: "mug", OccurredAt: at(1)}, // not ours
	}
	lat, unmatched := e2elat.Match(accepted, outcomes)
	want := []time.Duration{5 * time.Millisecond, 5 * time.Millisecond, 60 * time.Millisecond}
	if diff := cmp.Diff(want, lat); diff != "" {
		t.Errorf("latencies (-want +got):\n%s", diff)
	}
	if unmatched != 1 {
		t.Errorf("unmatched = %d, want 1", unmatched)
	}
}
