package discount_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/services/discount/internal/discount"
)

func TestCartLines(t *testing.T) {
	c := discount.Cart{ID: "c1", Status: discount.StatusOpen}
	c.SetLine(discount.Line{ProductID: "pen", Quantity: 1, UnitPriceCents: 250})
	c.SetLine(discount.Line{ProductID: "mug", Quantity: 2, UnitPriceCents: 1250})
	c.SetLine(discount.Line{ProductID: "pen", Quantity: 3, UnitPriceCents: 240})
	c.RemoveLine("nothing")
	want := []discount.Line{{"mug", 2, 1250}, {"pen", 3, 240}}
	if diff := cmp.Diff(want, c.Lines); diff != "" {
		t.Fatalf("lines (-want +got):\n%s", diff)
	}
	c.RemoveLine("mug")
	if diff := cmp.Diff([]discount.Line{{"pen", 3, 240}}, c.Lines); diff != "" {
		t.Fatalf("after remove (-want +got):\n%s", diff)
	}
	snapshot := []discount.Line{{"tshirt", 1, 2000}, {"cap", 2, 1800}}
	c.Replace(snapshot, "SAVE10")
	if diff := cmp.Diff([]discount.Line{{"cap", 2, 1800}, {"tshirt", 1, 2000}}, c.Lines); diff != "" {
		t.Fatalf("after replace (-want +got):\n%s", diff)
	}
	if c.Status != discount.StatusCheckedOut || c.CouponCode != "SAVE10" || snapshot[0].ProductID != "tshirt" {
		t.Fatalf("Replace: status %s coupon %q, snapshot changed: %v", c.Status, c.CouponCode, snapshot)
	}
	if v1, v2 := c.NextVersion(), c.NextVersion(); v1 != 1 || v2 != 2 || c.Version != 2 {
		t.Fatalf("NextVersion gave %d, %d (version %d), want 1, 2", v1, v2, c.Version)
	}
}
