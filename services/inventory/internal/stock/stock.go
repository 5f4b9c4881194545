// Package stock holds the inventory's rules: what a cart line's new quantity means for
// its reservation, how a checkout is settled, and what a restock or a price change may
// do to a product. It knows nothing of SQL, Kafka or gRPC.
package stock

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"unicode/utf8"
)

// Limits that keep every quantity and amount bounded. Quantities are int32 on the wire;
// with these bounds no sum below can overflow.
const (
	MaxQuantity   = 1_000         // per cart line (the cart allows far less)
	MaxLines      = 200           // products in one checkout
	MaxRestock    = 100_000       // units added by one restock
	MaxStock      = 1_000_000_000 // available + reserved + sold of one product
	MaxPriceCents = 100_000_000   // 1,000,000.00 per unit
	MaxIDLength   = 64
)

// Sentinel errors; the API maps them to status codes.
var (
	ErrUnknownProduct = errors.New("unknown product")
	ErrStockLimit     = fmt.Errorf("a product holds at most %d units in total", MaxStock)
)

// FieldError is invalid input in one named field (of a request or of an event).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// ValidateID checks an identifier (product id, cart id, checkout id).
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

// ValidateQuantity checks a line quantity (1..MaxQuantity).
func ValidateQuantity(field string, q int32) error {
	if q < 1 || q > MaxQuantity {
		return fieldErr(field, "must be between 1 and %d, got %d", MaxQuantity, q)
	}
	return nil
}

// Product is a catalog entry with its stock. Available + Reserved + Sold changes only by
// restocks.
type Product struct {
	ID         string
	Name       string
	PriceCents int64
	Available  int32
	Reserved   int32
	Sold       int32
}

func (p Product) total() int64 { return int64(p.Available) + int64(p.Reserved) + int64(p.Sold) }

// Restock returns p with qty more units available.
func Restock(p Product, qty int32) (Product, error) {
	if qty < 1 || qty > MaxRestock {
		return p, fieldErr("quantity", "must be between 1 and %d, got %d", MaxRestock, qty)
	}
	if p.total()+int64(qty) > MaxStock {
		return p, ErrStockLimit
	}
	p.Available += qty
	return p, nil
}

// SetPrice returns p with a new unit price, and whether it changed.
func SetPrice(p Product, cents int64) (Product, bool, error) {
	if cents < 0 || cents > MaxPriceCents {
		return p, false, fieldErr("price_cents", "must be between 0 and %d, got %d", MaxPriceCents, cents)
	}
	changed := p.PriceCents != cents
	p.PriceCents = cents
	return p, changed, nil
}

// ReleaseReason says why held stock goes back to available.
type ReleaseReason int

// Release reasons.
const (
	ReasonItemRemoved ReleaseReason = iota + 1
	ReasonQuantityDecreased
	ReasonExpired
)

// Move is what bringing a cart's hold of a product from held to a target takes: reserve
// Reserve more units, or release Release units (at most one of them is non-zero).
type Move struct {
	Reserve int32
	Release int32
	Reason  ReleaseReason // set when Release > 0
}

// Retarget returns the move that brings a hold of held units to target. A target of 0
// is the line's removal; a lower non-zero target is a quantity decrease.
func Retarget(held, target int32) Move {
	switch {
	case target > held:
		return Move{Reserve: target - held}
	case target < held && target == 0:
		return Move{Release: held, Reason: ReasonItemRemoved}
	case target < held:
		return Move{Release: held - target, Reason: ReasonQuantityDecreased}
	}
	return Move{}
}

// Line is a product and a quantity of it.
type Line struct {
	ProductID string
	Quantity  int32
}

// ValidateLines checks a checkout's lines: 1..MaxLines of them, valid ids and
// quantities, each product once.
func ValidateLines(lines []Line) error {
	if len(lines) == 0 || len(lines) > MaxLines {
		return fieldErr("lines", "must hold 1 to %d lines, got %d", MaxLines, len(lines))
	}
	seen := make(map[string]bool, len(lines))
	for i, l := range lines {
		if err := ValidateID(fmt.Sprintf("lines[%d].product_id", i), l.ProductID); err != nil {
			return err
		}
		if err := ValidateQuantity(fmt.Sprintf("lines[%d].quantity", i), l.Quantity); err != nil {
			return err
		}
		if seen[l.ProductID] {
			return fieldErr(fmt.Sprintf("lines[%d].product_id", i), "product %s appears twice", l.ProductID)
		}
		seen[l.ProductID] = true
	}
	return nil
}

// Delta is a change of one product's stock counters.
type Delta struct {
	ProductID string
	Available int32
	Reserved  int32
	Sold      int32
}

// Shortfall is a checkout line that cannot be met: the cart needed Requested more units
// than it held, and only Available were free.
type Shortfall struct {
	ProductID string
	Requested int32
	Available int32
}

// Settlement is the outcome of a checkout: either every line is met (Committed holds
// the lines sold) or some are not (Rejected). Either way Deltas, applied to the
// products, leave the cart holding nothing.
type Settlement struct {
	Deltas    []Delta // sorted by product id, no zero deltas
	Committed []Line  // in the order of the checkout's lines; nil when rejected
	Rejected  []Shortfall
}

// OK reports whether the checkout is committed.
func (s Settlement) OK() bool { return len(s.Rejected) == 0 }

// Settle plans a checkout of valid lines for a cart holding held (units per product),
// given the units available per product (a product missing from available is unknown
// and has none). Every line needs a hold of exactly its quantity: shortfalls are
// reserved from available, excess (and holds of products not in the lines) released.
// If every line can be met the lines are sold; otherwise everything held is released.
func Settle(lines []Line, held, available map[string]int32) Settlement {
	var s Settlement
	for _, l := range lines {
		if short := l.Quantity - held[l.ProductID]; short > available[l.ProductID] {
			s.Rejected = append(s.Rejected, Shortfall{ProductID: l.ProductID, Requested: short, Available: available[l.ProductID]})
		}
	}
	deltas := map[string]Delta{}
	if !s.OK() {
		for id, h := range held {
			deltas[id] = Delta{ProductID: id, Available: h, Reserved: -h}
		}
	} else {
		for id, h := range held { // holds of products no longer in the cart
			deltas[id] = Delta{ProductID: id, Available: h, Reserved: -h}
		}
		for _, l := range lines {
			h := held[l.ProductID]
			deltas[l.ProductID] = Delta{ProductID: l.ProductID, Available: h - l.Quantity, Reserved: -h, Sold: l.Quantity}
		}
		s.Committed = slices.Clone(lines)
	}
	for _, id := range slices.Sorted(maps.Keys(deltas)) {
		if d := deltas[id]; d != (Delta{ProductID: id}) {
			s.Deltas = append(s.Deltas, d)
		}
	}
	return s
}

// SortedHolds returns holds as lines sorted by product id: the order in which products
// are locked and changed, so that concurrent transactions never deadlock.
func SortedHolds(held map[string]int32) []Line {
	out := make([]Line, 0, len(held))
	for id, q := range held {
		out = append(out, Line{ProductID: id, Quantity: q})
	}
	slices.SortFunc(out, func(a, b Line) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return out
}
