package events

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	"github.com/eventshop/eventshop/services/inventory/internal/stock"
)

// recorder is a Stock that writes down what it was asked.
type recorder struct{ calls []string }

func (r *recorder) Retarget(_ context.Context, _ *sqlx.Tx, cartID, productID string, target int32) error {
	r.calls = append(r.calls, fmt.Sprintf("retarget %s %s %d", cartID, productID, target))
	return nil
}

func (r *recorder) Checkout(_ context.Context, _ *sqlx.Tx, cartID, checkoutID string, lines []stock.Line) error {
	r.calls = append(r.calls, fmt.Sprintf("checkout %s %s %v", cartID, checkoutID, lines))
	return nil
}

func (r *recorder) Touch(_ context.Context, _ *sqlx.Tx, cartID string) error {
	r.calls = append(r.calls, "touch "+cartID)
	return nil
}

func cartEvent(cart string, payload any) *cartpb.CartEvent {
	e := &cartpb.CartEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cart, AggregateVersion: 1}
	switch p := payload.(type) {
	case *cartpb.ItemAdded:
		e.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: p}
	case *cartpb.ItemQuantityChanged:
		e.Payload = &cartpb.CartEvent_ItemQuantityChanged{ItemQuantityChanged: p}
	case *cartpb.ItemRemoved:
		e.Payload = &cartpb.CartEvent_ItemRemoved{ItemRemoved: p}
	case *cartpb.CheckedOut:
		e.Payload = &cartpb.CartEvent_CheckedOut{CheckedOut: p}
	case *cartpb.CouponApplied:
		e.Payload = &cartpb.CartEvent_CouponApplied{CouponApplied: p}
	}
	return e
}

func TestApplyTurnsCartEventsIntoTargets(t *testing.T) {
	tests := []struct {
		name string
		ev   *cartpb.CartEvent
		want string
	}{
		{"added targets the line quantity", cartEvent("c1", &cartpb.ItemAdded{ProductId: "mug", Quantity: 2, LineQuantity: 5}), "retarget c1 mug 5"},
		{"quantity change targets the new quantity", cartEvent("c1", &cartpb.ItemQuantityChanged{ProductId: "mug", OldQuantity: 5, NewQuantity: 1}), "retarget c1 mug 1"},
		{"removal targets zero", cartEvent("c1", &cartpb.ItemRemoved{ProductId: "mug", Quantity: 5}), "retarget c1 mug 0"},
		{"checkout passes the lines", cartEvent("c1", &cartpb.CheckedOut{CheckoutId: "co-1", Lines: []*cartpb.CartLine{{ProductId: "mug", Quantity: 2}, {ProductId: "cap", Quantity: 1}}}),
			"checkout c1 co-1 [{mug 2} {cap 1}]"},
		{"coupon touches the cart", cartEvent("c1", &cartpb.CouponApplied{CouponCode: "X"}), "touch c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			if err := apply(context.Background(), nil, &r, tt.ev); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{tt.want}, r.calls); diff != "" {
				t.Fatalf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyRejectsInvalidContentAsPermanent(t *testing.T) {
	tests := []struct {
		name  string
		ev    *cartpb.CartEvent
		field string
	}{
		{"negative line quantity", cartEvent("c1", &cartpb.ItemAdded{ProductId: "mug", LineQuantity: -1}), "line_quantity"},
		{"zero line quantity", cartEvent("c1", &cartpb.ItemAdded{ProductId: "mug"}), "line_quantity"},
		{"huge line quantity", cartEvent("c1", &cartpb.ItemAdded{ProductId: "mug", LineQuantity: stock.MaxQuantity + 1}), "line_quantity"},
		{"missing product", cartEvent("c1", &cartpb.ItemAdded{LineQuantity: 1}), "product_id"},
		{"zero new quantity", cartEvent("c1", &cartpb.ItemQuantityChanged{ProductId: "mug"}), "new_quantity"},
		{"removal without product", cartEvent("c1", &cartpb.ItemRemoved{}), "product_id"},
		{"checkout without id", cartEvent("c1", &cartpb.CheckedOut{Lines: []*cartpb.CartLine{{ProductId: "mug", Quantity: 1}}}), "checkout_id"},
		{"checkout without lines", cartEvent("c1", &cartpb.CheckedOut{CheckoutId: "co"}), "lines"},
		{"checkout with a bad line", cartEvent("c1", &cartpb.CheckedOut{CheckoutId: "co", Lines: []*cartpb.CartLine{{ProductId: "mug", Quantity: -3}}}), "lines[0].quantity"},
		{"bad cart id", cartEvent("a cart", &cartpb.CouponApplied{}), "aggregate_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			err := apply(context.Background(), nil, &r, tt.ev)
			if !kafka.IsPermanent(err) || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("apply = %v, want a permanent error naming %s", err, tt.field)
			}
			if len(r.calls) != 0 {
				t.Fatalf("invalid event reached the stock: %v", r.calls)
			}
		})
	}
}
