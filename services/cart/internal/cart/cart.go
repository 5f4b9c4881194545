// Package cart holds the cart's rules: what a user may put in a cart, how lines and
// totals change, and what a checkout captures. It knows nothing of SQL, Kafka or gRPC.
package cart

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"
)

// Limits that keep a cart bounded. They are part of the API contract (documented in the
// proto and README).
const (
	MaxQuantity   = 99 // per line
	MaxLines      = 50 // distinct products per cart
	MaxIDLength   = 64 // product ids, user ids, idempotency keys
	MaxCouponLen  = 32
	MaxPriceCents = 100_000_000 // 1,000,000.00 per unit
)

// Status of a cart.
type Status string

// Cart statuses.
const (
	StatusOpen       Status = "open"
	StatusCheckedOut Status = "checked_out"
)

// Sentinel errors; the transports map them to status codes.
var (
	ErrCartEmpty      = errors.New("cart is empty")
	ErrLineNotFound   = errors.New("product is not in the cart")
	ErrUnknownProduct = errors.New("unknown product")
	ErrCheckedOut     = errors.New("cart is already checked out")
	ErrTooManyLines   = fmt.Errorf("cart holds at most %d products", MaxLines)
)

// FieldError is invalid input in one request field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Line is one product in a cart.
type Line struct {
	ProductID      string
	Quantity       int32
	UnitPriceCents int64
}

// Total is Quantity * UnitPriceCents (bounded by the limits, so it cannot overflow).
func (l Line) Total() int64 { return int64(l.Quantity) * l.UnitPriceCents }

// Cart is a user's cart. Version counts the changes applied to it.
type Cart struct {
	ID         string
	UserID     string
	Status     Status
	Lines      []Line
	CouponCode string
	Version    int64
	UpdatedAt  time.Time
}

// Product is what the cart knows of a product from its catalog read model.
type Product struct {
	ID         string
	Name       string
	PriceCents int64
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)

// ValidateID checks an identifier supplied by a client (product ids and the like).
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

// ValidateQuantity checks a requested quantity.
func ValidateQuantity(q int32) error {
	if q < 1 || q > MaxQuantity {
		return fieldErr("quantity", "must be between 1 and %d, got %d", MaxQuantity, q)
	}
	return nil
}

var couponPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]*$`)

// ValidateCoupon checks the shape of a coupon code (whether it exists is the discount
// service's business).
func ValidateCoupon(code string) error {
	switch {
	case code == "":
		return fieldErr("coupon_code", "is required")
	case len(code) > MaxCouponLen:
		return fieldErr("coupon_code", "must be at most %d characters", MaxCouponLen)
	case !couponPattern.MatchString(code):
		return fieldErr("coupon_code", "must be upper-case letters, digits, _ or -")
	}
	return nil
}

func validPrice(p Product) error {
	if p.PriceCents < 0 || p.PriceCents > MaxPriceCents {
		return fmt.Errorf("product %s has an out-of-range price %d", p.ID, p.PriceCents)
	}
	return nil
}

func (c *Cart) line(productID string) int {
	return slices.IndexFunc(c.Lines, func(l Line) bool { return l.ProductID == productID })
}

func (c *Cart) open() error {
	if c.Status != StatusOpen {
		return ErrCheckedOut
	}
	return nil
}

// Added describes an AddItem's effect.
type Added struct {
	ProductID      string
	Quantity       int32 // added now
	LineQuantity   int32 // after
	UnitPriceCents int64
}

// AddItem adds qty of p, creating its line or increasing it, at p's current price.
func (c *Cart) AddItem(p Product, qty int32) (Added, error) {
	if err := c.open(); err != nil {
		return Added{}, err
	}
	if err := ValidateQuantity(qty); err != nil {
		return Added{}, err
	}
	if err := validPrice(p); err != nil {
		return Added{}, err
	}
	i := c.line(p.ID)
	if i < 0 {
		if len(c.Lines) >= MaxLines {
			return Added{}, ErrTooManyLines
		}
		c.Lines = append(c.Lines, Line{ProductID: p.ID})
		i = len(c.Lines) - 1
	}
	l := &c.Lines[i]
	if int64(l.Quantity)+int64(qty) > MaxQuantity {
		return Added{}, fieldErr("quantity", "would bring the line to %d; at most %d per product", int64(l.Quantity)+int64(qty), MaxQuantity)
	}
	l.Quantity += qty
	l.UnitPriceCents = p.PriceCents
	c.Version++
	return Added{ProductID: p.ID, Quantity: qty, LineQuantity: l.Quantity, UnitPriceCents: p.PriceCents}, nil
}

// RemoveItem removes productID's line and returns the quantity it held.
func (c *Cart) RemoveItem(productID string) (removed int32, err error) {
	if err := c.open(); err != nil {
		return 0, err
	}
	i := c.line(productID)
	if i < 0 {
		return 0, ErrLineNotFound
	}
	removed = c.Lines[i].Quantity
	c.Lines = slices.Delete(c.Lines, i, i+1)
	c.Version++
	return removed, nil
}

// QuantityChanged describes a SetQuantity's effect.
type QuantityChanged struct {
	ProductID      string
	OldQuantity    int32
	NewQuantity    int32
	UnitPriceCents int64
}

// SetQuantity sets the quantity of an existing line, at p's current price.
func (c *Cart) SetQuantity(p Product, qty int32) (QuantityChanged, error) {
	if err := c.open(); err != nil {
		return QuantityChanged{}, err
	}
	if err := ValidateQuantity(qty); err != nil {
		return QuantityChanged{}, err
	}
	if err := validPrice(p); err != nil {
		return QuantityChanged{}, err
	}
	i := c.line(p.ID)
	if i < 0 {
		return QuantityChanged{}, ErrLineNotFound
	}
	l := &c.Lines[i]
	ch := QuantityChanged{ProductID: p.ID, OldQuantity: l.Quantity, NewQuantity: qty, UnitPriceCents: p.PriceCents}
	l.Quantity = qty
	l.UnitPriceCents = p.PriceCents
	c.Version++
	return ch, nil
}

// ApplyCoupon sets the cart's coupon code (replacing any earlier one).
func (c *Cart) ApplyCoupon(code string) error {
	if err := c.open(); err != nil {
		return err
	}
	if err := ValidateCoupon(code); err != nil {
		return err
	}
	c.CouponCode = code
	c.Version++
	return nil
}

// Snapshot is the cart as it was checked out.
type Snapshot struct {
	Lines         []Line
	CouponCode    string
	SubtotalCents int64
}

// Checkout reprices every line from prices (the catalog's current prices; a product no
// longer in the catalog keeps its last price), closes the cart and returns the snapshot.
func (c *Cart) Checkout(prices map[string]int64) (Snapshot, error) {
	if err := c.open(); err != nil {
		return Snapshot{}, err
	}
	if len(c.Lines) == 0 {
		return Snapshot{}, ErrCartEmpty
	}
	// Reprice a copy: a failed checkout must leave the cart as it was.
	repriced := *c
	repriced.Lines = slices.Clone(c.Lines)
	for i, l := range repriced.Lines {
		if p, ok := prices[l.ProductID]; ok {
			if err := validPrice(Product{ID: l.ProductID, PriceCents: p}); err != nil {
				return Snapshot{}, err
			}
			repriced.Lines[i].UnitPriceCents = p
		}
	}
	sub, err := repriced.Subtotal()
	if err != nil {
		return Snapshot{}, err
	}
	c.Lines = repriced.Lines
	c.Status = StatusCheckedOut
	c.Version++
	return Snapshot{Lines: slices.Clone(c.Lines), CouponCode: c.CouponCode, SubtotalCents: sub}, nil
}

// Subtotal sums the lines, failing instead of overflowing.
func (c *Cart) Subtotal() (int64, error) {
	var sum int64
	for _, l := range c.Lines {
		t := l.Total()
		if t < 0 || sum > math.MaxInt64-t {
			return 0, fmt.Errorf("cart %s: subtotal overflows int64 cents", c.ID)
		}
		sum += t
	}
	return sum, nil
}
