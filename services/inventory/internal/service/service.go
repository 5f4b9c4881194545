// Package service runs the inventory's stock changes: each one locks what it changes,
// applies the stock rule, and enqueues the events announcing it (inventory events per
// cart, a product snapshot per product whose available stock or price changed) in the
// outbox, in the same transaction.
package service

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eventshop/eventshop/pkg/envelope"
	"github.com/eventshop/eventshop/pkg/outbox"
	"github.com/eventshop/eventshop/pkg/postgres"
	inventorypb "github.com/eventshop/eventshop/proto/eventshop/inventory/v1"
	"github.com/eventshop/eventshop/services/inventory/internal/events"
	"github.com/eventshop/eventshop/services/inventory/internal/stock"
	"github.com/eventshop/eventshop/services/inventory/internal/store"
)

// Config is what the service needs to know.
type Config struct {
	InventoryTopic string        // inventory.events.v1
	ProductsTopic  string        // inventory.products.v1
	Hold           time.Duration // how long a cart's reservations live after its last change
}

// Service runs stock commands and queries.
type Service struct {
	st  *store.PG
	cfg Config
	log *slog.Logger
}

var _ events.Stock = (*Service)(nil)

// New returns the service over st.
func New(st *store.PG, cfg Config, log *slog.Logger) *Service {
	return &Service{st: st, cfg: cfg, log: log}
}

// Retarget brings the cart's hold of productID to target units: it reserves the
// difference atomically (or, when that many are not available, reserves nothing and
// announces the rejection), or releases the excess.
func (s *Service) Retarget(ctx context.Context, tx *sqlx.Tx, cartID, productID string, target int32) error {
	c, err := s.st.LockCart(ctx, tx, cartID)
	if err != nil {
		return err
	}
	if c.Status == store.CartCheckedOut {
		s.log.Warn("ignoring a change to a checked-out cart", "cart_id", cartID, "product_id", productID)
		return nil
	}
	held, err := s.st.Held(ctx, tx, cartID, productID)
	if err != nil {
		return err
	}
	var out []*inventorypb.InventoryEvent
	var changed []string
	switch mv := stock.Retarget(held, target); {
	case mv.Reserve > 0:
		after, ok, err := s.st.Reserve(ctx, tx, productID, mv.Reserve)
		if err != nil {
			return err
		}
		if !ok {
			avail, err := s.st.Available(ctx, tx, productID)
			if err != nil {
				return err
			}
			out = append(out, events.Rejected(cartID, stock.Shortfall{ProductID: productID, Requested: mv.Reserve, Available: avail}, ""))
			break
		}
		if err := s.st.SetHold(ctx, tx, cartID, productID, held+mv.Reserve, s.cfg.Hold); err != nil {
			return err
		}
		out = append(out, events.Reserved(cartID, productID, mv.Reserve, after))
		changed = append(changed, productID)
	case mv.Release > 0:
		if err := s.st.Release(ctx, tx, productID, mv.Release); err != nil {
			return err
		}
		if err := s.st.SetHold(ctx, tx, cartID, productID, held-mv.Release, s.cfg.Hold); err != nil {
			return err
		}
		out = append(out, events.Released(cartID, productID, mv.Release, mv.Reason))
		changed = append(changed, productID)
	}
	if err := s.st.ExtendHolds(ctx, tx, cartID, s.cfg.Hold); err != nil {
		return err
	}
	return s.publish(ctx, tx, c, out, changed)
}

// Touch restarts the hold time of the cart's reservations.
func (s *Service) Touch(ctx context.Context, tx *sqlx.Tx, cartID string) error {
	c, err := s.st.LockCart(ctx, tx, cartID)
	if err != nil || c.Status == store.CartCheckedOut {
		return err
	}
	return s.st.ExtendHolds(ctx, tx, cartID, s.cfg.Hold)
}

// Checkout settles the cart against its checkout lines: when every line can be held in
// full, the lines are sold and StockCommitted announced; otherwise everything the cart
// holds is released and each short line announced as ReservationRejected with the
// checkout id. Either way the cart holds nothing afterwards.
func (s *Service) Checkout(ctx context.Context, tx *sqlx.Tx, cartID, checkoutID string, lines []stock.Line) error {
	c, err := s.st.LockCart(ctx, tx, cartID)
	if err != nil {
		return err
	}
	if c.Status == store.CartCheckedOut {
		s.log.Warn("ignoring a second checkout of a cart", "cart_id", cartID, "checkout_id", checkoutID, "first_checkout_id", c.CheckoutID.String)
		return nil
	}
	held, err := s.st.Holds(ctx, tx, cartID)
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for _, l := range lines {
		ids[l.ProductID] = true
	}
	for id := range held {
		ids[id] = true
	}
	products, err := s.st.LockProducts(ctx, tx, slices.Sorted(maps.Keys(ids)))
	if err != nil {
		return err
	}
	available := make(map[string]int32, len(products))
	for id, p := range products {
		available[id] = p.Available
	}
	plan := stock.Settle(lines, held, available)
	var changed []string
	for _, d := range plan.Deltas {
		if err := s.st.Apply(ctx, tx, d); err != nil {
			return err
		}
		if d.Available != 0 {
			changed = append(changed, d.ProductID)
		}
	}
	if err := s.st.DeleteHolds(ctx, tx, cartID); err != nil {
		return err
	}
	var out []*inventorypb.InventoryEvent
	if plan.OK() {
		out = append(out, events.Committed(cartID, checkoutID, plan.Committed))
	} else {
		for _, r := range plan.Rejected {
			out = append(out, events.Rejected(cartID, r, checkoutID))
		}
	}
	c.Status, c.CheckoutID = store.CartCheckedOut, sql.NullString{String: checkoutID, Valid: true}
	return s.publish(ctx, tx, c, out, changed)
}

// maxSweepPerRun bounds the carts one SweepExpired handles, so that shutdown is prompt.
const maxSweepPerRun = 1000

// SweepExpired releases the expired reservations of open carts, one cart per
// transaction, announcing StockReleased (EXPIRED) and the products' snapshots. Carts
// locked by another transaction (a consumer, another instance's sweeper) are skipped,
// so no reservation is released twice. It returns how many carts it released.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	released := 0
	for range maxSweepPerRun {
		found, did := false, false
		err := postgres.InTx(ctx, s.st.DB(), postgres.TxOptions{}, func(tx *sqlx.Tx) error {
			c, ok, err := s.st.NextExpiredCart(ctx, tx)
			if err != nil || !ok {
				found, did = false, false
				return err
			}
			found, did = true, false
			// Re-read under the cart's lock: a consumer may have just extended the hold.
			holds, err := s.st.ExpiredHolds(ctx, tx, c.ID)
			if err != nil {
				return err
			}
			var out []*inventorypb.InventoryEvent
			var changed []string
			for _, h := range stock.SortedHolds(holds) {
				if err := s.st.Release(ctx, tx, h.ProductID, h.Quantity); err != nil {
					return err
				}
				out = append(out, events.Released(c.ID, h.ProductID, h.Quantity, stock.ReasonExpired))
				changed = append(changed, h.ProductID)
			}
			if len(changed) == 0 {
				return nil
			}
			if err := s.st.DeleteHolds(ctx, tx, c.ID, changed...); err != nil {
				return err
			}
			did = true
			return s.publish(ctx, tx, c, out, changed)
		})
		if err != nil {
			return released, fmt.Errorf("sweep expired reservations: %w", err)
		}
		if did {
			released++
		}
		if !found {
			break
		}
	}
	return released, nil
}

// AnnounceUnannounced enqueues a snapshot of every product whose current version was
// never announced (the seed catalog on a fresh database, rows changed by hand), so
// the compacted products topic and the carts' catalogs fill on a fresh stack.
func (s *Service) AnnounceUnannounced(ctx context.Context) (int, error) {
	var n int
	err := postgres.InTx(ctx, s.st.DB(), postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		ps, err := s.st.ClaimUnannounced(ctx, tx)
		if err != nil {
			return err
		}
		n = len(ps)
		return s.enqueueSnapshots(ctx, tx, ps)
	})
	if err != nil {
		return 0, fmt.Errorf("announce products: %w", err)
	}
	return n, nil
}

// ListProducts returns every product, ordered by id.
func (s *Service) ListProducts(ctx context.Context) ([]stock.Product, error) {
	ps, err := s.st.Products(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]stock.Product, len(ps))
	for i, p := range ps {
		out[i] = p.Product
	}
	return out, nil
}

// GetProduct returns one product, or stock.ErrUnknownProduct.
func (s *Service) GetProduct(ctx context.Context, id string) (stock.Product, error) {
	if err := stock.ValidateID("product_id", id); err != nil {
		return stock.Product{}, err
	}
	p, err := s.st.Product(ctx, s.st.DB(), id, false)
	return p.Product, err
}

// Restock adds qty units to the product's available stock and announces it.
func (s *Service) Restock(ctx context.Context, id string, qty int32) (stock.Product, error) {
	return s.changeProduct(ctx, id, func(tx *sqlx.Tx, p stock.Product) (stock.Product, bool, error) {
		np, err := stock.Restock(p, qty)
		if err != nil {
			return p, false, err
		}
		return np, true, s.st.Apply(ctx, tx, stock.Delta{ProductID: id, Available: qty})
	})
}

// UpdatePrice sets the product's unit price and announces it when it changed.
func (s *Service) UpdatePrice(ctx context.Context, id string, cents int64) (stock.Product, error) {
	return s.changeProduct(ctx, id, func(tx *sqlx.Tx, p stock.Product) (stock.Product, bool, error) {
		np, changed, err := stock.SetPrice(p, cents)
		if err != nil || !changed {
			return p, false, err
		}
		return np, true, s.st.SetPrice(ctx, tx, id, cents)
	})
}

func (s *Service) changeProduct(ctx context.Context, id string, fn func(tx *sqlx.Tx, p stock.Product) (stock.Product, bool, error)) (stock.Product, error) {
	if err := stock.ValidateID("product_id", id); err != nil {
		return stock.Product{}, err
	}
	var out stock.Product
	err := postgres.InTx(ctx, s.st.DB(), postgres.TxOptions{}, func(tx *sqlx.Tx) error {
		p, err := s.st.Product(ctx, tx, id, true)
		if err != nil {
			return err
		}
		np, changed, err := fn(tx, p.Product)
		if err != nil {
			return err
		}
		out = np
		if !changed {
			return nil
		}
		return s.announce(ctx, tx, []string{id})
	})
	return out, err
}

// publish numbers the cart's new events, enqueues them and the snapshots of the changed
// products, and saves the cart. The cart and the products are locked by the caller, so
// versions are consecutive and the outbox holds each aggregate's events in order.
func (s *Service) publish(ctx context.Context, tx *sqlx.Tx, c store.Cart, out []*inventorypb.InventoryEvent, changed []string) error {
	for _, e := range out {
		c.Version++
		e.AggregateVersion = c.Version
		m, err := envelope.Encode(ctx, s.cfg.InventoryTopic, events.Source, e)
		if err != nil {
			return err
		}
		if err := outbox.Enqueue(ctx, tx, m); err != nil {
			return err
		}
	}
	if err := s.st.SaveCart(ctx, tx, c); err != nil {
		return err
	}
	return s.announce(ctx, tx, changed)
}

// announce bumps the versions of the changed products and enqueues their snapshots.
func (s *Service) announce(ctx context.Context, tx *sqlx.Tx, changed []string) error {
	ps, err := s.st.NextVersions(ctx, tx, changed)
	if err != nil {
		return err
	}
	return s.enqueueSnapshots(ctx, tx, ps)
}

func (s *Service) enqueueSnapshots(ctx context.Context, tx *sqlx.Tx, ps []store.Product) error {
	for _, p := range ps {
		m, err := envelope.Encode(ctx, s.cfg.ProductsTopic, events.Source, events.Snapshot(p))
		if err != nil {
			return err
		}
		if err := outbox.Enqueue(ctx, tx, m); err != nil {
			return err
		}
	}
	return nil
}
