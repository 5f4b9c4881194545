package events

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/idempotency"
	"github.com/eventshop/eventshop/pkg/kafka"
	discountpb "github.com/eventshop/eventshop/proto/eventshop/discount/v1"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/cart/internal/store"
)

// FeedbackTopics names the topics the cart learns about its carts from.
type FeedbackTopics struct {
	Inventory string // inventory.events.v1
	Discount  string // discount.events.v1
}

// FeedbackHandler applies inventory and discount events to what GetCart shows: a
// reservation rejected while the cart is edited becomes a problem on that line (cleared
// when stock is reserved again), and the latest discount is kept with the subtotal it was
// computed on. Checkout outcomes are the order service's business and are ignored here.
func FeedbackHandler(db *sqlx.DB, st *store.PG, group string, topics FeedbackTopics, log *slog.Logger) kafka.Handler {
	newEnv := func(topic string) (envelope.Envelope, bool) {
		switch topic {
		case topics.Inventory:
			return &inventorypb.InventoryEvent{}, true
		case topics.Discount:
			return &discountpb.DiscountEvent{}, true
		}
		return nil, false
	}
	return idempotency.Handler(db, idempotency.HandlerConfig{Consumer: group, Log: log}, newEnv,
		func(ctx context.Context, tx *sqlx.Tx, env envelope.Envelope, _ kafka.Message) error {
			cartID := env.GetAggregateId()
			switch e := env.(type) {
			case *inventorypb.InventoryEvent:
				switch {
				case e.GetReservationRejected() != nil && e.GetReservationRejected().GetCheckoutId() == "":
					r := e.GetReservationRejected()
					return st.SetProblem(ctx, tx, cartID, store.Problem{ProductID: r.GetProductId(),
						Message: fmt.Sprintf("only %d available: %d more could not be reserved", r.GetAvailable(), r.GetRequested())})
				case e.GetStockReserved() != nil:
					return st.ClearProblem(ctx, tx, cartID, e.GetStockReserved().GetProductId())
				case e.GetStockReleased() != nil && e.GetStockReleased().GetReason() == inventorypb.ReleaseReason_RELEASE_REASON_EXPIRED:
					return st.SetProblem(ctx, tx, cartID, store.Problem{ProductID: e.GetStockReleased().GetProductId(),
						Message: "reservation expired: change the quantity to reserve it again"})
				case e.GetStockReleased() != nil:
					return st.ClearProblem(ctx, tx, cartID, e.GetStockReleased().GetProductId())
				}
			case *discountpb.DiscountEvent:
				switch {
				case e.GetDiscountCalculated() != nil:
					d := e.GetDiscountCalculated()
					if d.GetDiscountCents() < 0 || d.GetDiscountCents() > d.GetSubtotalCents() {
						return kafka.Permanent(fmt.Errorf("discount %d outside 0..%d", d.GetDiscountCents(), d.GetSubtotalCents()))
					}
					if err := st.ClearProblem(ctx, tx, cartID, ""); err != nil {
						return err
					}
					return st.SetDiscount(ctx, tx, cartID, d.GetSubtotalCents(), d.GetDiscountCents())
				case e.GetCouponRejected() != nil && e.GetCouponRejected().GetCheckoutId() == "":
					c := e.GetCouponRejected()
					return st.SetProblem(ctx, tx, cartID, store.Problem{Message: fmt.Sprintf("coupon %s rejected: %s", c.GetCouponCode(), c.GetReason())})
				}
			}
			return nil
		})
}
