package cart_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eventshop/eventshop/services/cart/internal/cart"
)

var (
	mug   = cart.Product{ID: "mug", Name: "Mug", PriceCents: 1250}
	shirt = cart.Product{ID: "shirt", Name: "Shirt", PriceCents: 2000}
)

func open() *cart.Cart { return &cart.Cart{ID: "c1", UserID: "u1", Status: cart.StatusOpen} }

func fieldOf(err error) string {
	var fe *cart.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func TestAddItemAccumulatesAndBumpsVersion(t *testing.T) {
	c := open()
	if _, err := c.AddItem(mug, 2); err != nil {
		t.Fatal(err)
	}
	got, err := c.AddItem(mug, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := cart.Added{ProductID: "mug", Quantity: 3, LineQuantity: 5, UnitPriceCents: 1250}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Added (-want +got):\n%s", diff)
	}
	if c.Version != 2 || len(c.Lines) != 1 {
		t.Fatalf("version %d, %d lines; want 2, 1", c.Version, len(c.Lines))
	}
}

func TestAddItemRejects(t *testing.T) {
	tests := []struct {
		name  string
		setup func(c *cart.Cart)
		p     cart.Product
		qty   int32
		field string
		err   error
	}{
		{"zero", nil, mug, 0, "quantity", nil},
		{"negative", nil, mug, -1, "quantity", nil},
		{"over the bound", nil, mug, cart.MaxQuantity + 1, "quantity", nil},
		{"line over the bound", func(c *cart.Cart) { _, _ = c.AddItem(mug, 90) }, mug, 10, "quantity", nil},
		{"checked out", func(c *cart.Cart) { c.Status = cart.StatusCheckedOut }, mug, 1, "", cart.ErrCheckedOut},
		{"too many lines", func(c *cart.Cart) {
			for i := range cart.MaxLines {
				_, _ = c.AddItem(cart.Product{ID: "p" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26))}, 1)
			}
		}, mug, 1, "", cart.ErrTooManyLines},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := open()
			if tt.setup != nil {
				tt.setup(c)
			}
			before := *c
			before.Lines = append([]cart.Line(nil), c.Lines...)
			_, err := c.AddItem(tt.p, tt.qty)
			if err == nil {
				t.Fatal("AddItem accepted it")
			}
			if tt.field != "" && fieldOf(err) != tt.field {
				t.Fatalf("error %v names field %q, want %q", err, fieldOf(err), tt.field)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(before, *c); diff != "" {
				t.Fatalf("a rejected command changed the cart (-before +after):\n%s", diff)
			}
		})
	}
}

func TestRemoveSetQuantityAndCoupon(t *testing.T) {
	c := open()
	_, _ = c.AddItem(mug, 2)
	_, _ = c.AddItem(shirt, 1)
	ch, err := c.SetQuantity(cart.Product{ID: "mug", PriceCents: 1300}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if ch.OldQuantity != 2 || ch.NewQuantity != 4 || ch.UnitPriceCents != 1300 {
		t.Fatalf("SetQuantity = %+v", ch)
	}
	if _, err := c.SetQuantity(cart.Product{ID: "nope"}, 1); !errors.Is(err, cart.ErrLineNotFound) {
		t.Fatalf("SetQuantity on a missing line = %v", err)
	}
	n, err := c.RemoveItem("shirt")
	if err != nil || n != 1 {
		t.Fatalf("RemoveItem = %d, %v", n, err)
	}
	if _, err := c.RemoveItem("shirt"); !errors.Is(err, cart.ErrLineNotFound) {
		t.Fatalf("second RemoveItem = %v", err)
	}
	if err := c.ApplyCoupon("save10"); fieldOf(err) != "coupon_code" {
		t.Fatalf("lower-case coupon accepted: %v", err)
	}
	if err := c.ApplyCoupon("SAVE10"); err != nil {
		t.Fatal(err)
	}
	if c.Version != 5 {
		t.Fatalf("version %d, want 5 (2 adds, set, remove, coupon)", c.Version)
	}
}

func TestCheckout(t *testing.T) {
	c := open()
	if _, err := c.Checkout(nil); !errors.Is(err, cart.ErrCartEmpty) {
		t.Fatalf("empty checkout = %v, want ErrCartEmpty", err)
	}
	_, _ = c.AddItem(mug, 2)
	_, _ = c.AddItem(shirt, 1)
	_ = c.ApplyCoupon("SAVE10")
	snap, err := c.Checkout(map[string]int64{"shirt": 2500})
	if err != nil {
		t.Fatal(err)
	}
	want := cart.Snapshot{
		Lines:         []cart.Line{{ProductID: "mug", Quantity: 2, UnitPriceCents: 1250}, {ProductID: "shirt", Quantity: 1, UnitPriceCents: 2500}},
		CouponCode:    "SAVE10",
		SubtotalCents: 2*1250 + 2500,
	}
	if diff := cmp.Diff(want, snap); diff != "" {
		t.Fatalf("snapshot (-want +got):\n%s", diff)
	}
	if c.Status != cart.StatusCheckedOut {
		t.Fatal("cart still open after checkout")
	}
	if _, err := c.AddItem(mug, 1); !errors.Is(err, cart.ErrCheckedOut) {
		t.Fatalf("AddItem after checkout = %v", err)
	}
}

func TestSubtotalStaysWithinInt64(t *testing.T) {
	c := open()
	for i := range cart.MaxLines {
		if _, err := c.AddItem(cart.Product{ID: "p" + string(rune('a'+i%26)) + string(rune('a'+i/26)), PriceCents: cart.MaxPriceCents}, cart.MaxQuantity); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := c.Subtotal()
	if err != nil || sub != int64(cart.MaxLines)*cart.MaxQuantity*cart.MaxPriceCents {
		t.Fatalf("Subtotal = %d, %v", sub, err)
	}
	c.Lines[0].UnitPriceCents = 1 << 62 // corrupt data must not wrap around
	if _, err := c.Subtotal(); err == nil {
		t.Fatal("overflowing subtotal accepted")
	}
	if _, err := open().AddItem(cart.Product{ID: "x", PriceCents: cart.MaxPriceCents + 1}, 1); err == nil {
		t.Fatal("out-of-range price accepted")
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"sku-123", true},
		{"", false},
		{strings.Repeat("a", cart.MaxIDLength), true},
		{strings.Repeat("a", cart.MaxIDLength+1), false},
		{"tasse-café", false},
		{"a b", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		err := cart.ValidateID("product_id", tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
		if err != nil && fieldOf(err) != "product_id" {
			t.Errorf("ValidateID(%q) error does not name the field: %v", tt.id, err)
		}
	}
}
