package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
)

// out is a discount event in a form tests can compare.
type out struct {
	V        int64
	Kind     string // calculated, redeemed, rejected
	Subtotal int64
	Discount int64
	Rules    string // "rule:amount rule:amount"
	Coupon   string
	Final    bool
	Checkout string
	Reason   string
}

func summarize(e *discountpb.DiscountEvent) out {
	o := out{V: e.GetAggregateVersion()}
	switch {
	case e.GetDiscountCalculated() != nil:
		d := e.GetDiscountCalculated()
		var rules []string
		for _, r := range d.GetAppliedRules() {
			rules = append(rules, fmt.Sprintf("%s:%d", r.GetRuleId(), r.GetAmountCents()))
		}
		o.Kind, o.Subtotal, o.Discount, o.Rules, o.Coupon, o.Final, o.Checkout =
			"calculated", d.GetSubtotalCents(), d.GetDiscountCents(), strings.Join(rules, " "), d.GetCouponCode(), d.GetFinal(), d.GetCheckoutId()
	case e.GetCouponRedeemed() != nil:
		o.Kind, o.Coupon, o.Checkout = "redeemed", e.GetCouponRedeemed().GetCouponCode(), e.GetCouponRedeemed().GetCheckoutId()
	case e.GetCouponRejected() != nil:
		r := e.GetCouponRejected()
		o.Kind, o.Coupon, o.Checkout, o.Reason = "rejected", r.GetCouponCode(), r.GetCheckoutId(), r.GetReason()
	}
	return o
}

func summarizeAll(evs []*discountpb.DiscountEvent) []out {
	o := make([]out, len(evs))
	for i, e := range evs {
		o[i] = summarize(e)
	}
	return o
}

// TestCartStreamPublishesDiscountsAndRedeliveryChangesNothing feeds one cart's events
// through the seed rules (mug buy-2-get-1, 15% off T-shirts, 5% over 100.00, coupon
// SAVE10), checks every DiscountCalculated and the stored cart, then delivers every event
// again with the same ids, and checks that only the final checkout (sent after the
// duplicates, on the same partition) added anything.
func TestCartStreamPublishesDiscountsAndRedeliveryChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	e.start(t)

	c := newCart("alice")
	stream := []*cartpb.CartEvent{
		c.add("mug", 2, 1250),
		c.add("mug", 1, 1250),
		c.add("tshirt", 1, 2000),
		c.setQty("tshirt", 4, 2000),
		c.applyCoupon("SAVE10"),
		c.remove("mug"),
		c.applyCoupon("NOPE"),
	}
	msgs := e.publish(t, stream...)
	want := []out{
		{V: 1, Kind: "calculated", Subtotal: 2500},
		{V: 2, Kind: "calculated", Subtotal: 3750, Discount: 1250, Rules: "mug-buy2-get1:1250"},
		{V: 3, Kind: "calculated", Subtotal: 5750, Discount: 1550, Rules: "mug-buy2-get1:1250 tshirt-15-off:300"},
		{V: 4, Kind: "calculated", Subtotal: 11750, Discount: 3037, Rules: "mug-buy2-get1:1250 tshirt-15-off:1200 orders-over-100:587"},
		{V: 5, Kind: "calculated", Subtotal: 11750, Discount: 4212, Rules: "mug-buy2-get1:1250 tshirt-15-off:1200 orders-over-100:587 coupon-save10:1175", Coupon: "SAVE10"},
		{V: 6, Kind: "calculated", Subtotal: 8000, Discount: 2000, Rules: "tshirt-15-off:1200 coupon-save10:800", Coupon: "SAVE10"},
		{V: 7, Kind: "calculated", Subtotal: 8000, Discount: 1200, Rules: "tshirt-15-off:1200"}, // unknown coupon: not taken into account
	}
	if diff := cmp.Diff(want, summarizeAll(e.out.forCart(t, c.id, len(want)))); diff != "" {
		t.Fatalf("discount events (-want +got):\n%s", diff)
	}

	type state struct {
		Status, Coupon string
		Version        int64
		Lines          string
		Discount       int64
		Final          bool
		Processed      int
		Used           int
	}
	stored := func() state {
		var s state
		if err := e.db.QueryRow(`SELECT c.status, c.coupon_code, c.version, d.discount_cents, d.final FROM carts c JOIN cart_discounts d USING (cart_id) WHERE cart_id = $1`, c.id).
			Scan(&s.Status, &s.Coupon, &s.Version, &s.Discount, &s.Final); err != nil {
			t.Fatal(err)
		}
		if err := e.db.Get(&s.Lines, `SELECT coalesce(string_agg(product_id || 'x' || quantity || '@' || unit_price_cents, ' ' ORDER BY product_id), '') FROM cart_lines WHERE cart_id = $1`, c.id); err != nil {
			t.Fatal(err)
		}
		s.Processed = e.count(t, `SELECT count(*) FROM processed_events`)
		s.Used = e.count(t, `SELECT used FROM rules WHERE rule_id = 'coupon-save10'`)
		return s
	}
	wantState := state{Status: "open", Coupon: "NOPE", Version: 7, Lines: "tshirtx4@2000", Discount: 1200, Processed: 7, Used: 0}
	if diff := cmp.Diff(wantState, stored()); diff != "" {
		t.Fatalf("stored state (-want +got):\n%s", diff)
	}

	// Every event again, same ids; then the checkout, which the snapshot makes
	// authoritative (SAVE10 again, whatever the cart held before).
	e.publishRaw(t, msgs...)
	c.coupon = "SAVE10"
	checkout, checkoutID := c.checkout()
	e.publish(t, checkout)
	want = append(want,
		out{V: 8, Kind: "redeemed", Coupon: "SAVE10", Checkout: checkoutID},
		out{V: 9, Kind: "calculated", Subtotal: 8000, Discount: 2000, Rules: "tshirt-15-off:1200 coupon-save10:800", Coupon: "SAVE10", Final: true, Checkout: checkoutID},
	)
	e.out.forCart(t, c.id, len(want))
	e.settled(t)
	if diff := cmp.Diff(want, summarizeAll(e.out.forCart(t, c.id, len(want)))); diff != "" {
		t.Fatalf("discount events after redelivery and checkout (-want +got):\n%s", diff)
	}
	wantState = state{Status: "checked_out", Coupon: "SAVE10", Version: 9, Lines: "tshirtx4@2000", Discount: 2000, Final: true, Processed: 8, Used: 1}
	if diff := cmp.Diff(wantState, stored()); diff != "" {
		t.Fatalf("stored state after redelivery and checkout (-want +got):\n%s", diff)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox`); n != len(want) {
		t.Fatalf("%d outbox rows, want %d", n, len(want))
	}
}

// TestCouponLimitHoldsUnderDuplicatesAndTwoInstances runs two instances in one group
// (both holding partitions), and 30 carts checking out with a coupon limited to 10 uses,
// each CheckedOut delivered twice with the same event id: exactly 10 redemptions, 20
// rejections, one outcome per checkout, used == 10.
func TestCouponLimitHoldsUnderDuplicatesAndTwoInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6)
	e.start(t)
	e.start(t)
	e.exec(t, `INSERT INTO rules (rule_id, description, kind, percent, coupon_code, usage_limit) VALUES ('ten', 'ten uses', 'COUPON', 10, 'TEN', 10)`)
	waitForMembers(t, e.cfg.KafkaBrokers, e.cfg.ConsumerGroup, 2)

	const carts = 30
	checkouts := map[string]string{} // checkout id -> cart id
	var firstPass []*cartpb.CartEvent
	var checkedOut []*cartpb.CartEvent
	for i := range carts {
		c := newCart(fmt.Sprintf("user-%d", i))
		firstPass = append(firstPass, c.add("widget", 2, 1000), c.applyCoupon("TEN"))
		co, id := c.checkout()
		checkedOut = append(checkedOut, co)
		checkouts[id] = c.id
	}
	e.publish(t, firstPass...)
	msgs := e.publish(t, checkedOut...)
	e.publishRaw(t, msgs...)

	testkit.Eventually(t, 90*time.Second, "every checkout decided", func() bool {
		return e.count(t, `SELECT count(*) FROM checkouts`) == carts
	})
	e.settled(t)

	redeemed, rejected, final := map[string]int{}, map[string]int{}, map[string]int{}
	for _, ev := range e.out.events(t) {
		o := summarize(ev)
		if o.Checkout != "" && checkouts[o.Checkout] != ev.GetAggregateId() {
			t.Fatalf("event %+v of cart %s names checkout %s of cart %s", o, ev.GetAggregateId(), o.Checkout, checkouts[o.Checkout])
		}
		switch {
		case o.Kind == "redeemed":
			redeemed[o.Checkout]++
		case o.Kind == "rejected":
			rejected[o.Checkout]++
			if o.Reason != "coupon usage limit reached" {
				t.Errorf("rejection reason %q", o.Reason)
			}
		case o.Final:
			final[o.Checkout]++
			if o.Discount != 200 || o.Coupon != "TEN" {
				t.Errorf("final discount %+v, want 200 with coupon TEN", o)
			}
		}
	}
	if len(redeemed) != 10 || len(rejected) != 20 || len(final) != 10 {
		t.Fatalf("checkouts redeemed %d, rejected %d, with a final discount %d; want 10, 20, 10", len(redeemed), len(rejected), len(final))
	}
	for id := range checkouts {
		if redeemed[id]+rejected[id] != 1 || final[id] != redeemed[id] {
			t.Fatalf("checkout %s: redeemed %d, rejected %d, final %d; want exactly one outcome", id, redeemed[id], rejected[id], final[id])
		}
	}
	if used := e.count(t, `SELECT used FROM rules WHERE rule_id = 'ten'`); used != 10 {
		t.Fatalf("coupon used %d times, want 10", used)
	}
	if n := e.count(t, `SELECT count(*) FROM checkouts WHERE outcome = 'coupon_redeemed'`); n != 10 {
		t.Fatalf("%d checkouts recorded as redeemed, want 10", n)
	}
	if n := e.count(t, `SELECT count(*) FROM processed_events`); n != 3*carts {
		t.Fatalf("%d processed events, want %d (duplicates are not processed twice)", n, 3*carts)
	}
}

// TestUnusableCouponsAreRejectedAtCheckout: an expired, an inactive, a used-up and an
// unknown coupon are left out of the open cart's calculation and rejected at checkout with
// their reason, with no final DiscountCalculated and no redemption.
func TestUnusableCouponsAreRejectedAtCheckout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	e.start(t)
	e.exec(t, `INSERT INTO rules (rule_id, kind, percent, coupon_code, usage_limit, used, expires_at, active) VALUES
		('expired', 'COUPON', 10, 'EXPIRED', 0, 0, now() - interval '1 hour', true),
		('off',     'COUPON', 10, 'OFF',     0, 0, NULL, false),
		('gone',    'COUPON', 10, 'GONE',    2, 2, NULL, true),
		('later',   'COUPON', 10, 'LATER',   0, 0, now() + interval '1 day', true)`)

	tests := []struct {
		coupon, reason string
	}{
		{"EXPIRED", "coupon expired"},
		{"OFF", "coupon is not active"},
		{"GONE", "coupon usage limit reached"},
		{"NOPE", "unknown coupon"},
	}
	type run struct {
		cart       *cartSim
		checkoutID string
	}
	runs := make([]run, len(tests))
	for i, tc := range tests {
		c := newCart("bob")
		co := []*cartpb.CartEvent{c.add("widget", 1, 1000), c.applyCoupon(tc.coupon)}
		ev, id := c.checkout()
		e.publish(t, append(co, ev)...)
		runs[i] = run{c, id}
	}
	// A coupon that expires tomorrow is fine, for comparison.
	ok := newCart("bob")
	okEvs := []*cartpb.CartEvent{ok.add("widget", 1, 1000), ok.applyCoupon("LATER")}
	okCheckout, okID := ok.checkout()
	e.publish(t, append(okEvs, okCheckout)...)

	for i, tc := range tests {
		t.Run(tc.coupon, func(t *testing.T) {
			want := []out{
				{V: 1, Kind: "calculated", Subtotal: 1000},
				{V: 2, Kind: "calculated", Subtotal: 1000},
				{V: 3, Kind: "rejected", Coupon: tc.coupon, Checkout: runs[i].checkoutID, Reason: tc.reason},
			}
			if diff := cmp.Diff(want, summarizeAll(e.out.forCart(t, runs[i].cart.id, 3))); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
			// The rejection and a final discount would leave in one transaction: the
			// outbox holds everything the cart will ever get.
			if n := e.count(t, `SELECT count(*) FROM outbox WHERE msg_key = $1`, []byte(runs[i].cart.id)); n != 3 {
				t.Fatalf("%d events for the cart in the outbox, want 3 (no final DiscountCalculated)", n)
			}
		})
	}
	wantOK := []out{
		{V: 1, Kind: "calculated", Subtotal: 1000},
		{V: 2, Kind: "calculated", Subtotal: 1000, Discount: 100, Rules: "later:100", Coupon: "LATER"},
		{V: 3, Kind: "redeemed", Coupon: "LATER", Checkout: okID},
		{V: 4, Kind: "calculated", Subtotal: 1000, Discount: 100, Rules: "later:100", Coupon: "LATER", Final: true, Checkout: okID},
	}
	if diff := cmp.Diff(wantOK, summarizeAll(e.out.forCart(t, ok.id, 4))); diff != "" {
		t.Fatalf("events of the usable coupon (-want +got):\n%s", diff)
	}
	var used string
	if err := e.db.Get(&used, `SELECT string_agg(rule_id || '=' || used, ' ' ORDER BY rule_id) FROM rules WHERE kind = 'COUPON'`); err != nil {
		t.Fatal(err)
	}
	if want := "coupon-first3=0 coupon-save10=0 expired=0 gone=2 later=1 off=0"; used != want {
		t.Fatalf("coupon counters %q, want %q", used, want)
	}
}

// TestPoisonMessagesGoToDLQWhileThePartitionMovesOn sends, on a one-partition topic, an
// undecodable message and valid envelopes with invalid content between good events: the
// bad ones land in the dead-letter topic with the error, the good ones are applied.
func TestPoisonMessagesGoToDLQWhileThePartitionMovesOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	dlq := readTopic(t, e.cfg.KafkaBrokers, kafka.DLQTopic(e.cfg.CartTopic, e.cfg.ConsumerGroup), e.producer)
	e.start(t)

	good := newCart("carol")
	bad := newCart("carol")
	negative := bad.add("mug", 1, 1250)
	negative.GetItemAdded().Quantity, negative.GetItemAdded().LineQuantity = -3, -3
	noProduct := bad.add("", 1, 1250)
	wrongTotal, _ := bad.checkout()
	wrongTotal.GetCheckedOut().Lines = []*cartpb.CartLine{{ProductId: "mug", Quantity: 1, UnitPriceCents: 1250, LineTotalCents: 1250}}
	wrongTotal.GetCheckedOut().SubtotalCents = 1
	e.publish(t, good.add("pen", 2, 250))
	e.publishRaw(t, kafka.Message{Topic: e.cfg.CartTopic, Key: []byte(bad.id), Value: []byte("\xff\x00 definitely not protobuf")})
	e.publish(t, negative, noProduct, wrongTotal)
	e.publish(t, good.add("pen", 1, 250))

	got := summarizeAll(e.out.forCart(t, good.id, 2))
	want := []out{{V: 1, Kind: "calculated", Subtotal: 500}, {V: 2, Kind: "calculated", Subtotal: 750}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("good cart's events (-want +got):\n%s", diff)
	}
	var dead []kafka.Message
	testkit.Eventually(t, 30*time.Second, "four dead letters", func() bool { dead = dlq.messages(); return len(dead) >= 4 })
	wantErrs := []string{"undecodable", "item_added.quantity", "item_added.product_id", "checked_out.subtotal_cents"}
	if len(dead) != len(wantErrs) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(wantErrs))
	}
	for i, m := range dead {
		if string(m.Key) != bad.id || m.Header(kafka.HeaderDLQTopic) != e.cfg.CartTopic || !strings.Contains(m.Header(kafka.HeaderDLQError), wantErrs[i]) {
			t.Errorf("dead letter %d: key %s, origin %q, error %q; want the bad cart, the cart topic, an error naming %q",
				i, m.Key, m.Header(kafka.HeaderDLQTopic), m.Header(kafka.HeaderDLQError), wantErrs[i])
		}
	}
	if n := e.count(t, `SELECT count(*) FROM carts WHERE cart_id = $1`, bad.id); n != 0 {
		t.Fatalf("the poisoned cart was stored (%d rows)", n)
	}
	if n := e.count(t, `SELECT count(*) FROM processed_events`); n != 2 {
		t.Fatalf("%d processed events, want 2 (dead letters are not recorded as processed)", n)
	}
}
