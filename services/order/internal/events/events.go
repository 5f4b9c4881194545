// Package events applies cart, inventory and discount events to orders and turns order
// changes into order.events.v1 envelopes, published through the outbox in the same
// transaction as the change.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/outbox"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	orderpb "github.com/eventshop/eventshop/proto/eventshop/order/v1"
	"github.com/eventshop/eventshop/services/order/internal/order"
	"github.com/eventshop/eventshop/services/order/internal/store"
)

// Source is the CloudEvents source of every order event.
const Source = "eventshop/order"

// Topics names the topics the order service reads and writes.
type Topics struct {
	Cart, Inventory, Discount string // consumed
	Order                     string // published
}

func newEvent(o order.Order) *orderpb.OrderEvent {
	return &orderpb.OrderEvent{EventId: envelope.NewID(), OccurredAt: envelope.Now(), AggregateId: o.ID, AggregateVersion: o.Version}
}

// OrderPlaced is the event of a new order.
func OrderPlaced(o order.Order) *orderpb.OrderEvent {
	lines := make([]*orderpb.OrderLine, len(o.Lines))
	for i, l := range o.Lines {
		lines[i] = &orderpb.OrderLine{ProductId: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, LineTotalCents: l.Total()}
	}
	e := newEvent(o)
	e.Payload = &orderpb.OrderEvent_OrderPlaced{OrderPlaced: &orderpb.OrderPlaced{
		OrderId: o.ID, UserId: o.UserID, CartId: o.CartID, CheckoutId: o.CheckoutID, Lines: lines, SubtotalCents: o.SubtotalCents,
	}}
	return e
}

// Decided is the event of a decided order: OrderConfirmed or OrderRejected.
func Decided(o order.Order) (*orderpb.OrderEvent, error) {
	e := newEvent(o)
	switch o.Status {
	case order.StatusConfirmed:
		e.Payload = &orderpb.OrderEvent_OrderConfirmed{OrderConfirmed: &orderpb.OrderConfirmed{
			OrderId: o.ID, SubtotalCents: o.SubtotalCents, DiscountCents: o.DiscountCents, TotalCents: o.TotalCents,
		}}
	case order.StatusRejected:
		e.Payload = &orderpb.OrderEvent_OrderRejected{OrderRejected: &orderpb.OrderRejected{OrderId: o.ID, Reason: o.Reason}}
	default:
		return nil, fmt.Errorf("order %s is %s, not decided", o.ID, o.Status)
	}
	return e, nil
}

// Consumer applies the events of the order consumer group.
type Consumer struct {
	st     *store.PG
	topics Topics
	log    *slog.Logger
	now    func() time.Time
}

// NewConsumer returns the consumer of the cart, inventory and discount topics.
func NewConsumer(st *store.PG, topics Topics, log *slog.Logger) *Consumer {
	return &Consumer{st: st, topics: topics, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// Handler is the kafka.Handler of consumer group group: every event is deduplicated and
// applied in one transaction with its effect (see idempotency.Handler).
func (c *Consumer) Handler(db *sqlx.DB, group string) kafka.Handler {
	return idempotency.Handler(db, idempotency.HandlerConfig{Consumer: group, Log: c.log}, c.newEnv, c.apply)
}

func (c *Consumer) newEnv(topic string) (envelope.Envelope, bool) {
	switch topic {
	case c.topics.Cart:
		return &cartpb.CartEvent{}, true
	case c.topics.Inventory:
		return &inventorypb.InventoryEvent{}, true
	case c.topics.Discount:
		return &discountpb.DiscountEvent{}, true
	}
	return nil, false
}

func (c *Consumer) apply(ctx context.Context, tx *sqlx.Tx, env envelope.Envelope, _ kafka.Message) error {
	var err error
	switch e := env.(type) {
	case *cartpb.CartEvent:
		if co := e.GetCheckedOut(); co != nil {
			err = c.checkedOut(ctx, tx, e.GetAggregateId(), co)
		}
	case *inventorypb.InventoryEvent:
		err = c.inventory(ctx, tx, e)
	case *discountpb.DiscountEvent:
		err = c.discount(ctx, tx, e)
	default: // newEnv returned a type this switch does not know: a bug, not worth retrying
		return kafka.Permanent(fmt.Errorf("no effect for envelope %T", env))
	}
	var fe *order.FieldError
	if errors.As(err, &fe) {
		return kafka.Permanent(fmt.Errorf("invalid %s event %s: %w", env.ProtoReflect().Descriptor().Name(), env.GetEventId(), err))
	}
	return err
}

// checkedOut creates the checkout's order, unless it has one, and decides it at once if
// the outcomes arrived first.
func (c *Consumer) checkedOut(ctx context.Context, tx *sqlx.Tx, cartID string, co *cartpb.CheckedOut) error {
	snap := order.Checkout{CheckoutID: co.GetCheckoutId(), CartID: cartID, UserID: co.GetUserId(), SubtotalCents: co.GetSubtotalCents(),
		Lines: make([]order.SnapshotLine, len(co.GetLines()))}
	for i, l := range co.GetLines() {
		snap.Lines[i] = order.SnapshotLine{Line: order.Line{ProductID: l.GetProductId(), Quantity: l.GetQuantity(), UnitPriceCents: l.GetUnitPriceCents()},
			TotalCents: l.GetLineTotalCents()}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new order id: %w", err)
	}
	o, err := order.Place(id.String(), snap, c.now())
	if err != nil {
		return err
	}
	if err := c.st.LockCheckout(ctx, tx, o.CheckoutID); err != nil {
		return err
	}
	created, err := c.st.InsertOrder(ctx, tx, o)
	if err != nil {
		return err
	}
	if !created {
		c.log.InfoContext(ctx, "checkout already has an order", "checkout_id", o.CheckoutID, "cart_id", cartID)
		return nil
	}
	if err := c.publish(ctx, tx, OrderPlaced(o)); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "order placed", "order_id", o.ID, "checkout_id", o.CheckoutID, "user_id", o.UserID, "subtotal_cents", o.SubtotalCents)
	out, err := c.st.Outcomes(ctx, tx, o.CheckoutID)
	if err != nil {
		return err
	}
	return c.settle(ctx, tx, &o, out)
}

func (c *Consumer) inventory(ctx context.Context, tx *sqlx.Tx, e *inventorypb.InventoryEvent) error {
	switch p := e.GetPayload().(type) {
	case *inventorypb.InventoryEvent_StockCommitted:
		return c.outcome(ctx, tx, p.StockCommitted.GetCheckoutId(), func(o order.Outcomes) (order.Outcomes, error) {
			return o.WithStockCommitted(), nil
		})
	case *inventorypb.InventoryEvent_ReservationRejected:
		r := p.ReservationRejected
		if r.GetCheckoutId() == "" {
			return nil // a rejection while the cart is edited: not about an order
		}
		if err := order.ValidateID("product_id", r.GetProductId()); err != nil {
			return err
		}
		return c.outcome(ctx, tx, r.GetCheckoutId(), func(o order.Outcomes) (order.Outcomes, error) {
			return o.WithStockRejected(order.OutOfStockReason(r.GetProductId(), r.GetRequested(), r.GetAvailable())), nil
		})
	}
	return nil
}

func (c *Consumer) discount(ctx context.Context, tx *sqlx.Tx, e *discountpb.DiscountEvent) error {
	switch p := e.GetPayload().(type) {
	case *discountpb.DiscountEvent_DiscountCalculated:
		d := p.DiscountCalculated
		if !d.GetFinal() {
			return nil // the running discount of an open cart
		}
		return c.outcome(ctx, tx, d.GetCheckoutId(), func(o order.Outcomes) (order.Outcomes, error) {
			return o.WithDiscount(d.GetDiscountCents())
		})
	case *discountpb.DiscountEvent_CouponRejected:
		r := p.CouponRejected
		if r.GetCheckoutId() == "" {
			return nil // refused while the cart is edited: not about an order
		}
		return c.outcome(ctx, tx, r.GetCheckoutId(), func(o order.Outcomes) (order.Outcomes, error) {
			return o.WithCouponRejected(order.CouponReason(r.GetCouponCode(), r.GetReason())), nil
		})
	}
	return nil
}

// outcome records what an inventory or discount event says about a checkout and, when
// the checkout's order exists, decides it if it can.
func (c *Consumer) outcome(ctx context.Context, tx *sqlx.Tx, checkoutID string, change func(order.Outcomes) (order.Outcomes, error)) error {
	if err := order.ValidateID("checkout_id", checkoutID); err != nil {
		return err
	}
	if err := c.st.LockCheckout(ctx, tx, checkoutID); err != nil {
		return err
	}
	out, err := c.st.Outcomes(ctx, tx, checkoutID)
	if err != nil {
		return err
	}
	if out, err = change(out); err != nil {
		return err
	}
	if err := c.st.SaveOutcomes(ctx, tx, checkoutID, out, c.now()); err != nil {
		return err
	}
	o, err := c.st.OrderByCheckout(ctx, tx, checkoutID)
	if err != nil || o == nil {
		return err
	}
	return c.settle(ctx, tx, o, out)
}

// settle decides o from out if it can, saves the decision and publishes it.
func (c *Consumer) settle(ctx context.Context, tx *sqlx.Tx, o *order.Order, out order.Outcomes) error {
	prev := o.Version
	if !o.Settle(out, c.now()) {
		return nil
	}
	if err := c.st.SaveDecision(ctx, tx, *o, prev); err != nil {
		return err
	}
	ev, err := Decided(*o)
	if err != nil {
		return err
	}
	if err := c.publish(ctx, tx, ev); err != nil {
		return err
	}
	c.log.InfoContext(ctx, "order decided", "order_id", o.ID, "checkout_id", o.CheckoutID, "status", string(o.Status),
		"total_cents", o.TotalCents, "reason", o.Reason)
	return nil
}

func (c *Consumer) publish(ctx context.Context, tx *sqlx.Tx, ev *orderpb.OrderEvent) error {
	m, err := envelope.Encode(ctx, c.topics.Order, Source, ev)
	if err != nil {
		return fmt.Errorf("encode order event: %w", err)
	}
	return outbox.Enqueue(ctx, tx, m)
}
