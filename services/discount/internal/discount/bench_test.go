package discount_test

import (
	"testing"

	"github.com/eventshop/eventshop/services/discount/internal/discount"
)

// BenchmarkCalculate evaluates every kind of rule on a four-line cart with a coupon: the
// work done for every cart change the discount service consumes.
func BenchmarkCalculate(b *testing.B) {
	lines := []discount.Line{{ProductID: "mug", Quantity: 3, UnitPriceCents: 1250}, {ProductID: "tshirt", Quantity: 2, UnitPriceCents: 2000},
		{ProductID: "poster", Quantity: 1, UnitPriceCents: 999}, {ProductID: "pen", Quantity: 10, UnitPriceCents: 250}}
	rules := []discount.Rule{
		{ID: "mug20", Description: "mug20", Kind: discount.PercentOffProduct, ProductID: "mug", Percent: 20, Active: true},
		{ID: "pen-b3g1", Description: "pen-b3g1", Kind: discount.BuyXGetY, ProductID: "pen", BuyQuantity: 3, FreeQuantity: 1, Active: true},
		{ID: "over50", Description: "over50", Kind: discount.OrderThreshold, ThresholdCents: 5000, Percent: 5, Active: true},
	}
	coupon := discount.Rule{ID: "save10", Description: "save10", Kind: discount.Coupon, CouponCode: "SAVE10", Percent: 10, UsageLimit: 100, Active: true}
	for b.Loop() {
		r, err := discount.Calculate(lines, rules, &coupon)
		if err != nil {
			b.Fatal(err)
		}
		if r.DiscountCents <= 0 || r.DiscountCents > r.SubtotalCents {
			b.Fatalf("discount %d of %d", r.DiscountCents, r.SubtotalCents)
		}
	}
}

// BenchmarkFindCoupon looks a coupon code up among the rules, as ApplyCoupon does.
func BenchmarkFindCoupon(b *testing.B) {
	var rules []discount.Rule
	for _, code := range []string{"WELCOME", "SPRING", "SAVE10", "VIP", "BLACKFRIDAY"} {
		rules = append(rules, discount.Rule{ID: code, Description: code, Kind: discount.Coupon, CouponCode: code, Percent: 10, Active: true})
	}
	for b.Loop() {
		if _, err := discount.FindCoupon(rules, "VIP", now); err != nil {
			b.Fatal(err)
		}
	}
}
