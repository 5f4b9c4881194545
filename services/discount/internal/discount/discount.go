// Package discount holds the discount rules: what a rule may say, how a cart's discount
// is calculated from its lines and the active rules, and when a coupon may be used. It
// knows nothing of SQL, Kafka or gRPC.
package discount

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what the discount service accepts. The line limits are looser than the cart's
// own (99 per line, 50 lines) so a change there does not dead-letter events here, and
// tight enough that no sum of a valid cart comes near int64.
const (
	MaxQuantity       = 10_000        // units per line
	MaxLines          = 200           // lines per cart
	MaxUnitPriceCents = 100_000_000   // 1,000,000.00
	MaxIDLength       = 64            // rule ids, product ids, cart ids
	MaxCouponLength   = 32            // coupon codes, as in the cart
	MaxDescription    = 200           // rule descriptions, in bytes
	MaxRuleQuantity   = 1_000         // buy_quantity, free_quantity
	MaxThresholdCents = 1_000_000_000 // 10,000,000.00
	MaxUsageLimit     = 1_000_000_000
)

// Kind says how a rule computes its discount.
type Kind string

// Rule kinds. Their order in Calculate's result is product rules, then order rules, then
// the coupon.
const (
	PercentOffProduct Kind = "PERCENT_OFF_PRODUCT"
	BuyXGetY          Kind = "BUY_X_GET_Y"
	OrderThreshold    Kind = "ORDER_THRESHOLD"
	Coupon            Kind = "COUPON"
)

func (k Kind) rank() int {
	switch k {
	case PercentOffProduct, BuyXGetY:
		return 0
	case OrderThreshold:
		return 1
	default:
		return 2
	}
}

// Sentinel errors. The coupon errors are also the reasons published in CouponRejected.
var (
	ErrOverflow       = errors.New("amount overflows int64 cents")
	ErrUnknownCoupon  = errors.New("unknown coupon")
	ErrCouponInactive = errors.New("coupon is not active")
	ErrCouponExpired  = errors.New("coupon expired")
	ErrCouponUsedUp   = errors.New("coupon usage limit reached")
)

// FieldError is invalid input in one field (of a rule, or of a consumed event).
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Rule is one discount rule. Which fields matter depends on Kind; the others are zero.
type Rule struct {
	ID             string
	Description    string
	Kind           Kind
	ProductID      string // PERCENT_OFF_PRODUCT, BUY_X_GET_Y
	Percent        int32  // 1..100: PERCENT_OFF_PRODUCT, ORDER_THRESHOLD, COUPON
	BuyQuantity    int32  // BUY_X_GET_Y
	FreeQuantity   int32  // BUY_X_GET_Y
	ThresholdCents int64  // ORDER_THRESHOLD
	CouponCode     string // COUPON
	UsageLimit     int32  // COUPON; 0 = unlimited
	Used           int32  // COUPON; redemptions so far
	ExpiresAt      *time.Time
	Active         bool
}

// Line is one product in a cart.
type Line struct {
	ProductID      string
	Quantity       int32
	UnitPriceCents int64
}

// Applied is what one rule took off.
type Applied struct {
	RuleID      string
	Description string
	AmountCents int64
}

// Result is a cart's discount.
type Result struct {
	SubtotalCents int64
	DiscountCents int64
	Applied       []Applied
}

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
	couponPattern = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_-]*$`)
)

// ValidateID checks an identifier (rule, product or cart id) named field.
func ValidateID(field, id string) error {
	switch {
	case id == "":
		return fieldErr(field, "is required")
	case len(id) > MaxIDLength:
		return fieldErr(field, "must be at most %d characters", MaxIDLength)
	case !idPattern.MatchString(id):
		return fieldErr(field, "may contain only letters, digits and . _ : -")
	}
	return nil
}

// ValidateCoupon checks the shape of a coupon code named field (as the cart does).
func ValidateCoupon(field, code string) error {
	switch {
	case code == "":
		return fieldErr(field, "is required")
	case len(code) > MaxCouponLength:
		return fieldErr(field, "must be at most %d characters", MaxCouponLength)
	case !couponPattern.MatchString(code):
		return fieldErr(field, "must be upper-case letters, digits, _ or -")
	}
	return nil
}

// ValidateLine checks one cart line named field (e.g. "lines[2]").
func ValidateLine(field string, l Line) error {
	if err := ValidateID(field+".product_id", l.ProductID); err != nil {
		return err
	}
	if l.Quantity < 1 || l.Quantity > MaxQuantity {
		return fieldErr(field+".quantity", "must be between 1 and %d, got %d", MaxQuantity, l.Quantity)
	}
	if l.UnitPriceCents < 0 || l.UnitPriceCents > MaxUnitPriceCents {
		return fieldErr(field+".unit_price_cents", "must be between 0 and %d, got %d", MaxUnitPriceCents, l.UnitPriceCents)
	}
	return nil
}

// ValidateLines checks a cart's lines: each valid, at most MaxLines, no product twice.
func ValidateLines(lines []Line) error {
	if len(lines) > MaxLines {
		return fieldErr("lines", "at most %d lines, got %d", MaxLines, len(lines))
	}
	seen := make(map[string]bool, len(lines))
	for i, l := range lines {
		f := fmt.Sprintf("lines[%d]", i)
		if err := ValidateLine(f, l); err != nil {
			return err
		}
		if seen[l.ProductID] {
			return fieldErr(f+".product_id", "product %s appears twice", l.ProductID)
		}
		seen[l.ProductID] = true
	}
	return nil
}

// Validate checks a rule as an administrator submits it. Field names are those of the
// API ("rule.percent"); the first invalid field is reported. Used is not checked: it is
// the service's counter.
func (r Rule) Validate() error {
	percent := func() error {
		if r.Percent < 1 || r.Percent > 100 {
			return fieldErr("rule.percent", "must be between 1 and 100, got %d", r.Percent)
		}
		return nil
	}
	between := func(field string, v, lo, hi int64) func() error {
		return func() error {
			if v < lo || v > hi {
				return fieldErr(field, "must be between %d and %d, got %d", lo, hi, v)
			}
			return nil
		}
	}
	checks := []func() error{
		func() error { return ValidateID("rule.rule_id", r.ID) },
		func() error {
			if len(r.Description) > MaxDescription || !utf8.ValidString(r.Description) {
				return fieldErr("rule.description", "must be valid UTF-8 of at most %d bytes", MaxDescription)
			}
			return nil
		},
	}
	// unused lists the fields that must stay empty for the kind.
	var unused []string
	switch r.Kind {
	case PercentOffProduct:
		checks = append(checks, func() error { return ValidateID("rule.product_id", r.ProductID) }, percent)
		unused = []string{"buy_quantity", "free_quantity", "threshold_cents", "coupon_code", "usage_limit", "expires_at"}
	case BuyXGetY:
		checks = append(checks, func() error { return ValidateID("rule.product_id", r.ProductID) },
			between("rule.buy_quantity", int64(r.BuyQuantity), 1, MaxRuleQuantity),
			between("rule.free_quantity", int64(r.FreeQuantity), 1, MaxRuleQuantity))
		unused = []string{"percent", "threshold_cents", "coupon_code", "usage_limit", "expires_at"}
	case OrderThreshold:
		checks = append(checks, percent, between("rule.threshold_cents", r.ThresholdCents, 0, MaxThresholdCents))
		unused = []string{"product_id", "buy_quantity", "free_quantity", "coupon_code", "usage_limit", "expires_at"}
	case Coupon:
		checks = append(checks, func() error { return ValidateCoupon("rule.coupon_code", r.CouponCode) }, percent,
			between("rule.usage_limit", int64(r.UsageLimit), 0, MaxUsageLimit))
		unused = []string{"product_id", "buy_quantity", "free_quantity", "threshold_cents"}
	default:
		checks = append(checks, func() error {
			return fieldErr("rule.kind", "must be one of PERCENT_OFF_PRODUCT, BUY_X_GET_Y, ORDER_THRESHOLD, COUPON")
		})
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	set := map[string]bool{
		"product_id": r.ProductID != "", "percent": r.Percent != 0, "buy_quantity": r.BuyQuantity != 0,
		"free_quantity": r.FreeQuantity != 0, "threshold_cents": r.ThresholdCents != 0, "coupon_code": r.CouponCode != "",
		"usage_limit": r.UsageLimit != 0, "expires_at": r.ExpiresAt != nil,
	}
	for _, f := range unused {
		if set[f] {
			return fieldErr("rule."+f, "must be empty for kind %s", r.Kind)
		}
	}
	return nil
}

// Usable reports why the coupon rule r cannot be used at now, or nil. The same conditions
// guard the redemption in the store.
func (r Rule) Usable(now time.Time) error {
	switch {
	case r.Kind != Coupon:
		return ErrUnknownCoupon
	case !r.Active:
		return ErrCouponInactive
	case r.ExpiresAt != nil && !now.Before(*r.ExpiresAt):
		return ErrCouponExpired
	case r.UsageLimit > 0 && r.Used >= r.UsageLimit:
		return ErrCouponUsedUp
	}
	return nil
}

// FindCoupon returns the coupon rule of code among rules if it can be used at now, or the
// reason it cannot (ErrUnknownCoupon, ErrCouponInactive, ErrCouponExpired, ErrCouponUsedUp).
func FindCoupon(rules []Rule, code string, now time.Time) (Rule, error) {
	i := slices.IndexFunc(rules, func(r Rule) bool { return r.Kind == Coupon && r.CouponCode == code })
	if code == "" || i < 0 {
		return Rule{}, ErrUnknownCoupon
	}
	if err := rules[i].Usable(now); err != nil {
		return Rule{}, err
	}
	return rules[i], nil
}

// Calculate computes the discount of lines under the active non-coupon rules of rules and,
// if coupon is not nil, that coupon (the caller decided it may be used). Every rule is
// computed on the undiscounted prices and rounded down; the total never exceeds the
// subtotal (the rule that would pass it is cut to what is left, later ones take nothing).
// Applied lists the rules that took something off, product rules first, then order
// rules, then the coupon, each group by rule id.
func Calculate(lines []Line, rules []Rule, coupon *Rule) (Result, error) {
	var res Result
	units := make(map[string]int64, len(lines))
	lineTotal := make(map[string]int64, len(lines))
	unitPrice := make(map[string]int64, len(lines))
	for _, l := range lines {
		if l.Quantity < 0 || l.UnitPriceCents < 0 {
			return Result{}, fmt.Errorf("line %s: negative quantity %d or price %d", l.ProductID, l.Quantity, l.UnitPriceCents)
		}
		t, err := mul(int64(l.Quantity), l.UnitPriceCents)
		if err != nil {
			return Result{}, fmt.Errorf("line %s: %d x %d: %w", l.ProductID, l.Quantity, l.UnitPriceCents, err)
		}
		if res.SubtotalCents, err = add(res.SubtotalCents, t); err != nil {
			return Result{}, fmt.Errorf("subtotal: %w", err)
		}
		units[l.ProductID] += int64(l.Quantity)
		lineTotal[l.ProductID] += t // <= subtotal, which did not overflow
		unitPrice[l.ProductID] = l.UnitPriceCents
	}

	var apply []Rule
	for _, r := range rules {
		if r.Active && r.Kind != Coupon {
			apply = append(apply, r)
		}
	}
	if coupon != nil {
		apply = append(apply, *coupon)
	}
	slices.SortStableFunc(apply, func(a, b Rule) int {
		return cmp.Or(cmp.Compare(a.Kind.rank(), b.Kind.rank()), strings.Compare(a.ID, b.ID))
	})

	for _, r := range apply {
		var amount int64
		switch r.Kind {
		case PercentOffProduct:
			amount = percentOf(lineTotal[r.ProductID], r.Percent)
		case BuyXGetY:
			group := int64(r.BuyQuantity) + int64(r.FreeQuantity)
			if r.BuyQuantity > 0 && r.FreeQuantity > 0 {
				free := units[r.ProductID] / group * int64(r.FreeQuantity)
				var err error
				if amount, err = mul(free, unitPrice[r.ProductID]); err != nil {
					return Result{}, fmt.Errorf("rule %s: %w", r.ID, err)
				}
			}
		case OrderThreshold:
			if res.SubtotalCents >= r.ThresholdCents {
				amount = percentOf(res.SubtotalCents, r.Percent)
			}
		case Coupon:
			amount = percentOf(res.SubtotalCents, r.Percent)
		}
		amount = min(amount, res.SubtotalCents-res.DiscountCents)
		if amount <= 0 {
			continue
		}
		res.DiscountCents += amount
		res.Applied = append(res.Applied, Applied{RuleID: r.ID, Description: r.Description, AmountCents: amount})
	}
	return res, nil
}

// percentOf is floor(x * p / 100) for 0 <= p <= 100 without overflowing: with x = 100a + b,
// it is a*p + floor(b*p/100), and a*p <= x.
func percentOf(x int64, p int32) int64 {
	if x <= 0 || p <= 0 {
		return 0
	}
	p64 := int64(min(p, 100))
	return x/100*p64 + x%100*p64/100
}

func mul(a, b int64) (int64, error) {
	if a < 0 || b < 0 {
		return 0, ErrOverflow
	}
	if a != 0 && b > math.MaxInt64/a {
		return 0, ErrOverflow
	}
	return a * b, nil
}

func add(a, b int64) (int64, error) {
	if b > math.MaxInt64-a {
		return 0, ErrOverflow
	}
	return a + b, nil
}
