// Package store keeps carts, the catalog read model and idempotency keys in PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/eventshop/eventshop/services/cart/internal/cart"
)

// PG is the cart's PostgreSQL store. Methods taking a tx run inside the caller's transaction.
type PG struct{ db *sqlx.DB }

// New returns a store over db.
func New(db *sqlx.DB) *PG { return &PG{db: db} }

// DB is the pool, for transactions.
func (s *PG) DB() *sqlx.DB { return s.db }

// LockUser serializes every command of one user until tx ends, so that concurrent
// commands on one cart apply one after another and get consecutive versions.
func (s *PG) LockUser(ctx context.Context, tx *sqlx.Tx, userID string) error {
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 42))`, userID); err != nil {
		return fmt.Errorf("lock user: %w", err)
	}
	return nil
}

type cartRow struct {
	ID         string    `db:"id"`
	UserID     string    `db:"user_id"`
	Status     string    `db:"status"`
	CouponCode string    `db:"coupon_code"`
	Version    int64     `db:"version"`
	UpdatedAt  time.Time `db:"updated_at"`
}

// OpenCart returns the user's open cart with its lines, or nil when the user has none.
func (s *PG) OpenCart(ctx context.Context, q sqlx.QueryerContext, userID string) (*cart.Cart, error) {
	var rows []struct {
		cartRow
		ProductID sql.NullString `db:"product_id"`
		Quantity  sql.NullInt32  `db:"quantity"`
		Price     sql.NullInt64  `db:"unit_price_cents"`
	}
	// One round trip: the cart row repeated for each of its lines (once with NULLs if none).
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT c.id, c.user_id, c.status, c.coupon_code, c.version, c.updated_at, l.product_id, l.quantity, l.unit_price_cents
		FROM carts c LEFT JOIN cart_lines l ON l.cart_id = c.id
		WHERE c.user_id = $1 AND c.status = 'open'
		ORDER BY l.position`, userID); err != nil {
		return nil, fmt.Errorf("load open cart: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	r := rows[0].cartRow
	c := &cart.Cart{ID: r.ID, UserID: r.UserID, Status: cart.Status(r.Status), CouponCode: r.CouponCode, Version: r.Version, UpdatedAt: r.UpdatedAt.UTC()}
	for _, l := range rows {
		if l.ID != c.ID {
			return nil, fmt.Errorf("load open cart: user %s has more than one open cart", userID)
		}
		if l.ProductID.Valid {
			c.Lines = append(c.Lines, cart.Line{ProductID: l.ProductID.String, Quantity: l.Quantity.Int32, UnitPriceCents: l.Price.Int64})
		}
	}
	return c, nil
}

// SaveCart writes c and replaces its lines. checkoutID is set when c was just checked out.
func (s *PG) SaveCart(ctx context.Context, tx *sqlx.Tx, c *cart.Cart, checkoutID string) error {
	var cid any
	if checkoutID != "" {
		cid = checkoutID
	}
	// The cart row and the removal of its old lines in one round trip (two tables).
	if _, err := tx.ExecContext(ctx, `
		WITH saved AS (
			INSERT INTO carts (id, user_id, status, coupon_code, version, checkout_id, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, now())
			ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, coupon_code = EXCLUDED.coupon_code,
			    version = EXCLUDED.version, checkout_id = COALESCE(EXCLUDED.checkout_id, carts.checkout_id), updated_at = now()
		)
		DELETE FROM cart_lines WHERE cart_id = $1`,
		c.ID, c.UserID, string(c.Status), c.CouponCode, c.Version, cid); err != nil {
		return fmt.Errorf("save cart: %w", err)
	}
	if len(c.Lines) == 0 {
		return nil
	}
	ids := make([]string, len(c.Lines))
	qty := make([]int64, len(c.Lines))
	price := make([]int64, len(c.Lines))
	pos := make([]int64, len(c.Lines))
	for i, l := range c.Lines {
		ids[i], qty[i], price[i], pos[i] = l.ProductID, int64(l.Quantity), l.UnitPriceCents, int64(i)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO cart_lines (cart_id, product_id, quantity, unit_price_cents, position)
		SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::int[])`,
		c.ID, pq.Array(ids), pq.Array(qty), pq.Array(price), pq.Array(pos)); err != nil {
		return fmt.Errorf("save cart lines: %w", err)
	}
	return nil
}

// Product returns a catalog product or cart.ErrUnknownProduct.
func (s *PG) Product(ctx context.Context, q sqlx.QueryerContext, id string) (cart.Product, error) {
	var p struct {
		ID    string `db:"product_id"`
		Name  string `db:"name"`
		Price int64  `db:"price_cents"`
	}
	err := sqlx.GetContext(ctx, q, &p, `SELECT product_id, name, price_cents FROM catalog WHERE product_id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return cart.Product{}, cart.ErrUnknownProduct
	}
	if err != nil {
		return cart.Product{}, fmt.Errorf("load product %s: %w", id, err)
	}
	return cart.Product{ID: p.ID, Name: p.Name, PriceCents: p.Price}, nil
}

// Products returns the catalog entries of ids (missing ones are absent from the map).
func (s *PG) Products(ctx context.Context, q sqlx.QueryerContext, ids []string) (map[string]cart.Product, error) {
	out := map[string]cart.Product{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		ID    string `db:"product_id"`
		Name  string `db:"name"`
		Price int64  `db:"price_cents"`
	}
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT product_id, name, price_cents FROM catalog WHERE product_id = ANY($1)`, pq.Array(ids)); err != nil {
		return nil, fmt.Errorf("load products: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = cart.Product{ID: r.ID, Name: r.Name, PriceCents: r.Price}
	}
	return out, nil
}

// CatalogEntry is one product snapshot of the read model.
type CatalogEntry struct {
	ProductID  string
	Name       string
	PriceCents int64
	Available  int32
	Version    int64
	UpdatedAt  time.Time
}

// UpsertProduct applies a product snapshot unless the stored one is as new or newer, so
// duplicates and out-of-order snapshots change nothing. It reports whether it applied.
func (s *PG) UpsertProduct(ctx context.Context, e CatalogEntry) (bool, error) {
	res, err := s.db.ExecContext(ctx, `
		INSERT INTO catalog (product_id, name, price_cents, available, version, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, price_cents = EXCLUDED.price_cents,
		    available = EXCLUDED.available, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
		WHERE catalog.version < EXCLUDED.version`,
		e.ProductID, e.Name, e.PriceCents, e.Available, e.Version, e.UpdatedAt)
	if err != nil {
		return false, fmt.Errorf("upsert product %s: %w", e.ProductID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// StoredResponse is the first outcome of a request made with an Idempotency-Key.
type StoredResponse struct {
	Method      string `db:"method"`
	RequestHash []byte `db:"request_hash"`
	Response    []byte `db:"response"`
}

// IdempotentResponse returns the stored outcome of (userID, key), if any.
func (s *PG) IdempotentResponse(ctx context.Context, q sqlx.QueryerContext, userID, key string) (*StoredResponse, error) {
	var r StoredResponse
	err := sqlx.GetContext(ctx, q, &r, `SELECT method, request_hash, response FROM idempotency_keys WHERE user_id = $1 AND key = $2`, userID, key)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load idempotency key: %w", err)
	}
	return &r, nil
}

// SaveIdempotentResponse stores the outcome of (userID, key) inside the command's tx.
func (s *PG) SaveIdempotentResponse(ctx context.Context, tx *sqlx.Tx, userID, key string, r StoredResponse) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (user_id, key, method, request_hash, response) VALUES ($1, $2, $3, $4, $5)`,
		userID, key, r.Method, r.RequestHash, r.Response); err != nil {
		return fmt.Errorf("save idempotency key: %w", err)
	}
	return nil
}

// Problem is something another service reported about a cart line.
type Problem struct {
	ProductID string `db:"product_id" json:"product_id"`
	Message   string `db:"message" json:"message"`
}

// SetProblem records (or replaces) the problem of a cart's product.
func (s *PG) SetProblem(ctx context.Context, tx *sqlx.Tx, cartID string, p Problem) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO cart_problems (cart_id, product_id, message) VALUES ($1, $2, $3)
		ON CONFLICT (cart_id, product_id) DO UPDATE SET message = EXCLUDED.message, updated_at = now()`,
		cartID, p.ProductID, p.Message); err != nil {
		return fmt.Errorf("set problem: %w", err)
	}
	return nil
}

// ClearProblem removes the problem of a cart's product, if any.
func (s *PG) ClearProblem(ctx context.Context, tx *sqlx.Tx, cartID, productID string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM cart_problems WHERE cart_id = $1 AND product_id = $2`, cartID, productID); err != nil {
		return fmt.Errorf("clear problem: %w", err)
	}
	return nil
}

// SetDiscount records the latest discount computed for a cart and the subtotal it was
// computed on.
func (s *PG) SetDiscount(ctx context.Context, tx *sqlx.Tx, cartID string, subtotal, discount int64) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO cart_discounts (cart_id, subtotal_cents, discount_cents) VALUES ($1, $2, $3)
		ON CONFLICT (cart_id) DO UPDATE SET subtotal_cents = EXCLUDED.subtotal_cents, discount_cents = EXCLUDED.discount_cents, updated_at = now()`,
		cartID, subtotal, discount); err != nil {
		return fmt.Errorf("set discount: %w", err)
	}
	return nil
}

// Feedback returns the problems and the latest discount (with the subtotal it applies to)
// recorded for a cart.
func (s *PG) Feedback(ctx context.Context, q sqlx.QueryerContext, cartID string) (problems []Problem, subtotal, discount int64, err error) {
	var rows []struct {
		Subtotal  sql.NullInt64  `db:"subtotal_cents"`
		Discount  sql.NullInt64  `db:"discount_cents"`
		ProductID sql.NullString `db:"product_id"`
		Message   sql.NullString `db:"message"`
	}
	// One round trip: the discount (NULLs if none) beside each problem (one row if none).
	if err := sqlx.SelectContext(ctx, q, &rows, `
		SELECT d.subtotal_cents, d.discount_cents, p.product_id, p.message
		FROM (SELECT $1::uuid AS cart_id) k
		LEFT JOIN cart_discounts d ON d.cart_id = k.cart_id
		LEFT JOIN cart_problems p ON p.cart_id = k.cart_id
		ORDER BY p.product_id`, cartID); err != nil {
		return nil, 0, 0, fmt.Errorf("load feedback: %w", err)
	}
	for _, r := range rows {
		subtotal, discount = r.Subtotal.Int64, r.Discount.Int64
		if r.ProductID.Valid {
			problems = append(problems, Problem{ProductID: r.ProductID.String, Message: r.Message.String})
		}
	}
	return problems, subtotal, discount, nil
}
