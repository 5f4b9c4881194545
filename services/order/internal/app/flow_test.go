package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
)

// checkEvents asserts that orderID's events in Kafka are exactly OrderPlaced (version 1)
// and, when decision is not nil, the decision (version 2), and that the service enqueued
// no other event about it.
func checkEvents(t *testing.T, h *harness, orderID string, placed *orderpb.OrderPlaced, decision any) {
	t.Helper()
	want := 1
	if decision != nil {
		want = 2
	}
	evs := h.orders.waitEvents(t, orderID, want)
	if len(evs) != want {
		t.Fatalf("order %s: %d events in Kafka, want %d: %v", orderID, len(evs), want, evs)
	}
	if n := h.outboxCount(t, orderID); n != want {
		t.Fatalf("order %s: %d events enqueued, want %d", orderID, n, want)
	}
	for i, e := range evs {
		if e.GetAggregateId() != orderID || e.GetAggregateVersion() != int64(i+1) {
			t.Errorf("order %s event %d: aggregate %s version %d", orderID, i, e.GetAggregateId(), e.GetAggregateVersion())
		}
	}
	if diff := cmp.Diff(placed.String(), evs[0].GetOrderPlaced().String()); diff != "" {
		t.Errorf("order %s: OrderPlaced (-want +got):\n%s", orderID, diff)
	}
	if decision == nil {
		return
	}
	var got string
	switch d := decision.(type) {
	case *orderpb.OrderConfirmed:
		got = evs[1].GetOrderConfirmed().String()
		decision = d.String()
	case *orderpb.OrderRejected:
		got = evs[1].GetOrderRejected().String()
		decision = d.String()
	}
	if diff := cmp.Diff(decision, got); diff != "" {
		t.Errorf("order %s: decision event (-want +got):\n%s", orderID, diff)
	}
}

func placedEvent(orderID string, in input, cartID string) *orderpb.OrderPlaced {
	co := in.env.(*cartpb.CartEvent).GetCheckedOut()
	p := &orderpb.OrderPlaced{OrderId: orderID, UserId: co.GetUserId(), CartId: cartID, CheckoutId: co.GetCheckoutId(), SubtotalCents: co.GetSubtotalCents()}
	for _, l := range co.GetLines() {
		p.Lines = append(p.Lines, &orderpb.OrderLine{ProductId: l.GetProductId(), Quantity: l.GetQuantity(), UnitPriceCents: l.GetUnitPriceCents(), LineTotalCents: l.GetLineTotalCents()})
	}
	return p
}

func TestEventStreamGivesExpectedOrdersAndRepublishingChangesNothing(t *testing.T) {
	h := start(t, 1) // one partition per topic: a marker published last is consumed last
	coA, coB, coC, coD := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	checkoutA := checkedOut(h, "cart-a", 2, "alice", coA, "SAVE10", cartLine("mug", 2, 1250), cartLine("shirt", 1, 2000))
	checkoutB := checkedOut(h, "cart-b", 1, "bob", coB, "", cartLine("poster", 3, 999))
	checkoutC := checkedOut(h, "cart-c", 1, "carol", coC, "BAD", cartLine("mug", 1, 1250))
	checkoutD := checkedOut(h, "cart-d", 1, "dave", coD, "", cartLine("shirt", 2, 2000))
	stream := []input{
		itemAdded(h, "cart-a", 1, "alice", "mug", 2), // not a checkout: ignored
		checkoutA,
		stockReserved(h, "cart-a", 1, "mug"), // ignored
		stockCommitted(h, "cart-a", 2, coA),
		discountCalculated(h, "cart-a", 1, "", false, 200), // running discount: ignored
		discountCalculated(h, "cart-a", 2, coA, true, 450),
		couponRedeemed(h, "cart-a", 3, coA, "SAVE10"), // ignored

		checkoutB,
		reservationRejected(h, "cart-b", 1, "", "poster", 9, 5), // while editing: ignored
		reservationRejected(h, "cart-b", 2, coB, "poster", 3, 1),
		discountCalculated(h, "cart-b", 1, coB, true, 0),

		checkoutC,
		stockCommitted(h, "cart-c", 1, coC),
		couponRejected(h, "cart-c", 1, "", "BAD", "unknown coupon"), // while editing: ignored
		couponRejected(h, "cart-c", 2, coC, "BAD", "expired"),

		checkoutD,
		stockCommitted(h, "cart-d", 1, coD), // no discount yet: stays pending
	}
	h.publish(t, stream...)

	want := map[string]storedOrder{
		coA: {UserID: "alice", CartID: "cart-a", CheckoutID: coA, Status: "confirmed", SubtotalCents: 4500, DiscountCents: 450, TotalCents: 4050, Version: 2},
		coB: {UserID: "bob", CartID: "cart-b", CheckoutID: coB, Status: "rejected", SubtotalCents: 2997, TotalCents: 2997, Reason: "out of stock: poster requested 3, available 1", Version: 2},
		coC: {UserID: "carol", CartID: "cart-c", CheckoutID: coC, Status: "rejected", SubtotalCents: 1250, TotalCents: 1250, Reason: "coupon BAD rejected: expired", Version: 2},
		coD: {UserID: "dave", CartID: "cart-d", CheckoutID: coD, Status: "pending", SubtotalCents: 4000, TotalCents: 4000, Version: 1},
	}
	h.waitProcessed(t, stream...)
	ids := map[string]string{}
	snapshot := func() map[string]storedOrder {
		got := map[string]storedOrder{}
		var n int
		if err := h.db.Get(&n, `SELECT count(*) FROM orders`); err != nil {
			t.Fatal(err)
		}
		if n != len(want) {
			t.Fatalf("%d orders, want %d", n, len(want))
		}
		for co := range want {
			o, id, ok := h.orderOf(t, co)
			if !ok {
				t.Fatalf("no order for checkout %s", co)
			}
			got[co], ids[co] = o, id
		}
		return got
	}
	if diff := cmp.Diff(want, snapshot()); diff != "" {
		t.Fatalf("orders (-want +got):\n%s", diff)
	}
	var lines []struct {
		Product  string `db:"product_id"`
		Quantity int32  `db:"quantity"`
		Price    int64  `db:"unit_price_cents"`
	}
	if err := h.db.Select(&lines, `SELECT product_id, quantity, unit_price_cents FROM order_lines WHERE order_id = $1 ORDER BY position`, ids[coA]); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lines) != "[{mug 2 1250} {shirt 1 2000}]" {
		t.Fatalf("lines of order A: %v", lines)
	}

	checkAll := func() {
		checkEvents(t, h, ids[coA], placedEvent(ids[coA], checkoutA, "cart-a"), &orderpb.OrderConfirmed{OrderId: ids[coA], SubtotalCents: 4500, DiscountCents: 450, TotalCents: 4050})
		checkEvents(t, h, ids[coB], placedEvent(ids[coB], checkoutB, "cart-b"), &orderpb.OrderRejected{OrderId: ids[coB], Reason: want[coB].Reason})
		checkEvents(t, h, ids[coC], placedEvent(ids[coC], checkoutC, "cart-c"), &orderpb.OrderRejected{OrderId: ids[coC], Reason: want[coC].Reason})
		checkEvents(t, h, ids[coD], placedEvent(ids[coD], checkoutD, "cart-d"), nil)
	}
	checkAll()

	// Publish the whole stream again, the same events with the same ids, plus A's
	// CheckedOut under a new event id (a producer that re-encoded it): nothing changes.
	h.publish(t, stream...)
	again := checkoutA.env.(*cartpb.CartEvent)
	reencoded := checkedOut(h, "cart-a", 3, "alice", coA, "SAVE10", again.GetCheckedOut().GetLines()...)
	markers := []input{itemAdded(h, "marker", 1, "m", "mug", 1), stockReserved(h, "marker", 1, "mug"), discountCalculated(h, "marker", 1, "", false, 0)}
	h.publish(t, reencoded)
	h.publish(t, markers...)
	h.waitProcessed(t, append(markers, reencoded)...) // everything before them was consumed
	var processed int
	if err := h.db.Get(&processed, `SELECT count(*) FROM processed_events WHERE consumer = $1`, h.cfg.ConsumerGroup); err != nil {
		t.Fatal(err)
	}
	if processed != len(stream)+len(markers)+1 {
		t.Fatalf("%d events recorded as processed, want %d (each once)", processed, len(stream)+len(markers)+1)
	}
	if diff := cmp.Diff(want, snapshot()); diff != "" {
		t.Fatalf("orders after re-publishing (-want +got):\n%s", diff)
	}
	checkAll()
}

func TestOutcomesBeforeOrAfterTheCheckoutGiveTheSameOrder(t *testing.T) {
	h := start(t, 3)
	type outcome struct {
		name     string
		stock    func(cartID, co string) input
		discount func(cartID, co string) input
		decisive []string // the inputs that decide the order once all arrived
		status   string
		discnt   int64
		total    int64
		reason   string
	}
	outcomes := []outcome{
		{"confirmed",
			func(cartID, co string) input { return stockCommitted(h, cartID, 1, co) },
			func(cartID, co string) input { return discountCalculated(h, cartID, 1, co, true, 700) },
			[]string{"checkout", "stock", "discount"}, "confirmed", 700, 2300, ""},
		{"rejected",
			func(cartID, co string) input { return reservationRejected(h, cartID, 1, co, "mug", 2, 0) },
			func(cartID, co string) input { return discountCalculated(h, cartID, 1, co, true, 700) },
			[]string{"checkout", "stock"}, "rejected", 0, 3000, "out of stock: mug requested 2, available 0"},
	}
	// Arrival orders: each step publishes its inputs and waits until they are processed.
	arrivals := map[string][]string{
		"outcomes before checkout": {"stock", "discount", "checkout"},
		"outcomes after checkout":  {"checkout", "stock", "discount"},
		"mixed":                    {"discount", "checkout", "stock"},
	}
	for _, oc := range outcomes {
		for arrival, steps := range arrivals {
			t.Run(oc.name+"/"+arrival, func(t *testing.T) {
				t.Parallel()
				cartID, co, user := "cart-"+testkit.RandomSuffix(4), uuid.NewString(), "u"+testkit.RandomSuffix(4)
				checkout := checkedOut(h, cartID, 1, user, co, "", cartLine("mug", 2, 1500))
				ins := map[string]input{"checkout": checkout, "stock": oc.stock(cartID, co), "discount": oc.discount(cartID, co)}
				arrived := map[string]bool{}
				for _, step := range steps {
					h.publish(t, ins[step])
					h.waitProcessed(t, ins[step]) // its effect, and any decision, is committed
					arrived[step] = true
					decided := true
					for _, d := range oc.decisive {
						decided = decided && arrived[d]
					}
					o, _, exists := h.orderOf(t, co)
					switch {
					case exists != arrived["checkout"]:
						t.Fatalf("after %s: order exists = %v", step, exists)
					case exists && decided != (o.Status != "pending"):
						t.Fatalf("after %s: order %s, decided should be %v", step, o.Status, decided)
					}
				}
				got, id := h.waitDecided(t, co)
				want := storedOrder{UserID: user, CartID: cartID, CheckoutID: co, Status: oc.status, SubtotalCents: 3000,
					DiscountCents: oc.discnt, TotalCents: oc.total, Reason: oc.reason, Version: 2}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("order (-want +got):\n%s", diff)
				}
				var decision any = &orderpb.OrderConfirmed{OrderId: id, SubtotalCents: 3000, DiscountCents: oc.discnt, TotalCents: oc.total}
				if oc.status == "rejected" {
					decision = &orderpb.OrderRejected{OrderId: id, Reason: oc.reason}
				}
				checkEvents(t, h, id, placedEvent(id, checkout, cartID), decision)
			})
		}
	}
}

func TestPoisonMessagesGoToTheDLQAndThePartitionMovesOn(t *testing.T) {
	h := start(t, 1)
	dlqs := []string{kafka.DLQTopic(h.cfg.CartTopic, h.cfg.ConsumerGroup), kafka.DLQTopic(h.cfg.InventoryTopic, h.cfg.ConsumerGroup),
		kafka.DLQTopic(h.cfg.DiscountTopic, h.cfg.ConsumerGroup)}
	specs := make([]kafka.TopicSpec, len(dlqs))
	for i, d := range dlqs {
		specs[i] = kafka.TopicSpec{Name: d, Partitions: 1}
	}
	if err := kafka.EnsureTopics(testkit.Context(t, 30*time.Second), h.cfg.KafkaBrokers, specs...); err != nil {
		t.Fatal(err)
	}
	dead := readTopic(t, h.cfg.KafkaBrokers, h.producer, dlqs...)

	co := uuid.NewString()
	badQty := checkedOut(h, "cart-p", 1, "paul", uuid.NewString(), "", cartLine("mug", 1, 1250))
	badQty.env.(*cartpb.CartEvent).GetCheckedOut().Lines[0].Quantity = -1
	noCheckout := stockCommitted(h, "cart-p", 1, "")
	negative := discountCalculated(h, "cart-p", 1, co, true, -5)
	undecodable := kafka.Message{Topic: h.cfg.CartTopic, Key: []byte("cart-p"), Value: []byte{0xff, 0xff, 0x01},
		Headers: []kafka.Header{{Key: envelope.HeaderID, Value: []byte("garbage-1")}}}
	h.publishRaw(t, undecodable)
	h.publish(t, badQty, noCheckout, negative)
	// Valid events behind the poison ones, on the same partitions.
	good := []input{
		checkedOut(h, "cart-p", 2, "paul", co, "", cartLine("mug", 2, 1250)),
		stockCommitted(h, "cart-p", 2, co),
		discountCalculated(h, "cart-p", 2, co, true, 500),
	}
	h.publish(t, good...)

	got, _ := h.waitDecided(t, co)
	want := storedOrder{UserID: "paul", CartID: "cart-p", CheckoutID: co, Status: "confirmed", SubtotalCents: 2500, DiscountCents: 500, TotalCents: 2000, Version: 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("order behind the poison messages (-want +got):\n%s", diff)
	}

	wantDead := map[string]string{ // event id -> origin topic
		"garbage-1":                 h.cfg.CartTopic,
		badQty.env.GetEventId():     h.cfg.CartTopic,
		noCheckout.env.GetEventId(): h.cfg.InventoryTopic,
		negative.env.GetEventId():   h.cfg.DiscountTopic,
	}
	gotDead := map[string]string{}
	testkit.Eventually(t, 60*time.Second, "poison messages in the DLQ topics", func() bool {
		for _, m := range dead.Messages() {
			if m.Header(kafka.HeaderDLQError) == "" || m.Header(kafka.HeaderDLQGroup) != h.cfg.ConsumerGroup {
				t.Errorf("dead letter without its error headers: %v", m.Headers)
			}
			gotDead[m.Header(envelope.HeaderID)] = m.Header(kafka.HeaderDLQTopic)
		}
		return len(gotDead) >= len(wantDead)
	})
	if diff := cmp.Diff(wantDead, gotDead); diff != "" {
		t.Fatalf("dead letters (-want +got):\n%s", diff)
	}
	var n int
	if err := h.db.Get(&n, `SELECT count(*) FROM orders`); err != nil || n != 1 {
		t.Fatalf("%d orders (%v), want only the valid one", n, err)
	}
	if err := h.db.Get(&n, `SELECT count(*) FROM processed_events WHERE event_id = ANY(ARRAY[$1, $2, $3])`,
		badQty.env.GetEventId(), noCheckout.env.GetEventId(), negative.env.GetEventId()); err != nil || n != 0 {
		t.Fatalf("%d poison events recorded as processed (%v), want 0", n, err)
	}
}
