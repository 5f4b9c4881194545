package discount_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/services/discount/internal/discount"
)

var (
	now       = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	yesterday = now.Add(-24 * time.Hour)
	tomorrow  = now.Add(24 * time.Hour)
)

func pctProduct(id, product string, pct int32) discount.Rule {
	return discount.Rule{ID: id, Description: id, Kind: discount.PercentOffProduct, ProductID: product, Percent: pct, Active: true}
}

func bxgy(id, product string, buy, free int32) discount.Rule {
	return discount.Rule{ID: id, Description: id, Kind: discount.BuyXGetY, ProductID: product, BuyQuantity: buy, FreeQuantity: free, Active: true}
}

func threshold(id string, cents int64, pct int32) discount.Rule {
	return discount.Rule{ID: id, Description: id, Kind: discount.OrderThreshold, ThresholdCents: cents, Percent: pct, Active: true}
}

func coupon(id, code string, pct, limit, used int32) discount.Rule {
	return discount.Rule{ID: id, Description: id, Kind: discount.Coupon, CouponCode: code, Percent: pct, UsageLimit: limit, Used: used, Active: true}
}

func inactive(r discount.Rule) discount.Rule { r.Active = false; return r }

func TestCalculate(t *testing.T) {
	mugs := func(q int32) discount.Line { return discount.Line{ProductID: "mug", Quantity: q, UnitPriceCents: 1250} }
	shirts := func(q int32) discount.Line {
		return discount.Line{ProductID: "tshirt", Quantity: q, UnitPriceCents: 2000}
	}
	save10 := coupon("save10", "SAVE10", 10, 100, 0)
	tests := []struct {
		name   string
		lines  []discount.Line
		rules  []discount.Rule
		coupon *discount.Rule
		want   discount.Result
	}{
		{"empty cart, no rules", nil, nil, nil, discount.Result{}},
		{"no rules", []discount.Line{mugs(2)}, nil, nil, discount.Result{SubtotalCents: 2500}},
		{
			"percent off a product takes every unit",
			[]discount.Line{mugs(3), shirts(1)}, []discount.Rule{pctProduct("mug20", "mug", 20)}, nil,
			discount.Result{SubtotalCents: 5750, DiscountCents: 750, Applied: []discount.Applied{{"mug20", "mug20", 750}}},
		},
		{
			"percent off a product not in the cart takes nothing",
			[]discount.Line{shirts(1)}, []discount.Rule{pctProduct("mug20", "mug", 20)}, nil,
			discount.Result{SubtotalCents: 2000},
		},
		{
			"percent rounds down",
			[]discount.Line{{ProductID: "pen", Quantity: 1, UnitPriceCents: 999}}, []discount.Rule{pctProduct("pen15", "pen", 15)}, nil,
			discount.Result{SubtotalCents: 999, DiscountCents: 149, Applied: []discount.Applied{{"pen15", "pen15", 149}}}, // 149.85
		},
		{
			"buy 2 get 1 below a full group takes nothing",
			[]discount.Line{mugs(2)}, []discount.Rule{bxgy("b2g1", "mug", 2, 1)}, nil,
			discount.Result{SubtotalCents: 2500},
		},
		{
			"buy 2 get 1 with 3 units: one free",
			[]discount.Line{mugs(3)}, []discount.Rule{bxgy("b2g1", "mug", 2, 1)}, nil,
			discount.Result{SubtotalCents: 3750, DiscountCents: 1250, Applied: []discount.Applied{{"b2g1", "b2g1", 1250}}},
		},
		{
			"buy 2 get 1 with 8 units: two free",
			[]discount.Line{mugs(8)}, []discount.Rule{bxgy("b2g1", "mug", 2, 1)}, nil,
			discount.Result{SubtotalCents: 10000, DiscountCents: 2500, Applied: []discount.Applied{{"b2g1", "b2g1", 2500}}},
		},
		{
			"buy 3 get 2 with 10 units: four free",
			[]discount.Line{shirts(10)}, []discount.Rule{bxgy("b3g2", "tshirt", 3, 2)}, nil,
			discount.Result{SubtotalCents: 20000, DiscountCents: 8000, Applied: []discount.Applied{{"b3g2", "b3g2", 8000}}},
		},
		{
			"threshold below takes nothing",
			[]discount.Line{mugs(7)}, []discount.Rule{threshold("over100", 10000, 5)}, nil,
			discount.Result{SubtotalCents: 8750},
		},
		{
			"threshold reached exactly",
			[]discount.Line{shirts(5)}, []discount.Rule{threshold("over100", 10000, 5)}, nil,
			discount.Result{SubtotalCents: 10000, DiscountCents: 500, Applied: []discount.Applied{{"over100", "over100", 500}}},
		},
		{
			"coupon takes percent of the subtotal",
			[]discount.Line{mugs(1), shirts(1)}, nil, &save10,
			discount.Result{SubtotalCents: 3250, DiscountCents: 325, Applied: []discount.Applied{{"save10", "save10", 325}}},
		},
		{
			"coupons among rules apply only when passed in",
			[]discount.Line{mugs(1)}, []discount.Rule{save10}, nil,
			discount.Result{SubtotalCents: 1250},
		},
		{
			"inactive rules take nothing",
			[]discount.Line{mugs(3)}, []discount.Rule{inactive(bxgy("b2g1", "mug", 2, 1)), inactive(threshold("any", 0, 50))}, nil,
			discount.Result{SubtotalCents: 3750},
		},
		{
			"combination: product rules, then threshold, then coupon, each on the subtotal",
			[]discount.Line{mugs(3), shirts(4)},
			[]discount.Rule{threshold("over100", 10000, 5), pctProduct("shirt15", "tshirt", 15), bxgy("b2g1", "mug", 2, 1)},
			&save10,
			discount.Result{SubtotalCents: 11750, DiscountCents: 1250 + 1200 + 587 + 1175, Applied: []discount.Applied{
				{"b2g1", "b2g1", 1250}, {"shirt15", "shirt15", 1200}, {"over100", "over100", 587}, {"save10", "save10", 1175},
			}},
		},
		{
			"order is by kind then id whatever the input order",
			[]discount.Line{mugs(1)},
			[]discount.Rule{threshold("b-all", 0, 1), pctProduct("z-mug", "mug", 1), threshold("a-all", 0, 1), pctProduct("a-mug", "mug", 1)},
			nil,
			discount.Result{SubtotalCents: 1250, DiscountCents: 48, Applied: []discount.Applied{
				{"a-mug", "a-mug", 12}, {"z-mug", "z-mug", 12}, {"a-all", "a-all", 12}, {"b-all", "b-all", 12},
			}},
		},
		{
			"total is capped at the subtotal; the crossing rule is cut, later ones omitted",
			[]discount.Line{mugs(1)},
			[]discount.Rule{pctProduct("a", "mug", 60), pctProduct("b", "mug", 60), threshold("c", 0, 10)},
			nil,
			discount.Result{SubtotalCents: 1250, DiscountCents: 1250, Applied: []discount.Applied{{"a", "a", 750}, {"b", "b", 500}}},
		},
		{
			"100 percent coupon on top of a product rule leaves nothing to pay, not less",
			[]discount.Line{mugs(2)}, []discount.Rule{pctProduct("mug50", "mug", 50)}, ptr(coupon("all", "ALL", 100, 0, 0)),
			discount.Result{SubtotalCents: 2500, DiscountCents: 2500, Applied: []discount.Applied{{"mug50", "mug50", 1250}, {"all", "all", 1250}}},
		},
		{
			"free products: zero price takes nothing",
			[]discount.Line{{ProductID: "mug", Quantity: 3, UnitPriceCents: 0}}, []discount.Rule{bxgy("b2g1", "mug", 2, 1), pctProduct("m", "mug", 50)}, nil,
			discount.Result{},
		},
		{
			"percent of a huge subtotal does not overflow",
			[]discount.Line{{ProductID: "gold", Quantity: 1, UnitPriceCents: math.MaxInt64}}, []discount.Rule{threshold("t", 0, 99)}, nil,
			discount.Result{SubtotalCents: math.MaxInt64, DiscountCents: math.MaxInt64/100*99 + 6, Applied: []discount.Applied{{"t", "t", math.MaxInt64/100*99 + 6}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := discount.Calculate(tc.lines, tc.rules, tc.coupon)
			if err != nil {
				t.Fatalf("Calculate: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Calculate (-want +got):\n%s", diff)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCalculateOverflow(t *testing.T) {
	tests := []struct {
		name  string
		lines []discount.Line
	}{
		{"line total", []discount.Line{{ProductID: "a", Quantity: 2, UnitPriceCents: math.MaxInt64/2 + 1}}},
		{"subtotal", []discount.Line{{ProductID: "a", Quantity: 1, UnitPriceCents: math.MaxInt64}, {ProductID: "b", Quantity: 1, UnitPriceCents: 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := discount.Calculate(tc.lines, nil, nil)
			if !errors.Is(err, discount.ErrOverflow) {
				t.Fatalf("Calculate = %v, want ErrOverflow", err)
			}
		})
	}
	if _, err := discount.Calculate([]discount.Line{{ProductID: "a", Quantity: -1, UnitPriceCents: 5}}, nil, nil); err == nil {
		t.Fatal("Calculate accepted a negative quantity")
	}
}

func TestFindCoupon(t *testing.T) {
	expired := coupon("old", "OLD", 10, 0, 0)
	expired.ExpiresAt = &yesterday
	later := coupon("later", "LATER", 10, 0, 0)
	later.ExpiresAt = &tomorrow
	atNow := coupon("now", "NOW", 10, 0, 0)
	atNow.ExpiresAt = &now
	rules := []discount.Rule{
		coupon("save10", "SAVE10", 10, 100, 99), coupon("gone", "GONE", 10, 3, 3), coupon("free", "FREE", 10, 0, 5000),
		inactive(coupon("off", "OFF", 10, 0, 0)), expired, later, atNow, pctProduct("mug", "mug", 10),
	}
	tests := []struct {
		code   string
		wantID string
		err    error
	}{
		{"SAVE10", "save10", nil},
		{"FREE", "free", nil}, // limit 0 = unlimited
		{"LATER", "later", nil},
		{"GONE", "", discount.ErrCouponUsedUp},
		{"OFF", "", discount.ErrCouponInactive},
		{"OLD", "", discount.ErrCouponExpired},
		{"NOW", "", discount.ErrCouponExpired}, // expires_at is exclusive
		{"NOPE", "", discount.ErrUnknownCoupon},
		{"", "", discount.ErrUnknownCoupon},
		{"save10", "", discount.ErrUnknownCoupon}, // codes are exact
	}
	for _, tc := range tests {
		t.Run(tc.code, func(t *testing.T) {
			r, err := discount.FindCoupon(rules, tc.code, now)
			if !errors.Is(err, tc.err) || r.ID != tc.wantID {
				t.Fatalf("FindCoupon(%q) = %q, %v; want %q, %v", tc.code, r.ID, err, tc.wantID, tc.err)
			}
		})
	}
}

func TestRuleValidate(t *testing.T) {
	valid := map[string]discount.Rule{
		"percent":   pctProduct("mug-10", "mug", 10),
		"bxgy":      bxgy("mug-b2g1", "mug", 2, 1),
		"threshold": threshold("over-100", 10000, 5),
		"coupon":    coupon("save10", "SAVE10", 10, 100, 0),
	}
	withExpiry := valid["coupon"]
	withExpiry.ExpiresAt = &tomorrow
	valid["coupon with expiry"] = withExpiry
	unlimited := valid["coupon"]
	unlimited.UsageLimit = 0
	valid["unlimited coupon"] = unlimited
	for name, r := range valid {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: Validate(%+v) = %v, want nil", name, r, err)
		}
	}

	edit := func(base string, fn func(r *discount.Rule)) discount.Rule {
		r := valid[base]
		fn(&r)
		return r
	}
	tests := []struct {
		name  string
		rule  discount.Rule
		field string
	}{
		{"no id", edit("percent", func(r *discount.Rule) { r.ID = "" }), "rule.rule_id"},
		{"bad id", edit("percent", func(r *discount.Rule) { r.ID = "a b" }), "rule.rule_id"},
		{"long id", edit("percent", func(r *discount.Rule) { r.ID = strings.Repeat("x", 65) }), "rule.rule_id"},
		{"long description", edit("percent", func(r *discount.Rule) { r.Description = strings.Repeat("x", 201) }), "rule.description"},
		{"no kind", edit("percent", func(r *discount.Rule) { r.Kind = "" }), "rule.kind"},
		{"percent 0", edit("percent", func(r *discount.Rule) { r.Percent = 0 }), "rule.percent"},
		{"percent 101", edit("threshold", func(r *discount.Rule) { r.Percent = 101 }), "rule.percent"},
		{"negative percent", edit("coupon", func(r *discount.Rule) { r.Percent = -5 }), "rule.percent"},
		{"product rule without product", edit("percent", func(r *discount.Rule) { r.ProductID = "" }), "rule.product_id"},
		{"bxgy without product", edit("bxgy", func(r *discount.Rule) { r.ProductID = "" }), "rule.product_id"},
		{"bxgy buy 0", edit("bxgy", func(r *discount.Rule) { r.BuyQuantity = 0 }), "rule.buy_quantity"},
		{"bxgy free 0", edit("bxgy", func(r *discount.Rule) { r.FreeQuantity = 0 }), "rule.free_quantity"},
		{"bxgy free huge", edit("bxgy", func(r *discount.Rule) { r.FreeQuantity = discount.MaxRuleQuantity + 1 }), "rule.free_quantity"},
		{"negative threshold", edit("threshold", func(r *discount.Rule) { r.ThresholdCents = -1 }), "rule.threshold_cents"},
		{"coupon without code", edit("coupon", func(r *discount.Rule) { r.CouponCode = "" }), "rule.coupon_code"},
		{"lower-case coupon", edit("coupon", func(r *discount.Rule) { r.CouponCode = "save10" }), "rule.coupon_code"},
		{"long coupon", edit("coupon", func(r *discount.Rule) { r.CouponCode = strings.Repeat("A", 33) }), "rule.coupon_code"},
		{"negative limit", edit("coupon", func(r *discount.Rule) { r.UsageLimit = -1 }), "rule.usage_limit"},
		{"coupon with a product", edit("coupon", func(r *discount.Rule) { r.ProductID = "mug" }), "rule.product_id"},
		{"product rule with a coupon code", edit("percent", func(r *discount.Rule) { r.CouponCode = "X" }), "rule.coupon_code"},
		{"bxgy with a percent", edit("bxgy", func(r *discount.Rule) { r.Percent = 10 }), "rule.percent"},
		{"threshold with an expiry", edit("threshold", func(r *discount.Rule) { r.ExpiresAt = &tomorrow }), "rule.expires_at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Validate()
			var fe *discount.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("Validate(%+v) = %v, want a field error on %s", tc.rule, err, tc.field)
			}
		})
	}
}

func TestValidateLines(t *testing.T) {
	tests := []struct {
		name  string
		lines []discount.Line
		field string // "" = valid
	}{
		{"valid", []discount.Line{{"mug", 1, 1250}, {"pen", discount.MaxQuantity, 0}}, ""},
		{"empty", nil, ""},
		{"no product", []discount.Line{{"", 1, 1}}, "lines[0].product_id"},
		{"zero quantity", []discount.Line{{"mug", 1, 1}, {"pen", 0, 1}}, "lines[1].quantity"},
		{"negative quantity", []discount.Line{{"mug", -3, 1}}, "lines[0].quantity"},
		{"too many units", []discount.Line{{"mug", discount.MaxQuantity + 1, 1}}, "lines[0].quantity"},
		{"negative price", []discount.Line{{"mug", 1, -1}}, "lines[0].unit_price_cents"},
		{"huge price", []discount.Line{{"mug", 1, discount.MaxUnitPriceCents + 1}}, "lines[0].unit_price_cents"},
		{"duplicate product", []discount.Line{{"mug", 1, 1}, {"mug", 2, 1}}, "lines[1].product_id"},
		{"too many lines", make([]discount.Line, discount.MaxLines+1), "lines"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := discount.ValidateLines(tc.lines)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("ValidateLines = %v, want nil", err)
				}
				return
			}
			var fe *discount.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("ValidateLines = %v, want a field error on %s", err, tc.field)
			}
		})
	}
}
