// Package service runs the cart's commands: each one locks the user's cart, applies the
// domain rule, saves the cart and enqueues its event in the outbox, all in one
// transaction, and remembers its outcome under the request's Idempotency-Key.
package service

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	cartpb "github.com/eventshop/eventshop/proto/eventshop/cart/v1"
	"github.com/eventshop/eventshop/services/cart/internal/cart"
	"github.com/eventshop/eventshop/services/cart/internal/events"
	"github.com/eventshop/eventshop/services/cart/internal/store"
)

// Service runs cart commands and queries.
type Service struct {
	st    *store.PG
	topic string
}

// New returns a service publishing to topic (cart.events.v1 by default).
func New(st *store.PG, topic string) *Service { return &Service{st: st, topic: topic} }

// Line is a cart line as shown to the user.
type Line struct {
	ProductID      string `json:"product_id"`
	Name           string `json:"name"`
	Quantity       int32  `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// View is a cart as returned to clients, and as remembered for idempotent replays.
type View struct {
	CartID        string      `json:"cart_id"`
	UserID        string      `json:"user_id"`
	Status        cart.Status `json:"status"`
	Lines         []Line      `json:"lines"`
	CouponCode    string      `json:"coupon_code"`
	SubtotalCents int64       `json:"subtotal_cents"`
	DiscountCents int64       `json:"discount_cents"`
	// Problems are what inventory and discount reported (out of stock, coupon refused).
	Problems   []store.Problem `json:"problems"`
	Version    int64           `json:"version"`
	CheckoutID string          `json:"checkout_id,omitempty"`
}

// ErrKeyReused: an Idempotency-Key came back with a different request.
var ErrKeyReused = &cart.FieldError{Field: "Idempotency-Key", Msg: "was already used for a different request"}

// GetCart returns the user's open cart, or an empty one when there is none.
func (s *Service) GetCart(ctx context.Context, userID string) (View, error) {
	c, err := s.st.OpenCart(ctx, s.st.DB(), userID)
	if err != nil {
		return View{}, err
	}
	if c == nil {
		return View{UserID: userID, Status: cart.StatusOpen, Lines: []Line{}}, nil
	}
	return s.view(ctx, s.st.DB(), c, "")
}

// AddItem adds qty of productID to the user's open cart (creating it when needed).
func (s *Service) AddItem(ctx context.Context, userID, key, productID string, qty int32) (View, error) {
	if err := firstErr(cart.ValidateID("product_id", productID), cart.ValidateQuantity(qty)); err != nil {
		return View{}, err
	}
	return s.command(ctx, userID, key, "AddItem", fmt.Sprint(productID, "\x00", qty), func(tx *sqlx.Tx, c *cart.Cart) (*cartpb.CartEvent, string, error) {
		p, err := s.st.Product(ctx, tx, productID)
		if err != nil {
			return nil, "", err
		}
		added, err := c.AddItem(p, qty)
		if err != nil {
			return nil, "", err
		}
		return events.ItemAdded(c, added), "", nil
	})
}

// RemoveItem removes productID's line from the user's open cart.
func (s *Service) RemoveItem(ctx context.Context, userID, key, productID string) (View, error) {
	if err := cart.ValidateID("product_id", productID); err != nil {
		return View{}, err
	}
	return s.command(ctx, userID, key, "RemoveItem", productID, func(_ *sqlx.Tx, c *cart.Cart) (*cartpb.CartEvent, string, error) {
		n, err := c.RemoveItem(productID)
		if err != nil {
			return nil, "", err
		}
		return events.ItemRemoved(c, productID, n), "", nil
	})
}

// SetQuantity sets the quantity of productID's line.
func (s *Service) SetQuantity(ctx context.Context, userID, key, productID string, qty int32) (View, error) {
	if err := firstErr(cart.ValidateID("product_id", productID), cart.ValidateQuantity(qty)); err != nil {
		return View{}, err
	}
	return s.command(ctx, userID, key, "SetQuantity", fmt.Sprint(productID, "\x00", qty), func(tx *sqlx.Tx, c *cart.Cart) (*cartpb.CartEvent, string, error) {
		p, err := s.st.Product(ctx, tx, productID)
		if err != nil {
			return nil, "", err
		}
		ch, err := c.SetQuantity(p, qty)
		if err != nil {
			return nil, "", err
		}
		return events.ItemQuantityChanged(c, ch), "", nil
	})
}

// ApplyCoupon sets the coupon code of the user's open cart.
func (s *Service) ApplyCoupon(ctx context.Context, userID, key, code string) (View, error) {
	if err := cart.ValidateCoupon(code); err != nil {
		return View{}, err
	}
	return s.command(ctx, userID, key, "ApplyCoupon", code, func(_ *sqlx.Tx, c *cart.Cart) (*cartpb.CartEvent, string, error) {
		if err := c.ApplyCoupon(code); err != nil {
			return nil, "", err
		}
		return events.CouponApplied(c), "", nil
	})
}

// Checkout closes the user's open cart and publishes its snapshot. The user's next
// AddItem starts a new cart.
func (s *Service) Checkout(ctx context.Context, userID, key string) (View, error) {
	return s.command(ctx, userID, key, "Checkout", "", func(tx *sqlx.Tx, c *cart.Cart) (*cartpb.CartEvent, string, error) {
		if len(c.Lines) == 0 {
			return nil, "", cart.ErrCartEmpty
		}
		products, err := s.st.Products(ctx, tx, productIDs(c))
		if err != nil {
			return nil, "", err
		}
		prices := make(map[string]int64, len(products))
		for id, p := range products {
			prices[id] = p.PriceCents
		}
		snap, err := c.Checkout(prices)
		if err != nil {
			return nil, "", err
		}
		checkoutID := uuid.NewString()
		return events.CheckedOut(c, snap, checkoutID), checkoutID, nil
	})
}

type mutation func(tx *sqlx.Tx, c *cart.Cart) (ev *cartpb.CartEvent, checkoutID string, err error)

func (s *Service) command(ctx context.Context, userID, key, method, args string, fn mutation) (View, error) {
	if key != "" {
		if err := cart.ValidateID("Idempotency-Key", key); err != nil {
			return View{}, err
		}
	}
	hash := sha256.Sum256([]byte(method + "\x00" + args))
	var out View
	err := postgres.InTx(ctx, s.st.DB(), postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		if err := s.st.LockUser(ctx, tx, userID); err != nil {
			return err
		}
		if key != "" {
			prev, err := s.st.IdempotentResponse(ctx, tx, userID, key)
			if err != nil {
				return err
			}
			if prev != nil {
				if prev.Method != method || string(prev.RequestHash) != string(hash[:]) {
					return ErrKeyReused
				}
				return json.Unmarshal(prev.Response, &out)
			}
		}
		c, err := s.st.OpenCart(ctx, tx, userID)
		if err != nil {
			return err
		}
		if c == nil {
			c = &cart.Cart{ID: uuid.NewString(), UserID: userID, Status: cart.StatusOpen, UpdatedAt: time.Now().UTC()}
		}
		ev, checkoutID, err := fn(tx, c)
		if err != nil {
			return err
		}
		if err := s.st.SaveCart(ctx, tx, c, checkoutID); err != nil {
			return err
		}
		msg, err := envelope.Encode(ctx, s.topic, events.Source, ev)
		if err != nil {
			return err
		}
		if err := outbox.Enqueue(ctx, tx, msg); err != nil {
			return err
		}
		out, err = s.view(ctx, tx, c, checkoutID)
		if err != nil {
			return err
		}
		if key != "" {
			resp, err := json.Marshal(out)
			if err != nil {
				return err
			}
			return s.st.SaveIdempotentResponse(ctx, tx, userID, key, store.StoredResponse{Method: method, RequestHash: hash[:], Response: resp})
		}
		return nil
	})
	if err != nil {
		return View{}, err
	}
	return out, nil
}

func (s *Service) view(ctx context.Context, q sqlx.QueryerContext, c *cart.Cart, checkoutID string) (View, error) {
	products, err := s.st.Products(ctx, q, productIDs(c))
	if err != nil {
		return View{}, err
	}
	sub, err := c.Subtotal()
	if err != nil {
		return View{}, err
	}
	problems, discountedSub, discount, err := s.st.Feedback(ctx, q, c.ID)
	if err != nil {
		return View{}, err
	}
	if discountedSub != sub {
		discount = 0 // computed for an earlier state of the cart; a new figure is on its way
	}
	v := View{CartID: c.ID, UserID: c.UserID, Status: c.Status, CouponCode: c.CouponCode, SubtotalCents: sub, DiscountCents: discount,
		Problems: problems, Version: c.Version, CheckoutID: checkoutID, Lines: make([]Line, len(c.Lines))}
	for i, l := range c.Lines {
		v.Lines[i] = Line{ProductID: l.ProductID, Name: products[l.ProductID].Name, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
	}
	return v, nil
}

func productIDs(c *cart.Cart) []string {
	ids := make([]string, len(c.Lines))
	for i, l := range c.Lines {
		ids[i] = l.ProductID
	}
	return ids
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
