// Package order holds the order's rules: what a checkout snapshot must look like to
// become an order, how the inventory and discount outcomes of a checkout accumulate,
// and when they decide the order. It knows nothing of SQL, Kafka or gRPC.
package order

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits on what an order accepts from a checkout snapshot. They are looser than the
// cart's own limits, so that a cart raising its limits does not dead-letter checkouts,
// and tight enough that no sum of line totals can overflow int64.
const (
	MaxLines      = 200
	MaxQuantity   = 10_000
	MaxPriceCents = 10_000_000_000 // 100,000,000.00 per unit
	MaxIDLength   = 64
	MaxReasonLen  = 500
)

// Status is where an order stands.
type Status string

// Order statuses. Pending is the only one that changes.
const (
	StatusPending   Status = "pending"
	StatusConfirmed Status = "confirmed"
	StatusRejected  Status = "rejected"
)

// ErrNotFound means no order with that id belongs to the user.
var ErrNotFound = errors.New("order not found")

// FieldError is invalid content in one field of an event or a request.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// ValidateID checks an identifier received from another service (user, cart, product
// and checkout ids).
func ValidateID(field, id string) error {
	switch {
	case id == "":
		return fieldErr(field, "is required")
	case !utf8.ValidString(id):
		return fieldErr(field, "must be valid UTF-8")
	case len(id) > MaxIDLength:
		return fieldErr(field, "must be at most %d characters", MaxIDLength)
	case !idPattern.MatchString(id):
		return fieldErr(field, "may contain only letters, digits and . _ : -")
	}
	return nil
}

// ValidateOrderID checks an order id given by a client: order ids are UUIDs.
func ValidateOrderID(id string) error {
	if id == "" {
		return fieldErr("order_id", "is required")
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return fieldErr("order_id", "must be a UUID")
	}
	return nil
}

// Line is one product of an order, as captured at checkout.
type Line struct {
	ProductID      string
	Quantity       int32
	UnitPriceCents int64
}

// Total is Quantity * UnitPriceCents; the limits keep it far from overflowing.
func (l Line) Total() int64 { return int64(l.Quantity) * l.UnitPriceCents }

// SnapshotLine is a line of a checkout snapshot, with the total the cart computed.
type SnapshotLine struct {
	Line
	TotalCents int64
}

// Checkout is the snapshot a cart publishes when it is checked out.
type Checkout struct {
	CheckoutID    string
	CartID        string
	UserID        string
	Lines         []SnapshotLine
	SubtotalCents int64
}

// Order is an order created from a checkout. Version counts the events published about
// it: 1 when placed, 2 once decided.
type Order struct {
	ID            string
	UserID        string
	CartID        string
	CheckoutID    string
	Status        Status
	Lines         []Line
	SubtotalCents int64
	DiscountCents int64
	TotalCents    int64
	Reason        string
	Version       int64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Place validates a checkout snapshot and returns the PENDING order made of it, with id. The
// snapshot's line totals and subtotal must add up (checked without overflow).
func Place(id string, c Checkout, now time.Time) (Order, error) {
	for _, v := range []struct{ field, id string }{{"checkout_id", c.CheckoutID}, {"cart_id", c.CartID}, {"user_id", c.UserID}} {
		if err := ValidateID(v.field, v.id); err != nil {
			return Order{}, err
		}
	}
	if len(c.Lines) == 0 {
		return Order{}, fieldErr("lines", "a checkout has at least one line")
	}
	if len(c.Lines) > MaxLines {
		return Order{}, fieldErr("lines", "at most %d lines", MaxLines)
	}
	lines := make([]Line, len(c.Lines))
	seen := make(map[string]bool, len(c.Lines))
	var sum int64
	for i, l := range c.Lines {
		field := fmt.Sprintf("lines[%d]", i)
		if err := ValidateID(field+".product_id", l.ProductID); err != nil {
			return Order{}, err
		}
		if seen[l.ProductID] {
			return Order{}, fieldErr(field+".product_id", "product %s appears twice", l.ProductID)
		}
		seen[l.ProductID] = true
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			return Order{}, fieldErr(field+".quantity", "must be between 1 and %d, got %d", MaxQuantity, l.Quantity)
		}
		if l.UnitPriceCents < 0 || l.UnitPriceCents > MaxPriceCents {
			return Order{}, fieldErr(field+".unit_price_cents", "must be between 0 and %d, got %d", int64(MaxPriceCents), l.UnitPriceCents)
		}
		if l.TotalCents != l.Total() {
			return Order{}, fieldErr(field+".line_total_cents", "is %d, want quantity * unit price = %d", l.TotalCents, l.Total())
		}
		var ok bool
		if sum, ok = add(sum, l.Total()); !ok {
			return Order{}, fieldErr("subtotal_cents", "overflows")
		}
		lines[i] = l.Line
	}
	if c.SubtotalCents != sum {
		return Order{}, fieldErr("subtotal_cents", "is %d, want the sum of the line totals %d", c.SubtotalCents, sum)
	}
	now = now.UTC()
	return Order{
		ID: id, UserID: c.UserID, CartID: c.CartID, CheckoutID: c.CheckoutID, Status: StatusPending,
		Lines: lines, SubtotalCents: sum, TotalCents: sum, Version: 1, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// add returns a+b and false when the sum overflows int64.
func add(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}

// Stock is what the inventory said about a checkout's stock.
type Stock string

// Stock outcomes.
const (
	StockUnknown   Stock = ""
	StockCommitted Stock = "committed"
	StockRejected  Stock = "rejected"
)

// Outcomes is what is known about one checkout from the inventory and discount
// services. Outcomes may arrive before the order exists; they only accumulate: a
// rejection is never taken back and the first known discount stays.
type Outcomes struct {
	Stock          Stock
	StockReason    string
	DiscountKnown  bool
	DiscountCents  int64
	CouponRejected bool
	CouponReason   string
}

// WithStockCommitted records that the checkout's stock was committed. A rejection
// already recorded stays.
func (o Outcomes) WithStockCommitted() Outcomes {
	if o.Stock == StockUnknown {
		o.Stock = StockCommitted
	}
	return o
}

// WithStockRejected records that the checkout's stock could not be committed. It wins
// over a commit; the first reason stays.
func (o Outcomes) WithStockRejected(reason string) Outcomes {
	if o.Stock != StockRejected {
		o.Stock, o.StockReason = StockRejected, clip(reason)
	}
	return o
}

// WithDiscount records the final discount of the checkout; the first one stays.
func (o Outcomes) WithDiscount(cents int64) (Outcomes, error) {
	if cents < 0 {
		return o, fieldErr("discount_cents", "must not be negative, got %d", cents)
	}
	if !o.DiscountKnown {
		o.DiscountKnown, o.DiscountCents = true, cents
	}
	return o, nil
}

// WithCouponRejected records that the checkout's coupon was refused; the first reason stays.
func (o Outcomes) WithCouponRejected(reason string) Outcomes {
	if !o.CouponRejected {
		o.CouponRejected, o.CouponReason = true, clip(reason)
	}
	return o
}

// OutOfStockReason is the rejection reason of a reservation that could not be met.
func OutOfStockReason(productID string, requested, available int32) string {
	return fmt.Sprintf("out of stock: %s requested %d, available %d", productID, requested, available)
}

// CouponReason is the rejection reason of a refused coupon.
func CouponReason(code, reason string) string {
	return fmt.Sprintf("coupon %s rejected: %s", code, reason)
}

func clip(s string) string {
	if len(s) <= MaxReasonLen {
		return s
	}
	s = s[:MaxReasonLen]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Decision is the final state of an order.
type Decision struct {
	Status        Status
	DiscountCents int64
	TotalCents    int64
	Reason        string
}

// Decide returns the decision for an order of subtotal (>= 0) given what is known of its
// checkout, and false while it must still wait. Any rejection decides at once (no
// discount is applied to a rejected order); otherwise the order is confirmed once the
// stock is committed and the discount is known. A discount larger than the subtotal is
// capped at it, so the total is never negative.
func Decide(subtotal int64, o Outcomes) (Decision, bool) {
	var reasons []string
	if o.Stock == StockRejected {
		reasons = append(reasons, o.StockReason)
	}
	if o.CouponRejected {
		reasons = append(reasons, o.CouponReason)
	}
	if len(reasons) > 0 {
		return Decision{Status: StatusRejected, TotalCents: subtotal, Reason: strings.Join(reasons, "; ")}, true
	}
	if o.Stock != StockCommitted || !o.DiscountKnown {
		return Decision{}, false
	}
	discount := min(o.DiscountCents, subtotal)
	return Decision{Status: StatusConfirmed, DiscountCents: discount, TotalCents: subtotal - discount}, true
}

// Settle decides a pending order from out. It reports whether the order changed: a
// decided order never changes again, and an undecided one waits for more outcomes.
func (o *Order) Settle(out Outcomes, now time.Time) bool {
	if o.Status != StatusPending {
		return false
	}
	d, ok := Decide(o.SubtotalCents, out)
	if !ok {
		return false
	}
	o.Status, o.DiscountCents, o.TotalCents, o.Reason = d.Status, d.DiscountCents, d.TotalCents, d.Reason
	o.Version++
	o.UpdatedAt = now.UTC()
	return true
}
