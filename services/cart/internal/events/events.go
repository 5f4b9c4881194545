// Package events turns the cart's domain changes into cart.events.v1 envelopes and
// applies inventory.products.v1 snapshots to the catalog read model.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/kafka"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/cart/internal/cart"
	"github.com/eventshop/eventshop/services/cart/internal/store"
)

// Source is the CloudEvents source of every cart event.
const Source = "eventshop/cart"

func newEvent(c *cart.Cart) *cartpb.CartEvent {
	return &cartpb.CartEvent{
		EventId:          envelope.NewID(),
		OccurredAt:       envelope.Now(),
		AggregateId:      c.ID,
		AggregateVersion: c.Version,
	}
}

// ItemAdded is the event of an AddItem on c (c already changed).
func ItemAdded(c *cart.Cart, a cart.Added) *cartpb.CartEvent {
	e := newEvent(c)
	e.Payload = &cartpb.CartEvent_ItemAdded{ItemAdded: &cartpb.ItemAdded{
		UserId: c.UserID, ProductId: a.ProductID, Quantity: a.Quantity, LineQuantity: a.LineQuantity, UnitPriceCents: a.UnitPriceCents,
	}}
	return e
}

// ItemRemoved is the event of a RemoveItem on c.
func ItemRemoved(c *cart.Cart, productID string, qty int32) *cartpb.CartEvent {
	e := newEvent(c)
	e.Payload = &cartpb.CartEvent_ItemRemoved{ItemRemoved: &cartpb.ItemRemoved{UserId: c.UserID, ProductId: productID, Quantity: qty}}
	return e
}

// ItemQuantityChanged is the event of a SetQuantity on c.
func ItemQuantityChanged(c *cart.Cart, ch cart.QuantityChanged) *cartpb.CartEvent {
	e := newEvent(c)
	e.Payload = &cartpb.CartEvent_ItemQuantityChanged{ItemQuantityChanged: &cartpb.ItemQuantityChanged{
		UserId: c.UserID, ProductId: ch.ProductID, OldQuantity: ch.OldQuantity, NewQuantity: ch.NewQuantity, UnitPriceCents: ch.UnitPriceCents,
	}}
	return e
}

// CouponApplied is the event of an ApplyCoupon on c.
func CouponApplied(c *cart.Cart) *cartpb.CartEvent {
	e := newEvent(c)
	e.Payload = &cartpb.CartEvent_CouponApplied{CouponApplied: &cartpb.CouponApplied{UserId: c.UserID, CouponCode: c.CouponCode}}
	return e
}

// CheckedOut is the event of a Checkout on c, with the full snapshot.
func CheckedOut(c *cart.Cart, s cart.Snapshot, checkoutID string) *cartpb.CartEvent {
	lines := make([]*cartpb.CartLine, len(s.Lines))
	for i, l := range s.Lines {
		lines[i] = &cartpb.CartLine{ProductId: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, LineTotalCents: l.Total()}
	}
	e := newEvent(c)
	e.Payload = &cartpb.CartEvent_CheckedOut{CheckedOut: &cartpb.CheckedOut{
		UserId: c.UserID, Lines: lines, CouponCode: s.CouponCode, SubtotalCents: s.SubtotalCents, CheckoutId: checkoutID,
	}}
	return e
}

// CatalogHandler applies product snapshots to the catalog read model. Snapshots are
// versioned per product, so duplicates and stale ones are skipped by the version check.
func CatalogHandler(st *store.PG, log *slog.Logger) kafka.Handler {
	return func(ctx context.Context, m kafka.Message) error {
		var ev inventorypb.ProductEvent
		if err := envelope.Decode(m, &ev); err != nil {
			if errors.Is(err, envelope.ErrUnknownPayload) {
				log.Warn("skipping unknown product event kind", "event_id", ev.GetEventId())
				return nil
			}
			return err
		}
		snap := ev.GetProductSnapshot()
		if snap == nil {
			return nil
		}
		if err := cart.ValidateID("product_id", snap.GetProductId()); err != nil || snap.GetPriceCents() < 0 || snap.GetPriceCents() > cart.MaxPriceCents {
			return kafka.Permanent(fmt.Errorf("invalid product snapshot %q (price %d): %w", snap.GetProductId(), snap.GetPriceCents(), err))
		}
		updated := ev.GetOccurredAt().AsTime()
		if snap.GetUpdatedAt() != nil {
			updated = snap.GetUpdatedAt().AsTime()
		}
		_, err := st.UpsertProduct(ctx, store.CatalogEntry{
			ProductID: snap.GetProductId(), Name: snap.GetName(), PriceCents: snap.GetPriceCents(),
			Available: snap.GetAvailable(), Version: ev.GetAggregateVersion(), UpdatedAt: updated.UTC(),
		})
		return err
	}
}
