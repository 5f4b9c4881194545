// Package store keeps orders and the outcomes of checkouts in PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/eventshop/eventshop/services/order/internal/order"
)

// PG is the order service's PostgreSQL store. Methods taking a tx run inside the
// caller's transaction.
type PG struct{ db *sqlx.DB }

// New returns a store over db.
func New(db *sqlx.DB) *PG { return &PG{db: db} }

// DB is the pool, for transactions.
func (s *PG) DB() *sqlx.DB { return s.db }

// LockCheckout serializes, until tx ends, everything done about one checkout: the
// CheckedOut and its outcomes come from different topics and may be handled at the same
// time by different members of the group; without the lock each transaction could miss
// the other's uncommitted row and the order would never be decided.
func (s *PG) LockCheckout(ctx context.Context, tx *sqlx.Tx, checkoutID string) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 4))`, checkoutID); err != nil {
		return fmt.Errorf("lock checkout %s: %w", checkoutID, err)
	}
	return nil
}

type outcomesRow struct {
	Stock          string `db:"stock"`
	StockReason    string `db:"stock_reason"`
	DiscountKnown  bool   `db:"discount_known"`
	DiscountCents  int64  `db:"discount_cents"`
	CouponRejected bool   `db:"coupon_rejected"`
	CouponReason   string `db:"coupon_reason"`
}

// Outcomes returns what is known about a checkout (the zero Outcomes when nothing is).
func (s *PG) Outcomes(ctx context.Context, tx *sqlx.Tx, checkoutID string) (order.Outcomes, error) {
	var r outcomesRow
	err := tx.GetContext(ctx, &r, `
		SELECT stock, stock_reason, discount_known, discount_cents, coupon_rejected, coupon_reason
		FROM checkout_outcomes WHERE checkout_id = $1`, checkoutID)
	if errors.Is(err, sql.ErrNoRows) {
		return order.Outcomes{}, nil
	}
	if err != nil {
		return order.Outcomes{}, fmt.Errorf("load outcomes of %s: %w", checkoutID, err)
	}
	return order.Outcomes{Stock: order.Stock(r.Stock), StockReason: r.StockReason, DiscountKnown: r.DiscountKnown,
		DiscountCents: r.DiscountCents, CouponRejected: r.CouponRejected, CouponReason: r.CouponReason}, nil
}

// SaveOutcomes stores what is known about a checkout.
func (s *PG) SaveOutcomes(ctx context.Context, tx *sqlx.Tx, checkoutID string, o order.Outcomes, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO checkout_outcomes (checkout_id, stock, stock_reason, discount_known, discount_cents, coupon_rejected, coupon_reason, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (checkout_id) DO UPDATE SET stock = EXCLUDED.stock, stock_reason = EXCLUDED.stock_reason,
		    discount_known = EXCLUDED.discount_known, discount_cents = EXCLUDED.discount_cents,
		    coupon_rejected = EXCLUDED.coupon_rejected, coupon_reason = EXCLUDED.coupon_reason, updated_at = EXCLUDED.updated_at`,
		checkoutID, string(o.Stock), o.StockReason, o.DiscountKnown, o.DiscountCents, o.CouponRejected, o.CouponReason, now.UTC()); err != nil {
		return fmt.Errorf("save outcomes of %s: %w", checkoutID, err)
	}
	return nil
}

// InsertOrder stores a new order with its lines. It returns false, changing nothing,
// when the checkout already has an order.
func (s *PG) InsertOrder(ctx context.Context, tx *sqlx.Tx, o order.Order) (bool, error) {
	res, err := tx.ExecContext(ctx, `
		INSERT INTO orders (id, user_id, cart_id, checkout_id, status, subtotal_cents, discount_cents, total_cents, reason, version, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (checkout_id) DO NOTHING`,
		o.ID, o.UserID, o.CartID, o.CheckoutID, string(o.Status), o.SubtotalCents, o.DiscountCents, o.TotalCents, o.Reason, o.Version, o.CreatedAt, o.UpdatedAt)
	if err != nil {
		return false, fmt.Errorf("insert order for checkout %s: %w", o.CheckoutID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	ids := make([]string, len(o.Lines))
	qty := make([]int64, len(o.Lines))
	price := make([]int64, len(o.Lines))
	pos := make([]int64, len(o.Lines))
	for i, l := range o.Lines {
		ids[i], qty[i], price[i], pos[i] = l.ProductID, int64(l.Quantity), l.UnitPriceCents, int64(i)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO order_lines (order_id, product_id, quantity, unit_price_cents, position)
		SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::int[])`,
		o.ID, pq.Array(ids), pq.Array(qty), pq.Array(price), pq.Array(pos)); err != nil {
		return false, fmt.Errorf("insert lines of order %s: %w", o.ID, err)
	}
	return true, nil
}

// SaveDecision writes the decision of an order that was pending at version prev. It
// fails when the stored order is no longer that pending version, so a decided order
// cannot change even by mistake.
func (s *PG) SaveDecision(ctx context.Context, tx *sqlx.Tx, o order.Order, prev int64) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE orders SET status = $2, discount_cents = $3, total_cents = $4, reason = $5, version = $6, updated_at = $7
		WHERE id = $1 AND status = 'pending' AND version = $8`,
		o.ID, string(o.Status), o.DiscountCents, o.TotalCents, o.Reason, o.Version, o.UpdatedAt, prev)
	if err != nil {
		return fmt.Errorf("save decision of order %s: %w", o.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("save decision of order %s: %w", o.ID, err)
	}
	if n != 1 {
		return fmt.Errorf("save decision of order %s: no pending order at version %d", o.ID, prev)
	}
	return nil
}

type orderRow struct {
	ID            string    `db:"id"`
	UserID        string    `db:"user_id"`
	CartID        string    `db:"cart_id"`
	CheckoutID    string    `db:"checkout_id"`
	Status        string    `db:"status"`
	SubtotalCents int64     `db:"subtotal_cents"`
	DiscountCents int64     `db:"discount_cents"`
	TotalCents    int64     `db:"total_cents"`
	Reason        string    `db:"reason"`
	Version       int64     `db:"version"`
	CreatedAt     time.Time `db:"created_at"`
	UpdatedAt     time.Time `db:"updated_at"`
}

const orderColumns = `id, user_id, cart_id, checkout_id, status, subtotal_cents, discount_cents, total_cents, reason, version, created_at, updated_at`

func (r orderRow) order() order.Order {
	return order.Order{ID: r.ID, UserID: r.UserID, CartID: r.CartID, CheckoutID: r.CheckoutID, Status: order.Status(r.Status),
		SubtotalCents: r.SubtotalCents, DiscountCents: r.DiscountCents, TotalCents: r.TotalCents, Reason: r.Reason,
		Version: r.Version, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

// OrderByCheckout returns the order of a checkout without its lines, or nil when the
// checkout has none yet.
func (s *PG) OrderByCheckout(ctx context.Context, tx *sqlx.Tx, checkoutID string) (*order.Order, error) {
	var r orderRow
	err := tx.GetContext(ctx, &r, `SELECT `+orderColumns+` FROM orders WHERE checkout_id = $1`, checkoutID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load order of checkout %s: %w", checkoutID, err)
	}
	o := r.order()
	return &o, nil
}

// Order returns one of userID's orders with its lines, or order.ErrNotFound (also for
// another user's order).
func (s *PG) Order(ctx context.Context, userID, orderID string) (order.Order, error) {
	var r orderRow
	err := s.db.GetContext(ctx, &r, `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND user_id = $2`, orderID, userID)
	if errors.Is(err, sql.ErrNoRows) {
		return order.Order{}, order.ErrNotFound
	}
	if err != nil {
		return order.Order{}, fmt.Errorf("load order %s: %w", orderID, err)
	}
	os := []order.Order{r.order()}
	if err := s.withLines(ctx, os); err != nil {
		return order.Order{}, err
	}
	return os[0], nil
}

// Orders returns userID's newest orders with their lines, newest first, at most limit.
func (s *PG) Orders(ctx context.Context, userID string, limit int) ([]order.Order, error) {
	var rows []orderRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+orderColumns+` FROM orders WHERE user_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $2`, userID, limit); err != nil {
		return nil, fmt.Errorf("list orders of %s: %w", userID, err)
	}
	os := make([]order.Order, len(rows))
	for i, r := range rows {
		os[i] = r.order()
	}
	if err := s.withLines(ctx, os); err != nil {
		return nil, err
	}
	return os, nil
}

func (s *PG) withLines(ctx context.Context, os []order.Order) error {
	if len(os) == 0 {
		return nil
	}
	ids := make([]string, len(os))
	at := make(map[string]int, len(os))
	for i, o := range os {
		ids[i], at[o.ID] = o.ID, i
	}
	var lines []struct {
		OrderID   string `db:"order_id"`
		ProductID string `db:"product_id"`
		Quantity  int32  `db:"quantity"`
		Price     int64  `db:"unit_price_cents"`
	}
	if err := s.db.SelectContext(ctx, &lines, `SELECT order_id, product_id, quantity, unit_price_cents FROM order_lines
		WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, position`, pq.Array(ids)); err != nil {
		return fmt.Errorf("load order lines: %w", err)
	}
	for _, l := range lines {
		i := at[l.OrderID]
		os[i].Lines = append(os[i].Lines, order.Line{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.Price})
	}
	return nil
}
