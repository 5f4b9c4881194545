package cart

import (
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzValidation drives a cart through a script of commands built from fuzz bytes (ids,
// quantities and prices far outside the limits included) and checks after every step that
// a rejected command changed nothing, an accepted one bumped the version by exactly one,
// and the cart stays within its limits. The validators never panic and accept only what
// they promise.
func FuzzValidation(f *testing.F) {
	f.Add([]byte{0, 0, 2, 5, 2, 1, 3, 3, 0, 1, 0, 4, 4, 0, 0, 5, 0, 0}, "mug", "SAVE10")
	f.Add([]byte{0, 1, 99, 0, 1, 1, 2, 1, 0, 5, 0, 0}, "", "lower")
	f.Add([]byte{0, 2, 0x80, 2, 2, 0x7f, 0, 3, 50, 7}, "a b", "X")
	f.Fuzz(func(t *testing.T, script []byte, id, coupon string) {
		if err := ValidateID("product_id", id); err == nil && (id == "" || len(id) > MaxIDLength || !utf8.ValidString(id) || !idPattern.MatchString(id)) {
			t.Fatalf("ValidateID accepted %q", id)
		}
		if err := ValidateCoupon(coupon); err == nil && (len(coupon) > MaxCouponLen || !couponPattern.MatchString(coupon)) {
			t.Fatalf("ValidateCoupon accepted %q", coupon)
		}
		ids := []string{"mug", "tshirt", id}
		c := &Cart{ID: "c1", UserID: "u1", Status: StatusOpen}
		for i := 0; i+2 < len(script); i += 3 {
			op, pid, n := script[i], ids[int(script[i+1])%len(ids)], int32(int8(script[i+2]))
			price := int64(n) * 1_000_003 // negative, zero and above MaxPriceCents all occur
			before := clone(c)
			var err error
			if ValidateID("product_id", pid) != nil {
				continue // the service rejects the id before the domain sees it
			}
			switch op % 6 {
			case 0:
				_, err = c.AddItem(Product{ID: pid, PriceCents: price}, n)
			case 1:
				_, err = c.SetQuantity(Product{ID: pid, PriceCents: price}, n)
			case 2:
				_, err = c.RemoveItem(pid)
			case 3:
				err = c.ApplyCoupon(coupon)
			case 4:
				_, err = c.Checkout(map[string]int64{pid: price})
			case 5:
				_, err = c.Subtotal()
				if err == nil {
					continue // a query: no version change either way
				}
			}
			if err != nil {
				if !reflect.DeepEqual(before, c) {
					t.Fatalf("op %d failed (%v) but changed the cart:\nbefore %+v\nafter  %+v", op%6, err, before, c)
				}
				continue
			}
			if c.Version != before.Version+1 {
				t.Fatalf("op %d succeeded: version %d -> %d, want +1", op%6, before.Version, c.Version)
			}
			checkLimits(t, c)
		}
	})
}

func clone(c *Cart) *Cart {
	cp := *c
	cp.Lines = slices.Clone(c.Lines)
	return &cp
}

func checkLimits(t *testing.T, c *Cart) {
	t.Helper()
	if len(c.Lines) > MaxLines {
		t.Fatalf("%d lines, limit %d", len(c.Lines), MaxLines)
	}
	seen := map[string]bool{}
	for _, l := range c.Lines {
		if l.Quantity < 1 || l.Quantity > MaxQuantity || seen[l.ProductID] {
			t.Fatalf("line out of limits or repeated: %+v", l)
		}
		if c.Status == StatusOpen && (l.UnitPriceCents < 0 || l.UnitPriceCents > MaxPriceCents) {
			t.Fatalf("line price out of limits: %+v", l)
		}
		seen[l.ProductID] = true
	}
	if c.CouponCode != "" && ValidateCoupon(c.CouponCode) != nil {
		t.Fatalf("coupon %q stored", c.CouponCode)
	}
}
