// Package events applies cart.events.v1 to the discount service's carts and publishes the
// outcome on discount.events.v1 through the outbox, in the transaction that records the
// cart event as processed.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	"github.com/eventshop/eventshop/pkg/outbox"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	"github.com/eventshop/eventshop/services/discount/internal/discount"
	"github.com/eventshop/eventshop/services/discount/internal/store"
)

// Source is the CloudEvents source of every discount event.
const Source = "eventshop/discount"

// Config names the topics and the consumer group.
type Config struct {
	CartTopic     string // consumed
	DiscountTopic string // published
	Group         string // the consumer group, also the consumer in processed_events
}

// Handler is the consumer of the cart topic: idempotency.Handler around the discount effect.
func Handler(st *store.PG, cfg Config, log *slog.Logger) kafka.Handler {
	c := &consumer{st: st, cfg: cfg, log: log}
	newEnv := func(topic string) (*cartpb.CartEvent, bool) {
		if topic == cfg.CartTopic {
			return &cartpb.CartEvent{}, true
		}
		return nil, false
	}
	return idempotency.Handler(st.DB(), idempotency.HandlerConfig{Consumer: cfg.Group, Log: log}, newEnv, c.apply)
}

type consumer struct {
	st  *store.PG
	cfg Config
	log *slog.Logger
}

// invalid marks content the service can never apply: the runner dead-letters it.
func invalid(ev *cartpb.CartEvent, err error) error {
	return kafka.Permanent(fmt.Errorf("cart event %s (cart %s, v%d): %w", ev.GetEventId(), ev.GetAggregateId(), ev.GetAggregateVersion(), err))
}

func (c *consumer) apply(ctx context.Context, tx *sqlx.Tx, ev *cartpb.CartEvent, _ kafka.Message) error {
	if err := discount.ValidateID("aggregate_id", ev.GetAggregateId()); err != nil {
		return invalid(ev, err)
	}
	switch p := ev.GetPayload().(type) {
	case *cartpb.CartEvent_ItemAdded:
		a := p.ItemAdded
		l := discount.Line{ProductID: a.GetProductId(), Quantity: a.GetLineQuantity(), UnitPriceCents: a.GetUnitPriceCents()}
		if err := discount.ValidateLine("item_added", l); err != nil {
			return invalid(ev, err)
		}
		if a.GetQuantity() < 1 || a.GetQuantity() > a.GetLineQuantity() {
			return invalid(ev, fmt.Errorf("item_added.quantity: %d is not between 1 and line_quantity %d", a.GetQuantity(), a.GetLineQuantity()))
		}
		return c.changeOpenCart(ctx, tx, ev, a.GetUserId(), func(cart *discount.Cart) { cart.SetLine(l) })
	case *cartpb.CartEvent_ItemQuantityChanged:
		q := p.ItemQuantityChanged
		l := discount.Line{ProductID: q.GetProductId(), Quantity: q.GetNewQuantity(), UnitPriceCents: q.GetUnitPriceCents()}
		if err := discount.ValidateLine("item_quantity_changed", l); err != nil {
			return invalid(ev, err)
		}
		return c.changeOpenCart(ctx, tx, ev, q.GetUserId(), func(cart *discount.Cart) { cart.SetLine(l) })
	case *cartpb.CartEvent_ItemRemoved:
		id := p.ItemRemoved.GetProductId()
		if err := discount.ValidateID("item_removed.product_id", id); err != nil {
			return invalid(ev, err)
		}
		return c.changeOpenCart(ctx, tx, ev, p.ItemRemoved.GetUserId(), func(cart *discount.Cart) { cart.RemoveLine(id) })
	case *cartpb.CartEvent_CouponApplied:
		code := p.CouponApplied.GetCouponCode()
		if err := discount.ValidateCoupon("coupon_applied.coupon_code", code); err != nil {
			return invalid(ev, err)
		}
		return c.changeOpenCart(ctx, tx, ev, p.CouponApplied.GetUserId(), func(cart *discount.Cart) { cart.CouponCode = code })
	case *cartpb.CartEvent_CheckedOut:
		return c.checkedOut(ctx, tx, ev, p.CheckedOut)
	}
	return nil // a kind this service has no use for
}

// cart returns the event's cart, locked, or a new open one.
func (c *consumer) cart(ctx context.Context, tx *sqlx.Tx, ev *cartpb.CartEvent, userID string) (*discount.Cart, error) {
	cart, err := c.st.LockCart(ctx, tx, ev.GetAggregateId())
	if err != nil {
		return nil, err
	}
	if cart == nil {
		cart = &discount.Cart{ID: ev.GetAggregateId(), Status: discount.StatusOpen}
	}
	if userID != "" {
		cart.UserID = userID
	}
	return cart, nil
}

// changeOpenCart applies change to the cart, recalculates its discount with its coupon
// (if the coupon may be used now; nothing is redeemed) and publishes DiscountCalculated.
func (c *consumer) changeOpenCart(ctx context.Context, tx *sqlx.Tx, ev *cartpb.CartEvent, userID string, change func(*discount.Cart)) error {
	cart, err := c.cart(ctx, tx, ev, userID)
	if err != nil {
		return err
	}
	if cart.Status != discount.StatusOpen {
		// The cart service starts a new cart id after a checkout, so no change of a
		// checked-out cart can follow its CheckedOut; there is nothing to recalculate.
		c.log.WarnContext(ctx, "change to a checked-out cart ignored", "cart_id", cart.ID, "event_id", ev.GetEventId())
		return nil
	}
	change(cart)
	rules, err := c.st.Rules(ctx, tx)
	if err != nil {
		return err
	}
	now, err := c.st.Now(ctx, tx)
	if err != nil {
		return err
	}
	var coupon *discount.Rule
	if cart.CouponCode != "" {
		if r, err := discount.FindCoupon(rules, cart.CouponCode, now); err == nil {
			coupon = &r
		}
	}
	res, err := discount.Calculate(cart.Lines, rules, coupon)
	if err != nil {
		return invalid(ev, err)
	}
	calc, d := c.calculated(cart, res, coupon, "")
	return c.commit(ctx, tx, cart, []*discountpb.DiscountEvent{calc}, &d, nil)
}

// checkedOut decides the checkout's one outcome from its snapshot: with a coupon, redeem
// it (CouponRedeemed + final DiscountCalculated) or reject it (CouponRejected only);
// without, the final DiscountCalculated.
func (c *consumer) checkedOut(ctx context.Context, tx *sqlx.Tx, ev *cartpb.CartEvent, co *cartpb.CheckedOut) error {
	checkoutID := co.GetCheckoutId()
	if err := discount.ValidateID("checked_out.checkout_id", checkoutID); err != nil {
		return invalid(ev, err)
	}
	lines := make([]discount.Line, len(co.GetLines()))
	for i, l := range co.GetLines() {
		lines[i] = discount.Line{ProductID: l.GetProductId(), Quantity: l.GetQuantity(), UnitPriceCents: l.GetUnitPriceCents()}
	}
	if len(lines) == 0 {
		return invalid(ev, errors.New("checked_out.lines: a checkout has at least one line"))
	}
	if err := discount.ValidateLines(lines); err != nil {
		return invalid(ev, fmt.Errorf("checked_out.%w", err))
	}
	sub, err := discount.Calculate(lines, nil, nil)
	if err != nil {
		return invalid(ev, fmt.Errorf("checked_out.lines: %w", err))
	}
	if sub.SubtotalCents != co.GetSubtotalCents() {
		return invalid(ev, fmt.Errorf("checked_out.subtotal_cents: %d does not match the lines' %d", co.GetSubtotalCents(), sub.SubtotalCents))
	}

	cart, err := c.cart(ctx, tx, ev, co.GetUserId())
	if err != nil {
		return err
	}
	decided, err := c.st.CheckoutDecided(ctx, tx, checkoutID)
	if err != nil {
		return err
	}
	if decided {
		c.log.WarnContext(ctx, "checkout already decided; event ignored", "cart_id", cart.ID, "checkout_id", checkoutID, "event_id", ev.GetEventId())
		return nil
	}
	cart.Replace(lines, co.GetCouponCode())
	outcome := store.Checkout{CheckoutID: checkoutID, CartID: cart.ID, CouponCode: cart.CouponCode, Outcome: store.OutcomeCalculated}
	var out []*discountpb.DiscountEvent
	var coupon *discount.Rule
	if code := cart.CouponCode; code != "" {
		r, ok, err := c.st.RedeemCoupon(ctx, tx, code)
		if err != nil {
			return err
		}
		if !ok {
			reason, err := c.rejection(ctx, tx, code)
			if err != nil {
				return err
			}
			outcome.Outcome, outcome.Reason = store.OutcomeCouponRejected, reason
			rejected := c.newEvent(cart)
			rejected.Payload = &discountpb.DiscountEvent_CouponRejected{CouponRejected: &discountpb.CouponRejected{
				CouponCode: code, CheckoutId: checkoutID, Reason: reason,
			}}
			c.log.InfoContext(ctx, "coupon rejected at checkout", "cart_id", cart.ID, "checkout_id", checkoutID, "coupon", code, "reason", reason)
			return c.commit(ctx, tx, cart, []*discountpb.DiscountEvent{rejected}, nil, &outcome)
		}
		coupon = &r
		outcome.Outcome = store.OutcomeCouponRedeemed
		redeemed := c.newEvent(cart)
		redeemed.Payload = &discountpb.DiscountEvent_CouponRedeemed{CouponRedeemed: &discountpb.CouponRedeemed{CouponCode: code, CheckoutId: checkoutID}}
		out = append(out, redeemed)
	}
	rules, err := c.st.Rules(ctx, tx)
	if err != nil {
		return err
	}
	res, err := discount.Calculate(cart.Lines, rules, coupon)
	if err != nil {
		return invalid(ev, err)
	}
	outcome.DiscountCents = res.DiscountCents
	calc, d := c.calculated(cart, res, coupon, checkoutID)
	return c.commit(ctx, tx, cart, append(out, calc), &d, &outcome)
}

// rejection says why code could not be redeemed, judged at the transaction's time like the
// redemption.
func (c *consumer) rejection(ctx context.Context, tx *sqlx.Tx, code string) (string, error) {
	r, err := c.st.Coupon(ctx, tx, code)
	if errors.Is(err, store.ErrNotFound) {
		return discount.ErrUnknownCoupon.Error(), nil
	}
	if err != nil {
		return "", err
	}
	now, err := c.st.Now(ctx, tx)
	if err != nil {
		return "", err
	}
	reason := "coupon could not be redeemed" // not expected: the row lock keeps it as the redemption saw it
	if why := r.Usable(now); why != nil {
		reason = why.Error()
	}
	return reason, nil
}

// newEvent starts the cart's next discount event.
func (c *consumer) newEvent(cart *discount.Cart) *discountpb.DiscountEvent {
	return &discountpb.DiscountEvent{
		EventId:          envelope.NewID(),
		OccurredAt:       envelope.Now(),
		AggregateId:      cart.ID,
		AggregateVersion: cart.NextVersion(),
	}
}

// calculated builds the cart's next DiscountCalculated and the record of it.
func (c *consumer) calculated(cart *discount.Cart, res discount.Result, coupon *discount.Rule, checkoutID string) (*discountpb.DiscountEvent, store.CartDiscount) {
	ev := c.newEvent(cart)
	d := store.CartDiscount{CartID: cart.ID, Result: res, Final: checkoutID != "", CheckoutID: checkoutID, Version: ev.GetAggregateVersion()}
	if coupon != nil {
		d.CouponCode = coupon.CouponCode
	}
	applied := make([]*discountpb.AppliedRule, len(res.Applied))
	for i, a := range res.Applied {
		applied[i] = &discountpb.AppliedRule{RuleId: a.RuleID, Description: a.Description, AmountCents: a.AmountCents}
	}
	ev.Payload = &discountpb.DiscountEvent_DiscountCalculated{DiscountCalculated: &discountpb.DiscountCalculated{
		SubtotalCents: res.SubtotalCents, DiscountCents: res.DiscountCents, AppliedRules: applied,
		CouponCode: d.CouponCode, Final: d.Final, CheckoutId: checkoutID,
	}}
	return ev, d
}

// commit saves the cart (with its advanced version), enqueues its events in the outbox
// and records the discount and the checkout outcome, if any, all in tx.
func (c *consumer) commit(ctx context.Context, tx *sqlx.Tx, cart *discount.Cart, evs []*discountpb.DiscountEvent, d *store.CartDiscount, co *store.Checkout) error {
	if err := c.st.SaveCart(ctx, tx, cart); err != nil {
		return err
	}
	for _, ev := range evs {
		msg, err := envelope.Encode(ctx, c.cfg.DiscountTopic, Source, ev)
		if err != nil {
			return err
		}
		if err := outbox.Enqueue(ctx, tx, msg); err != nil {
			return err
		}
	}
	if d != nil {
		if err := c.st.SaveDiscount(ctx, tx, *d); err != nil {
			return err
		}
	}
	if co != nil {
		return c.st.SaveCheckout(ctx, tx, *co)
	}
	return nil
}
