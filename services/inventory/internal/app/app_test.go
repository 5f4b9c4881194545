package app_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/inventory/internal/app"
)

// TestEventStreamGivesExactStateAndReplayChangesNothing publishes a stream of cart
// events and checks stock, reservations, inventory events and product snapshots
// exactly; then publishes the very same messages again (same event ids) and checks that
// nothing changed and nothing more was published.
func TestEventStreamGivesExactStateAndReplayChangesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.start(t)
	a, b := uuid.NewString(), uuid.NewString()
	stream := []*cartpb.CartEvent{
		added(a, 1, "mug", 2, 2),             // reserve 2
		added(b, 1, "limited-print", 4, 4),   // reserve 4 of 5
		added(a, 2, "mug", 3, 5),             // reserve 3 more
		added(a, 3, "cap", 1, 1),             // reserve 1
		coupon(b, 2),                         // no stock moves
		changed(a, 4, "mug", 5, 3),           // release 2
		changed(b, 3, "limited-print", 4, 6), // 2 more wanted, 1 left: rejected, the 4 stay held
		removed(a, 5, "cap", 1),              // release 1
	}
	msgs := h.publish(t, stream...)
	h.waitProcessed(t, ids(stream...)...)

	check := func(when string) {
		t.Helper()
		want := map[string]Stock{"mug": {197, 3, 0}, "cap": {120, 0, 0}, "limited-print": {1, 4, 0}, "pen": {1000, 0, 0}}
		for p, w := range want {
			if got := h.stock(t, p); got != w {
				t.Errorf("%s: stock of %s = %+v, want %+v", when, p, got, w)
			}
		}
		if diff := cmp.Diff(map[string]int32{a + "/mug": 3, b + "/limited-print": 4}, h.holds(t)); diff != "" {
			t.Errorf("%s: reservations (-want +got):\n%s", when, diff)
		}
		wantA := []string{
			"v1 reserved mug 2, available after 198",
			"v2 reserved mug 3, available after 195",
			"v3 reserved cap 1, available after 119",
			"v4 released mug 2 RELEASE_REASON_QUANTITY_DECREASED",
			"v5 released cap 1 RELEASE_REASON_ITEM_REMOVED",
		}
		if diff := cmp.Diff(wantA, h.cartOutcomes(t, a)); diff != "" {
			t.Errorf("%s: inventory events of cart a (-want +got):\n%s", when, diff)
		}
		wantB := []string{
			"v1 reserved limited-print 4, available after 1",
			`v2 rejected limited-print requested 2 available 1 checkout ""`,
		}
		if diff := cmp.Diff(wantB, h.cartOutcomes(t, b)); diff != "" {
			t.Errorf("%s: inventory events of cart b (-want +got):\n%s", when, diff)
		}
		// Start-up announces version 1; every change of available stock adds a version.
		wantMug := []string{"v1 available 200 price 1250", "v2 available 198 price 1250", "v3 available 195 price 1250", "v4 available 197 price 1250"}
		if diff := cmp.Diff(wantMug, h.snapshots(t, "mug")); diff != "" {
			t.Errorf("%s: snapshots of mug (-want +got):\n%s", when, diff)
		}
		if diff := cmp.Diff([]string{"v1 available 1000 price 250"}, h.snapshots(t, "pen")); diff != "" {
			t.Errorf("%s: snapshots of an untouched product (-want +got):\n%s", when, diff)
		}
	}
	check("after the stream")
	outboxRows := h.count(t, `SELECT count(*) FROM outbox`)

	// The same messages again, then one new event per cart on the same partitions: once
	// those are processed, the duplicates before them were too.
	h.publishRaw(t, msgs...)
	markers := []*cartpb.CartEvent{coupon(a, 6), coupon(b, 4)}
	h.publish(t, markers...)
	h.waitProcessed(t, ids(markers...)...)
	check("after the replay")
	if n := h.count(t, `SELECT count(*) FROM outbox`); n != outboxRows {
		t.Fatalf("the replay enqueued %d more outbox rows", n-outboxRows)
	}
	if n := h.count(t, `SELECT count(*) FROM processed_events`); n != len(stream)+len(markers) {
		t.Fatalf("processed_events has %d rows, want %d", n, len(stream)+len(markers))
	}
}

// TestTwoInstancesRace200CartsFor50Units runs two instances in one consumer group and
// lets 200 carts (spread over the 6 partitions) each add one unit of a product that has
// 50: exactly 50 are reserved and 150 rejected, and the product's total is unchanged.
func TestTwoInstancesRace200CartsFor50Units(t *testing.T) {
	h := newHarness(t, nil)
	one, two := h.start(t), h.start(t)
	h.addProduct(t, "race", 50)
	testkit.Eventually(t, 60*time.Second, "both instances own partitions of the cart topic", func() bool {
		return one.logs.count("partitions assigned") > 0 && two.logs.count("partitions assigned") > 0
	})

	var evs []*cartpb.CartEvent
	for range 200 {
		evs = append(evs, added(uuid.NewString(), 1, "race", 1, 1))
	}
	h.publish(t, evs...)
	h.waitProcessed(t, ids(evs...)...)

	if got, want := h.stock(t, "race"), (Stock{Available: 0, Reserved: 50, Sold: 0}); got != want {
		t.Fatalf("stock = %+v, want %+v", got, want)
	}
	if n := h.count(t, `SELECT count(*) FROM reservations WHERE product_id = 'race' AND quantity = 1`); n != 50 {
		t.Fatalf("%d carts hold one unit, want 50", n)
	}
	if n := h.count(t, `SELECT count(*) FROM products WHERE available < 0 OR reserved < 0 OR sold < 0`); n != 0 {
		t.Fatalf("%d products with negative stock", n)
	}
	var reserved, rejected int
	var after []int32
	for _, e := range evs {
		outcomes := h.published(t, h.inventory, h.cfg.InventoryTopic, e.GetAggregateId())
		if len(outcomes) != 1 {
			t.Fatalf("cart %s got %d inventory events, want 1", e.GetAggregateId(), len(outcomes))
		}
		var ie inventorypb.InventoryEvent
		if err := envelope.Decode(outcomes[0], &ie); err != nil {
			t.Fatal(err)
		}
		switch {
		case ie.GetStockReserved() != nil:
			reserved++
			after = append(after, ie.GetStockReserved().GetAvailableAfter())
		case ie.GetReservationRejected() != nil:
			rejected++
			if r := ie.GetReservationRejected(); r.GetRequested() != 1 || r.GetAvailable() != 0 || r.GetCheckoutId() != "" {
				t.Fatalf("rejection %v, want requested 1, available 0, no checkout", r)
			}
		}
	}
	if reserved != 50 || rejected != 150 {
		t.Fatalf("%d StockReserved and %d ReservationRejected, want 50 and 150", reserved, rejected)
	}
	// Reservations were serialized: each left a different number available, 49 down to 0.
	slices.Sort(after)
	for i, a := range after {
		if a != int32(i) {
			t.Fatalf("available_after values %v, want 0..49 once each", after)
		}
	}
}

// TestCheckout covers both outcomes of a checkout: lines that can be held are sold and
// StockCommitted published; a line beyond the stock rejects the checkout (with its id)
// and releases everything the cart held.
func TestCheckout(t *testing.T) {
	h := newHarness(t, nil)
	h.start(t)

	t.Run("commits to sold and publishes StockCommitted", func(t *testing.T) {
		c, checkout := uuid.NewString(), uuid.NewString()
		evs := []*cartpb.CartEvent{
			added(c, 1, "hoodie", 2, 2),
			added(c, 2, "socks", 1, 1),
			added(c, 3, "keychain", 1, 1),
			removed(c, 4, "keychain", 1),
			added(c, 5, "keychain", 2, 2),
			// The snapshot wants one more hoodie than held and no keychain: the shortfall is
			// reserved, the keychains released, then everything sold.
			checkedOut(c, 6, checkout, line{"hoodie", 3}, line{"socks", 1}),
		}
		h.publish(t, evs...)
		h.waitProcessed(t, ids(evs...)...)
		want := map[string]Stock{"hoodie": {77, 0, 3}, "socks": {219, 0, 1}, "keychain": {400, 0, 0}}
		for p, w := range want {
			if got := h.stock(t, p); got != w {
				t.Errorf("stock of %s = %+v, want %+v", p, got, w)
			}
		}
		if n := h.count(t, `SELECT count(*) FROM reservations WHERE cart_id = $1`, c); n != 0 {
			t.Errorf("cart holds %d reservations after checkout, want 0", n)
		}
		wantEvents := []string{
			"v1 reserved hoodie 2, available after 78",
			"v2 reserved socks 1, available after 219",
			"v3 reserved keychain 1, available after 399",
			"v4 released keychain 1 RELEASE_REASON_ITEM_REMOVED",
			"v5 reserved keychain 2, available after 398",
			fmt.Sprintf("v6 committed checkout %q hoodie×3 socks×1", checkout),
		}
		if diff := cmp.Diff(wantEvents, h.cartOutcomes(t, c)); diff != "" {
			t.Errorf("inventory events (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{
			"v1 available 400 price 600", "v2 available 399 price 600", "v3 available 400 price 600",
			"v4 available 398 price 600", "v5 available 400 price 600",
		}, h.snapshots(t, "keychain")); diff != "" {
			t.Errorf("keychain snapshots (-want +got):\n%s", diff)
		}
		if got := h.snapshots(t, "socks"); len(got) != 2 {
			t.Errorf("socks snapshots %v: selling held units does not change available, so no new one", got)
		}
		// A late change to the checked-out cart moves nothing.
		late := added(c, 7, "hoodie", 1, 4)
		h.publish(t, late)
		h.waitProcessed(t, late.GetEventId())
		if got := h.stock(t, "hoodie"); got != want["hoodie"] {
			t.Errorf("a change after checkout moved stock: %+v", got)
		}
	})

	t.Run("over-stock checkout is rejected with its checkout id", func(t *testing.T) {
		c, checkout := uuid.NewString(), uuid.NewString()
		evs := []*cartpb.CartEvent{
			added(c, 1, "limited-print", 2, 2),
			added(c, 2, "charger", 1, 1),
			checkedOut(c, 3, checkout, line{"limited-print", 6}, line{"charger", 1}, line{"unicorn", 1}),
		}
		h.publish(t, evs...)
		h.waitProcessed(t, ids(evs...)...)
		want := map[string]Stock{"limited-print": {5, 0, 0}, "charger": {60, 0, 0}}
		for p, w := range want {
			if got := h.stock(t, p); got != w {
				t.Errorf("stock of %s = %+v, want %+v", p, got, w)
			}
		}
		if n := h.count(t, `SELECT count(*) FROM reservations WHERE cart_id = $1`, c); n != 0 {
			t.Errorf("cart holds %d reservations after a rejected checkout, want 0", n)
		}
		wantEvents := []string{
			"v1 reserved limited-print 2, available after 3",
			"v2 reserved charger 1, available after 59",
			fmt.Sprintf("v3 rejected limited-print requested 4 available 3 checkout %q", checkout),
			fmt.Sprintf("v4 rejected unicorn requested 1 available 0 checkout %q", checkout),
		}
		if diff := cmp.Diff(wantEvents, h.cartOutcomes(t, c)); diff != "" {
			t.Errorf("inventory events (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"v1 available 5 price 12000", "v2 available 3 price 12000", "v3 available 5 price 12000"},
			h.snapshots(t, "limited-print")); diff != "" {
			t.Errorf("limited-print snapshots (-want +got):\n%s", diff)
		}
	})
}

// TestPoisonMessagesGoToDLQWithoutBlockingPartition publishes, on one cart's partition,
// undecodable bytes and valid envelopes with invalid content, then a good event: the
// three bad ones land in the dead-letter topic with the error, the good one is applied.
func TestPoisonMessagesGoToDLQWithoutBlockingPartition(t *testing.T) {
	h := newHarness(t, nil)
	h.start(t)
	c := uuid.NewString()
	dlq := kafka.DLQTopic(h.cfg.CartTopic, h.cfg.ConsumerGroup)
	dead := readTopic(t, h.cfg.KafkaBrokers, dlq, h.producer)

	h.publishRaw(t, kafka.Message{Topic: h.cfg.CartTopic, Key: []byte(c), Value: []byte{0xff, 0x01, 0x02}})
	bad := []*cartpb.CartEvent{added(c, 1, "mug", -1, -1), added(c, 2, "", 1, 1), checkedOut(c, 3, uuid.NewString())}
	h.publish(t, bad...)
	good := added(c, 4, "mug", 2, 2)
	h.publish(t, good)
	h.waitProcessed(t, good.GetEventId())

	if got := h.stock(t, "mug"); got != (Stock{Available: 198, Reserved: 2}) {
		t.Fatalf("stock of mug = %+v, want 2 reserved by the good event only", got)
	}
	testkit.Eventually(t, 60*time.Second, "4 messages in the dead-letter topic", func() bool { return len(dead.all()) >= 4 })
	msgs := dead.all()
	if len(msgs) != 4 {
		t.Fatalf("%d dead letters, want 4", len(msgs))
	}
	wantIDs := []string{"", bad[0].GetEventId(), bad[1].GetEventId(), bad[2].GetEventId()}
	wantErr := []string{"undecodable", "line_quantity", "product_id", "lines"}
	for i, m := range msgs {
		if string(m.Key) != c || m.Header(envelope.HeaderID) != wantIDs[i] || m.Header(kafka.HeaderDLQTopic) != h.cfg.CartTopic {
			t.Errorf("dead letter %d: key %s, ce_id %q, origin %q", i, m.Key, m.Header(envelope.HeaderID), m.Header(kafka.HeaderDLQTopic))
		}
		if e := m.Header(kafka.HeaderDLQError); !strings.Contains(e, wantErr[i]) {
			t.Errorf("dead letter %d error %q should mention %q", i, e, wantErr[i])
		}
	}
	if n := h.count(t, `SELECT count(*) FROM processed_events`); n != 1 {
		t.Fatalf("processed_events holds %d events, want only the good one", n)
	}
}

// TestExpiredReservationIsReleasedAndAnnounced holds reservations for one second, with
// two instances sweeping: each expired reservation is released exactly once, with
// StockReleased (EXPIRED) and a snapshot, and the stock can be reserved again.
func TestExpiredReservationIsReleasedAndAnnounced(t *testing.T) {
	h := newHarness(t, func(c *app.Config) {
		c.ReservationHold = time.Second
		c.SweepInterval = 100 * time.Millisecond
	})
	h.start(t)
	h.start(t)
	c := uuid.NewString()
	evs := []*cartpb.CartEvent{added(c, 1, "limited-print", 3, 3)}
	pens := map[string]bool{}
	for range 30 {
		e := added(uuid.NewString(), 1, "pen", 2, 2)
		pens[e.GetAggregateId()] = true
		evs = append(evs, e)
	}
	h.publish(t, evs...)
	h.waitProcessed(t, ids(evs...)...)

	testkit.Eventually(t, 30*time.Second, "reservations released", func() bool {
		return h.count(t, `SELECT count(*) FROM reservations`) == 0
	})
	if got := h.stock(t, "limited-print"); got != (Stock{Available: 5}) {
		t.Fatalf("limited-print after expiry = %+v, want all 5 available", got)
	}
	if got := h.stock(t, "pen"); got != (Stock{Available: 1000}) {
		t.Fatalf("pen after expiry = %+v, want all 1000 available", got)
	}
	if diff := cmp.Diff([]string{"v1 reserved limited-print 3, available after 2", "v2 released limited-print 3 RELEASE_REASON_EXPIRED"},
		h.cartOutcomes(t, c)); diff != "" {
		t.Fatalf("inventory events (-want +got):\n%s", diff)
	}
	for cart := range pens {
		got := h.cartOutcomes(t, cart)
		if len(got) != 2 || got[1] != "v2 released pen 2 RELEASE_REASON_EXPIRED" {
			t.Fatalf("cart %s events %q, want one reservation and one expiry release", cart, got)
		}
	}
	if diff := cmp.Diff([]string{"v1 available 5 price 12000", "v2 available 2 price 12000", "v3 available 5 price 12000"},
		h.snapshots(t, "limited-print")); diff != "" {
		t.Fatalf("limited-print snapshots (-want +got):\n%s", diff)
	}

	// Available again: another cart gets all five.
	other := added(uuid.NewString(), 1, "limited-print", 5, 5)
	h.publish(t, other)
	h.waitProcessed(t, other.GetEventId())
	if diff := cmp.Diff([]string{"v1 reserved limited-print 5, available after 0"}, h.cartOutcomes(t, other.GetAggregateId())); diff != "" {
		t.Fatalf("reservation after expiry (-want +got):\n%s", diff)
	}
}
