// Package events builds the inventory's envelopes (inventory.events.v1 per cart,
// inventory.products.v1 per product) and turns consumed cart events into stock
// commands, each applied exactly once through idempotency.Handler.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/inventory/internal/stock"
	"github.com/eventshop/eventshop/services/inventory/internal/store"
)

// Source is the CloudEvents source of every inventory event.
const Source = "eventshop/inventory"

// The inventory event builders leave AggregateVersion to the caller, which numbers the
// cart's events as it publishes them.
func inventory(cartID string) *inventorypb.InventoryEvent {
	return &inventorypb.InventoryEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: cartID}
}

// Reserved announces a successful reservation for the cart.
func Reserved(cartID, productID string, qty, availableAfter int32) *inventorypb.InventoryEvent {
	e := inventory(cartID)
	e.Payload = &inventorypb.InventoryEvent_StockReserved{StockReserved: &inventorypb.StockReserved{
		ProductId: productID, Quantity: qty, AvailableAfter: availableAfter}}
	return e
}

// Rejected announces a reservation that could not be met (checkoutID is empty while the
// cart is edited).
func Rejected(cartID string, s stock.Shortfall, checkoutID string) *inventorypb.InventoryEvent {
	e := inventory(cartID)
	e.Payload = &inventorypb.InventoryEvent_ReservationRejected{ReservationRejected: &inventorypb.ReservationRejected{
		ProductId: s.ProductID, Requested: s.Requested, Available: s.Available, CheckoutId: checkoutID}}
	return e
}

// Released announces held stock going back to available.
func Released(cartID, productID string, qty int32, reason stock.ReleaseReason) *inventorypb.InventoryEvent {
	r := inventorypb.ReleaseReason_RELEASE_REASON_UNSPECIFIED
	switch reason {
	case stock.ReasonItemRemoved:
		r = inventorypb.ReleaseReason_RELEASE_REASON_ITEM_REMOVED
	case stock.ReasonQuantityDecreased:
		r = inventorypb.ReleaseReason_RELEASE_REASON_QUANTITY_DECREASED
	case stock.ReasonExpired:
		r = inventorypb.ReleaseReason_RELEASE_REASON_EXPIRED
	}
	e := inventory(cartID)
	e.Payload = &inventorypb.InventoryEvent_StockReleased{StockReleased: &inventorypb.StockReleased{ProductId: productID, Quantity: qty, Reason: r}}
	return e
}

// Committed announces a checkout whose lines were sold.
func Committed(cartID, checkoutID string, lines []stock.Line) *inventorypb.InventoryEvent {
	c := &inventorypb.StockCommitted{CheckoutId: checkoutID, Lines: make([]*inventorypb.CommittedLine, len(lines))}
	for i, l := range lines {
		c.Lines[i] = &inventorypb.CommittedLine{ProductId: l.ProductID, Quantity: l.Quantity}
	}
	e := inventory(cartID)
	e.Payload = &inventorypb.InventoryEvent_StockCommitted{StockCommitted: c}
	return e
}

// Snapshot is the product event announcing p at its version.
func Snapshot(p store.Product) *inventorypb.ProductEvent {
	return &inventorypb.ProductEvent{
		EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: p.ID, AggregateVersion: p.Version,
		Payload: &inventorypb.ProductEvent_ProductSnapshot{ProductSnapshot: &inventorypb.ProductSnapshot{
			ProductId: p.ID, Name: p.Name, PriceCents: p.PriceCents, Available: p.Available, UpdatedAt: timestamppb.New(p.UpdatedAt),
		}},
	}
}

// Stock is what the cart-event consumer does to stock; every method runs inside the
// consumer's transaction (which also records the event as processed).
type Stock interface {
	// Retarget brings the cart's hold of a product to target units.
	Retarget(ctx context.Context, tx *sqlx.Tx, cartID, productID string, target int32) error
	// Checkout settles the cart's holds against the checkout's lines.
	Checkout(ctx context.Context, tx *sqlx.Tx, cartID, checkoutID string, lines []stock.Line) error
	// Touch notes a cart change that moves no stock (the hold time restarts).
	Touch(ctx context.Context, tx *sqlx.Tx, cartID string) error
}

// CartHandler consumes cart.events.v1 for group: each event is decoded, deduplicated
// and version-checked by idempotency.Handler and applied to st in the same transaction.
// Content no cart would send (a bad product id, a quantity out of bounds) is permanent:
// the runner dead-letters it and the partition moves on.
func CartHandler(db *sqlx.DB, group, cartTopic string, st Stock, log *slog.Logger) kafka.Handler {
	newEnv := func(topic string) (*cartpb.CartEvent, bool) {
		if topic != cartTopic {
			return nil, false
		}
		return &cartpb.CartEvent{}, true
	}
	return idempotency.Handler(db, idempotency.HandlerConfig{Consumer: group, Log: log}, newEnv,
		func(ctx context.Context, tx *sqlx.Tx, e *cartpb.CartEvent, _ kafka.Message) error {
			return apply(ctx, tx, st, e)
		})
}

// apply validates a cart event and asks st for what it means. Invalid content is
// returned as a permanent error (the transaction rolls back, the event is dead-lettered).
func apply(ctx context.Context, tx *sqlx.Tx, st Stock, e *cartpb.CartEvent) error {
	cartID := e.GetAggregateId()
	invalid := func(err error) error {
		return kafka.Permanent(fmt.Errorf("cart event %s of cart %q: %w", e.GetEventId(), cartID, err))
	}
	if err := stock.ValidateID("aggregate_id", cartID); err != nil {
		return invalid(err)
	}
	switch p := e.GetPayload().(type) {
	case *cartpb.CartEvent_ItemAdded:
		ia := p.ItemAdded
		if err := errors.Join(stock.ValidateID("product_id", ia.GetProductId()), stock.ValidateQuantity("line_quantity", ia.GetLineQuantity())); err != nil {
			return invalid(err)
		}
		return st.Retarget(ctx, tx, cartID, ia.GetProductId(), ia.GetLineQuantity())
	case *cartpb.CartEvent_ItemQuantityChanged:
		qc := p.ItemQuantityChanged
		if err := errors.Join(stock.ValidateID("product_id", qc.GetProductId()), stock.ValidateQuantity("new_quantity", qc.GetNewQuantity())); err != nil {
			return invalid(err)
		}
		return st.Retarget(ctx, tx, cartID, qc.GetProductId(), qc.GetNewQuantity())
	case *cartpb.CartEvent_ItemRemoved:
		if err := stock.ValidateID("product_id", p.ItemRemoved.GetProductId()); err != nil {
			return invalid(err)
		}
		return st.Retarget(ctx, tx, cartID, p.ItemRemoved.GetProductId(), 0)
	case *cartpb.CartEvent_CheckedOut:
		co := p.CheckedOut
		lines := make([]stock.Line, len(co.GetLines()))
		for i, l := range co.GetLines() {
			lines[i] = stock.Line{ProductID: l.GetProductId(), Quantity: l.GetQuantity()}
		}
		if err := errors.Join(stock.ValidateID("checkout_id", co.GetCheckoutId()), stock.ValidateLines(lines)); err != nil {
			return invalid(err)
		}
		return st.Checkout(ctx, tx, cartID, co.GetCheckoutId(), lines)
	case *cartpb.CartEvent_CouponApplied:
		return st.Touch(ctx, tx, cartID)
	}
	// Decode skips unknown kinds, so this is a payload added to the proto but not here.
	return invalid(fmt.Errorf("payload %T has no stock rule", e.GetPayload()))
}
