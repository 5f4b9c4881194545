package order_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/services/order/internal/order"
)

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func line(p string, q int32, price int64) order.SnapshotLine {
	return order.SnapshotLine{Line: order.Line{ProductID: p, Quantity: q, UnitPriceCents: price}, TotalCents: int64(q) * price}
}

// checkout is a valid snapshot with subtotal 2*1250 + 1*2000 = 4500.
func checkout() order.Checkout {
	return order.Checkout{CheckoutID: "co-1", CartID: "cart-1", UserID: "alice",
		Lines: []order.SnapshotLine{line("mug", 2, 1250), line("shirt", 1, 2000)}, SubtotalCents: 4500}
}

func fieldOf(err error) string {
	var fe *order.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestPlaceCreatesPendingOrder(t *testing.T) {
	got, err := order.Place("o-1", checkout(), now.In(time.FixedZone("X", 3600)))
	if err != nil {
		t.Fatal(err)
	}
	want := order.Order{ID: "o-1", UserID: "alice", CartID: "cart-1", CheckoutID: "co-1", Status: order.StatusPending,
		Lines:         []order.Line{{ProductID: "mug", Quantity: 2, UnitPriceCents: 1250}, {ProductID: "shirt", Quantity: 1, UnitPriceCents: 2000}},
		SubtotalCents: 4500, TotalCents: 4500, Version: 1, CreatedAt: now, UpdatedAt: now}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Place (-want +got):\n%s", diff)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt in %v, want UTC", got.CreatedAt.Location())
	}
}

func TestPlaceRejectsInvalidSnapshots(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *order.Checkout)
		field  string
	}{
		{"no checkout id", func(c *order.Checkout) { c.CheckoutID = "" }, "checkout_id"},
		{"no cart id", func(c *order.Checkout) { c.CartID = "" }, "cart_id"},
		{"no user", func(c *order.Checkout) { c.UserID = "" }, "user_id"},
		{"long user", func(c *order.Checkout) { c.UserID = strings.Repeat("u", order.MaxIDLength+1) }, "user_id"},
		{"bad characters", func(c *order.Checkout) { c.UserID = "a b" }, "user_id"},
		{"no lines", func(c *order.Checkout) { c.Lines = nil; c.SubtotalCents = 0 }, "lines"},
		{"too many lines", func(c *order.Checkout) {
			c.Lines = nil
			for i := range order.MaxLines + 1 {
				c.Lines = append(c.Lines, line(strings.Repeat("p", 1+i%50)+string(rune('a'+i/50)), 1, 0))
			}
			c.SubtotalCents = 0
		}, "lines"},
		{"missing product", func(c *order.Checkout) { c.Lines[0].ProductID = "" }, "lines[0].product_id"},
		{"duplicate product", func(c *order.Checkout) { c.Lines[1] = line("mug", 1, 2000) }, "lines[1].product_id"},
		{"zero quantity", func(c *order.Checkout) { c.Lines[0] = line("mug", 0, 1250); c.SubtotalCents = 2000 }, "lines[0].quantity"},
		{"negative quantity", func(c *order.Checkout) { c.Lines[1] = line("shirt", -1, 2000); c.SubtotalCents = 500 }, "lines[1].quantity"},
		{"quantity over the bound", func(c *order.Checkout) { c.Lines[0] = line("mug", order.MaxQuantity+1, 1) }, "lines[0].quantity"},
		{"negative price", func(c *order.Checkout) { c.Lines[0] = line("mug", 1, -5) }, "lines[0].unit_price_cents"},
		{"price over the bound", func(c *order.Checkout) { c.Lines[0] = line("mug", 1, order.MaxPriceCents+1) }, "lines[0].unit_price_cents"},
		{"wrong line total", func(c *order.Checkout) { c.Lines[0].TotalCents++ }, "lines[0].line_total_cents"},
		{"wrong subtotal", func(c *order.Checkout) { c.SubtotalCents = 4499 }, "subtotal_cents"},
		{"negative subtotal", func(c *order.Checkout) { c.SubtotalCents = -4500 }, "subtotal_cents"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := checkout()
			tc.change(&c)
			_, err := order.Place("o-1", c, now)
			if got := fieldOf(err); got != tc.field {
				t.Fatalf("Place error %v (field %q), want a FieldError on %q", err, got, tc.field)
			}
		})
	}
}

func TestPlaceLargestOrderDoesNotOverflow(t *testing.T) {
	c := order.Checkout{CheckoutID: "co", CartID: "cart", UserID: "u"}
	for i := range order.MaxLines {
		c.Lines = append(c.Lines, line("p"+strings.Repeat("x", i%60)+string(rune('a'+i/60)), order.MaxQuantity, order.MaxPriceCents))
		c.SubtotalCents += int64(order.MaxQuantity) * order.MaxPriceCents
	}
	o, err := order.Place("o", c, now)
	if err != nil {
		t.Fatal(err)
	}
	if o.SubtotalCents <= 0 || o.SubtotalCents > math.MaxInt64/2 {
		t.Fatalf("subtotal %d of the largest order", o.SubtotalCents)
	}
}

func TestDecide(t *testing.T) {
	committed := order.Outcomes{}.WithStockCommitted()
	withDiscount := func(o order.Outcomes, c int64) order.Outcomes {
		o, err := o.WithDiscount(c)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	tests := []struct {
		name     string
		subtotal int64
		out      order.Outcomes
		want     order.Decision
		decided  bool
	}{
		{"nothing known", 4500, order.Outcomes{}, order.Decision{}, false},
		{"stock only", 4500, committed, order.Decision{}, false},
		{"discount only", 4500, withDiscount(order.Outcomes{}, 450), order.Decision{}, false},
		{"confirmed", 4500, withDiscount(committed, 450), order.Decision{Status: order.StatusConfirmed, DiscountCents: 450, TotalCents: 4050}, true},
		{"confirmed without discount", 4500, withDiscount(committed, 0), order.Decision{Status: order.StatusConfirmed, TotalCents: 4500}, true},
		{"discount over subtotal is capped", 4500, withDiscount(committed, 9000), order.Decision{Status: order.StatusConfirmed, DiscountCents: 4500, TotalCents: 0}, true},
		{"huge discount", math.MaxInt64, withDiscount(committed, math.MaxInt64), order.Decision{Status: order.StatusConfirmed, DiscountCents: math.MaxInt64, TotalCents: 0}, true},
		{"stock rejection alone decides", 4500, order.Outcomes{}.WithStockRejected("out of stock: mug requested 2, available 1"),
			order.Decision{Status: order.StatusRejected, TotalCents: 4500, Reason: "out of stock: mug requested 2, available 1"}, true},
		{"coupon rejection alone decides", 4500, order.Outcomes{}.WithCouponRejected("coupon X rejected: expired"),
			order.Decision{Status: order.StatusRejected, TotalCents: 4500, Reason: "coupon X rejected: expired"}, true},
		{"stock rejection wins over discount", 4500, withDiscount(order.Outcomes{}, 100).WithStockRejected("s"),
			order.Decision{Status: order.StatusRejected, TotalCents: 4500, Reason: "s"}, true},
		{"coupon rejection wins over stock", 4500, committed.WithCouponRejected("c"),
			order.Decision{Status: order.StatusRejected, TotalCents: 4500, Reason: "c"}, true},
		{"coupon rejection wins over a complete confirmation", 4500, withDiscount(committed, 100).WithCouponRejected("c"),
			order.Decision{Status: order.StatusRejected, TotalCents: 4500, Reason: "c"}, true},
		{"a rejection is not undone by a commit", 4500, order.Outcomes{}.WithStockRejected("s").WithStockCommitted(),
			order.Decision{Status: order.StatusRejected, TotalCents: 4500, Reason: "s"}, true},
		{"both rejections are named, stock first", 4500, order.Outcomes{}.WithCouponRejected("c").WithStockRejected("s"),
			order.Decision{Status: order.StatusRejected, TotalCents: 4500, Reason: "s; c"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, decided := order.Decide(tc.subtotal, tc.out)
			if decided != tc.decided {
				t.Fatalf("decided = %v, want %v", decided, tc.decided)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOutcomesAccumulate(t *testing.T) {
	o, err := order.Outcomes{}.WithDiscount(300)
	if err != nil {
		t.Fatal(err)
	}
	if o, err = o.WithDiscount(900); err != nil {
		t.Fatal(err)
	}
	o = o.WithStockRejected("first").WithStockRejected("second").WithCouponRejected("c1").WithCouponRejected("c2")
	want := order.Outcomes{Stock: order.StockRejected, StockReason: "first", DiscountKnown: true, DiscountCents: 300, CouponRejected: true, CouponReason: "c1"}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s", diff)
	}
	if _, err := (order.Outcomes{}).WithDiscount(-1); fieldOf(err) != "discount_cents" {
		t.Fatalf("negative discount: %v, want a FieldError on discount_cents", err)
	}
	long := order.Outcomes{}.WithStockRejected(strings.Repeat("é", order.MaxReasonLen))
	if len(long.StockReason) > order.MaxReasonLen || !strings.HasPrefix(long.StockReason, "é") || strings.ContainsRune(long.StockReason, '\uFFFD') {
		t.Fatalf("long reason not clipped at a rune boundary: %d bytes", len(long.StockReason))
	}
}

func TestReasons(t *testing.T) {
	if got, want := order.OutOfStockReason("mug", 3, 1), "out of stock: mug requested 3, available 1"; got != want {
		t.Errorf("OutOfStockReason = %q, want %q", got, want)
	}
	if got, want := order.CouponReason("SAVE10", "coupon expired"), "coupon SAVE10 rejected: coupon expired"; got != want {
		t.Errorf("CouponReason = %q, want %q", got, want)
	}
}

// arrival is one input reaching the order service: the checkout or an outcome.
type arrival struct {
	name  string
	apply func(s *sim)
}

// sim replays arrivals the way the service does: outcomes accumulate per checkout, the
// order is created at the checkout, and after every arrival a pending order is settled.
type sim struct {
	t         *testing.T
	order     *order.Order
	out       order.Outcomes
	decisions int
}

func (s *sim) settle() {
	if s.order != nil && s.order.Settle(s.out, now) {
		s.decisions++
	}
}

func checkoutArrives(s *sim) {
	o, err := order.Place("o-1", checkout(), now)
	if err != nil {
		s.t.Fatal(err)
	}
	s.order = &o
}

var (
	stockOK        = arrival{"stock committed", func(s *sim) { s.out = s.out.WithStockCommitted() }}
	stockRejected  = arrival{"stock rejected", func(s *sim) { s.out = s.out.WithStockRejected(order.OutOfStockReason("mug", 2, 1)) }}
	discount       = arrival{"discount 450", func(s *sim) { s.out, _ = s.out.WithDiscount(450) }}
	couponRejected = arrival{"coupon rejected", func(s *sim) { s.out = s.out.WithCouponRejected(order.CouponReason("BAD", "expired")) }}
	checkoutIn     = arrival{"checked out", checkoutArrives}
)

func permutations(in []arrival) [][]arrival {
	if len(in) <= 1 {
		return [][]arrival{in}
	}
	var out [][]arrival
	for i := range in {
		rest := append(append([]arrival(nil), in[:i]...), in[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]arrival{in[i]}, p...))
		}
	}
	return out
}

func names(as []arrival) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.name
	}
	return strings.Join(s, ", ")
}

func TestEveryArrivalOrderGivesTheSameOrder(t *testing.T) {
	base := func() order.Order {
		o, err := order.Place("o-1", checkout(), now)
		if err != nil {
			t.Fatal(err)
		}
		o.Version = 2
		return o
	}
	confirmed := base()
	confirmed.Status, confirmed.DiscountCents, confirmed.TotalCents = order.StatusConfirmed, 450, 4050
	outOfStock := base()
	outOfStock.Status, outOfStock.Reason = order.StatusRejected, "out of stock: mug requested 2, available 1"
	badCoupon := base()
	badCoupon.Status, badCoupon.Reason = order.StatusRejected, "coupon BAD rejected: expired"

	tests := []struct {
		name   string
		inputs []arrival
		want   order.Order
	}{
		{"stock committed and discount known: confirmed", []arrival{checkoutIn, stockOK, discount}, confirmed},
		{"stock rejected: rejected whatever the discount", []arrival{checkoutIn, stockRejected, discount}, outOfStock},
		{"coupon rejected: rejected whatever the stock", []arrival{checkoutIn, stockOK, couponRejected}, badCoupon},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			perms := permutations(tc.inputs)
			if len(perms) != 6 {
				t.Fatalf("%d permutations of 3 inputs", len(perms))
			}
			for _, p := range perms {
				s := &sim{t: t}
				for _, a := range p {
					a.apply(s)
					s.settle()
				}
				if s.order == nil {
					t.Fatalf("[%s]: no order", names(p))
				}
				if diff := cmp.Diff(tc.want, *s.order); diff != "" {
					t.Errorf("[%s]: final order (-want +got):\n%s", names(p), diff)
				}
				if s.decisions != 1 {
					t.Errorf("[%s]: decided %d times, want exactly once", names(p), s.decisions)
				}
			}
		})
	}
}

// Two rejections from two services: the order is rejected in every arrival order, and
// decided once; its reason names the rejection known when it was decided (both, stock
// first, when both were known before the checkout arrived).
func TestTwoRejectionsAlwaysReject(t *testing.T) {
	for _, p := range permutations([]arrival{checkoutIn, stockRejected, couponRejected, discount}) {
		s := &sim{t: t}
		var firstRejection string
		rejectionsBeforeCheckout, placed := 0, false
		for _, a := range p {
			a.apply(s)
			if a.name == stockRejected.name || a.name == couponRejected.name {
				if firstRejection == "" {
					firstRejection = a.name
				}
				if !placed {
					rejectionsBeforeCheckout++
				}
			}
			placed = placed || a.name == checkoutIn.name
			s.settle()
		}
		o := s.order
		if o.Status != order.StatusRejected || s.decisions != 1 || o.Version != 2 || o.DiscountCents != 0 || o.TotalCents != 4500 {
			t.Fatalf("[%s]: status %s, %d decisions, version %d, discount %d, total %d", names(p), o.Status, s.decisions, o.Version, o.DiscountCents, o.TotalCents)
		}
		wantReason := map[string]string{stockRejected.name: "out of stock: mug requested 2, available 1", couponRejected.name: "coupon BAD rejected: expired"}[firstRejection]
		if rejectionsBeforeCheckout == 2 {
			wantReason = "out of stock: mug requested 2, available 1; coupon BAD rejected: expired"
		}
		if o.Reason != wantReason {
			t.Errorf("[%s]: reason %q, want %q", names(p), o.Reason, wantReason)
		}
	}
}

func TestDecidedOrderNeverChanges(t *testing.T) {
	o, err := order.Place("o-1", checkout(), now)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := order.Outcomes{}.WithStockCommitted().WithDiscount(100)
	if !o.Settle(out, now) {
		t.Fatal("complete outcomes did not decide the order")
	}
	decided := o
	later := now.Add(time.Hour)
	if o.Settle(out.WithCouponRejected("late").WithStockRejected("late"), later) || o.Settle(out, later) {
		t.Fatal("a decided order changed")
	}
	if diff := cmp.Diff(decided, o); diff != "" {
		t.Fatalf("decided order changed (-before +after):\n%s", diff)
	}
}

func TestValidateOrderID(t *testing.T) {
	for id, field := range map[string]string{
		"0190a0b4-7d2e-7c8a-9a51-4f7a3e0b8c11":   "",
		"":                                       "order_id",
		"nope":                                   "order_id",
		"{0190a0b4-7d2e-7c8a-9a51-4f7a3e0b8c11}": "order_id",
		"urn:uuid:0190a0b4-7d2e-7c8a-9a51-4f7a3e0b8c11": "order_id",
	} {
		if got := fieldOf(order.ValidateOrderID(id)); got != field {
			t.Errorf("ValidateOrderID(%q) field %q, want %q", id, got, field)
		}
	}
}
