package app_test

import (
	"testing"
	"time"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/testkit"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
)

func (h *harness) publishEnv(t *testing.T, topic string, env envelope.Envelope) {
	t.Helper()
	ctx := testkit.Context(t, 10*time.Second)
	m, err := envelope.Encode(ctx, topic, "test", env)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.producer.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestGetCartShowsStockProblemsAndDiscount: inventory and discount events about a cart
// (flow step 5) appear in GetCart, and a discount computed for an older subtotal does not.
func TestGetCartShowsStockProblemsAndDiscount(t *testing.T) {
	h := start(t)
	added, err := h.client.AddItem(grpcCtx(t, h, "ivy"), &cartpb.AddItemRequest{ProductId: "poster", Quantity: 3})
	if err != nil {
		t.Fatal(err)
	}
	cartID := added.GetCart().GetCartId()
	inv := func(v int64, p any) *inventorypb.InventoryEvent {
		e := &inventorypb.InventoryEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cartID, AggregateVersion: v}
		switch x := p.(type) {
		case *inventorypb.ReservationRejected:
			e.Payload = &inventorypb.InventoryEvent_ReservationRejected{ReservationRejected: x}
		case *inventorypb.StockReserved:
			e.Payload = &inventorypb.InventoryEvent_StockReserved{StockReserved: x}
		}
		return e
	}
	disc := &discountpb.DiscountEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cartID, AggregateVersion: 1,
		Payload: &discountpb.DiscountEvent_DiscountCalculated{DiscountCalculated: &discountpb.DiscountCalculated{SubtotalCents: 3 * 999, DiscountCents: 300}}}
	h.publishEnv(t, h.cfg.InventoryTopic, inv(1, &inventorypb.ReservationRejected{ProductId: "poster", Requested: 3, Available: 2}))
	h.publishEnv(t, h.cfg.DiscountTopic, disc)

	get := func() *cartpb.Cart {
		r, err := h.client.GetCart(grpcCtx(t, h, "ivy"), &cartpb.GetCartRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetCart()
	}
	testkit.Eventually(t, 30*time.Second, "problem and discount in GetCart", func() bool {
		c := get()
		return len(c.GetProblems()) == 1 && c.GetDiscountCents() == 300
	})
	c := get()
	if c.GetProblems()[0].GetProductId() != "poster" || c.GetTotalCents() != 3*999-300 {
		t.Fatalf("cart = %v", c)
	}

	h.publishEnv(t, h.cfg.InventoryTopic, inv(2, &inventorypb.StockReserved{ProductId: "poster", Quantity: 3}))
	testkit.Eventually(t, 30*time.Second, "problem cleared", func() bool { return len(get().GetProblems()) == 0 })

	// The cart changes: the old discount no longer applies until a new figure arrives.
	if _, err := h.client.SetQuantity(grpcCtx(t, h, "ivy"), &cartpb.SetQuantityRequest{ProductId: "poster", Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if c := get(); c.GetDiscountCents() != 0 || c.GetTotalCents() != 999 {
		t.Fatalf("stale discount applied: %v", c)
	}
}
