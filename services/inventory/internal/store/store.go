// Package store keeps products, the carts the inventory has seen and their
// reservations in PostgreSQL. Methods taking a tx run inside the caller's transaction;
// stock changes are relative UPDATEs guarded by the products table's CHECK, so stock
// never goes below zero whatever the callers do.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/eventshop/eventshop/services/inventory/internal/stock"
)

// PG is the inventory's PostgreSQL store.
type PG struct{ db *sqlx.DB }

// New returns a store over db.
func New(db *sqlx.DB) *PG { return &PG{db: db} }

// DB is the pool, for transactions.
func (s *PG) DB() *sqlx.DB { return s.db }

// Cart statuses.
const (
	CartOpen       = "open"
	CartCheckedOut = "checked_out"
)

// Cart is the inventory's view of a cart. Version is the aggregate_version of the last
// inventory event published for it.
type Cart struct {
	ID         string         `db:"cart_id"`
	Status     string         `db:"status"`
	Version    int64          `db:"version"`
	CheckoutID sql.NullString `db:"checkout_id"`
}

// LockCart returns the cart (created when first seen), locked until tx ends: every
// change to a cart's reservations happens under this lock.
func (s *PG) LockCart(ctx context.Context, tx *sqlx.Tx, cartID string) (Cart, error) {
	if _, err := tx.ExecContext(ctx, `INSERT INTO carts (cart_id) VALUES ($1) ON CONFLICT DO NOTHING`, cartID); err != nil {
		return Cart{}, fmt.Errorf("create cart %s: %w", cartID, err)
	}
	var c Cart
	if err := tx.GetContext(ctx, &c, `SELECT cart_id, status, version, checkout_id FROM carts WHERE cart_id = $1 FOR UPDATE`, cartID); err != nil {
		return Cart{}, fmt.Errorf("lock cart %s: %w", cartID, err)
	}
	return c, nil
}

// NextExpiredCart locks an open cart holding a reservation past its expiry, skipping
// carts another transaction has locked; ok is false when there is none.
func (s *PG) NextExpiredCart(ctx context.Context, tx *sqlx.Tx) (c Cart, ok bool, err error) {
	err = tx.GetContext(ctx, &c, `
		SELECT cart_id, status, version, checkout_id FROM carts
		WHERE status = 'open' AND cart_id IN (SELECT cart_id FROM reservations WHERE expires_at <= now())
		LIMIT 1 FOR UPDATE SKIP LOCKED`)
	if errors.Is(err, sql.ErrNoRows) {
		return Cart{}, false, nil
	}
	if err != nil {
		return Cart{}, false, fmt.Errorf("find expired cart: %w", err)
	}
	return c, true, nil
}

// SaveCart writes the cart's status, version and checkout id.
func (s *PG) SaveCart(ctx context.Context, tx *sqlx.Tx, c Cart) error {
	if _, err := tx.ExecContext(ctx, `UPDATE carts SET status = $2, version = $3, checkout_id = $4, updated_at = now() WHERE cart_id = $1`,
		c.ID, c.Status, c.Version, c.CheckoutID); err != nil {
		return fmt.Errorf("save cart %s: %w", c.ID, err)
	}
	return nil
}

// Held returns the units of productID the cart holds.
func (s *PG) Held(ctx context.Context, tx *sqlx.Tx, cartID, productID string) (int32, error) {
	var q int32
	err := tx.GetContext(ctx, &q, `SELECT quantity FROM reservations WHERE cart_id = $1 AND product_id = $2`, cartID, productID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load reservation %s/%s: %w", cartID, productID, err)
	}
	return q, nil
}

// Holds returns the units the cart holds per product.
func (s *PG) Holds(ctx context.Context, tx *sqlx.Tx, cartID string) (map[string]int32, error) {
	return s.holds(ctx, tx, `SELECT product_id, quantity FROM reservations WHERE cart_id = $1`, cartID)
}

// ExpiredHolds returns the cart's holds past their expiry.
func (s *PG) ExpiredHolds(ctx context.Context, tx *sqlx.Tx, cartID string) (map[string]int32, error) {
	return s.holds(ctx, tx, `SELECT product_id, quantity FROM reservations WHERE cart_id = $1 AND expires_at <= now()`, cartID)
}

func (s *PG) holds(ctx context.Context, tx *sqlx.Tx, query, cartID string) (map[string]int32, error) {
	var rows []struct {
		ProductID string `db:"product_id"`
		Quantity  int32  `db:"quantity"`
	}
	if err := tx.SelectContext(ctx, &rows, query, cartID); err != nil {
		return nil, fmt.Errorf("load reservations of %s: %w", cartID, err)
	}
	out := make(map[string]int32, len(rows))
	for _, r := range rows {
		out[r.ProductID] = r.Quantity
	}
	return out, nil
}

// SetHold records that the cart holds qty units of productID (none when qty is 0).
func (s *PG) SetHold(ctx context.Context, tx *sqlx.Tx, cartID, productID string, qty int32, hold time.Duration) error {
	var err error
	if qty == 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM reservations WHERE cart_id = $1 AND product_id = $2`, cartID, productID)
	} else {
		_, err = tx.ExecContext(ctx, `
			INSERT INTO reservations (cart_id, product_id, quantity, expires_at) VALUES ($1, $2, $3, now() + $4 * interval '1 microsecond')
			ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity, expires_at = EXCLUDED.expires_at`,
			cartID, productID, qty, hold.Microseconds())
	}
	if err != nil {
		return fmt.Errorf("save reservation %s/%s: %w", cartID, productID, err)
	}
	return nil
}

// ExtendHolds restarts the hold time of every reservation of the cart (it just changed).
func (s *PG) ExtendHolds(ctx context.Context, tx *sqlx.Tx, cartID string, hold time.Duration) error {
	if _, err := tx.ExecContext(ctx, `UPDATE reservations SET expires_at = now() + $2 * interval '1 microsecond' WHERE cart_id = $1`,
		cartID, hold.Microseconds()); err != nil {
		return fmt.Errorf("extend reservations of %s: %w", cartID, err)
	}
	return nil
}

// DeleteHolds removes reservations of the cart: those of products, or all when none are given.
func (s *PG) DeleteHolds(ctx context.Context, tx *sqlx.Tx, cartID string, products ...string) error {
	var err error
	if len(products) == 0 {
		_, err = tx.ExecContext(ctx, `DELETE FROM reservations WHERE cart_id = $1`, cartID)
	} else {
		_, err = tx.ExecContext(ctx, `DELETE FROM reservations WHERE cart_id = $1 AND product_id = ANY($2)`, cartID, pq.Array(products))
	}
	if err != nil {
		return fmt.Errorf("delete reservations of %s: %w", cartID, err)
	}
	return nil
}

// Reserve moves qty units of productID from available to reserved if that many are
// available, in one statement; ok is false (and nothing changed) otherwise.
func (s *PG) Reserve(ctx context.Context, tx *sqlx.Tx, productID string, qty int32) (availableAfter int32, ok bool, err error) {
	err = tx.GetContext(ctx, &availableAfter, `
		UPDATE products SET available = available - $2, reserved = reserved + $2
		WHERE product_id = $1 AND available >= $2 RETURNING available`, productID, qty)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reserve %d of %s: %w", qty, productID, err)
	}
	return availableAfter, true, nil
}

// Release moves qty units of productID from reserved back to available.
func (s *PG) Release(ctx context.Context, tx *sqlx.Tx, productID string, qty int32) error {
	return s.Apply(ctx, tx, stock.Delta{ProductID: productID, Available: qty, Reserved: -qty})
}

// Apply adds d to the product's counters; the table's CHECK refuses a negative result.
func (s *PG) Apply(ctx context.Context, tx *sqlx.Tx, d stock.Delta) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE products SET available = available + $2, reserved = reserved + $3, sold = sold + $4 WHERE product_id = $1`,
		d.ProductID, d.Available, d.Reserved, d.Sold)
	if err != nil {
		return fmt.Errorf("update stock of %s by %+v: %w", d.ProductID, d, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update stock of %s: %w", d.ProductID, err)
	}
	if n != 1 {
		return fmt.Errorf("update stock of %s: %w", d.ProductID, stock.ErrUnknownProduct)
	}
	return nil
}

// Available returns the units of productID available now (0 for an unknown product).
func (s *PG) Available(ctx context.Context, q sqlx.QueryerContext, productID string) (int32, error) {
	var n int32
	err := sqlx.GetContext(ctx, q, &n, `SELECT available FROM products WHERE product_id = $1`, productID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load stock of %s: %w", productID, err)
	}
	return n, nil
}

// Product is a product row.
type Product struct {
	stock.Product
	Version   int64
	UpdatedAt time.Time
}

type productRow struct {
	ID         string    `db:"product_id"`
	Name       string    `db:"name"`
	PriceCents int64     `db:"price_cents"`
	Available  int32     `db:"available"`
	Reserved   int32     `db:"reserved"`
	Sold       int32     `db:"sold"`
	Version    int64     `db:"version"`
	UpdatedAt  time.Time `db:"updated_at"`
}

func (r productRow) product() Product {
	return Product{
		Product:   stock.Product{ID: r.ID, Name: r.Name, PriceCents: r.PriceCents, Available: r.Available, Reserved: r.Reserved, Sold: r.Sold},
		Version:   r.Version,
		UpdatedAt: r.UpdatedAt.UTC(),
	}
}

const productCols = `product_id, name, price_cents, available, reserved, sold, version, updated_at`

func (s *PG) products(ctx context.Context, q sqlx.QueryerContext, query string, args ...any) ([]Product, error) {
	var rows []productRow
	if err := sqlx.SelectContext(ctx, q, &rows, query, args...); err != nil {
		return nil, err
	}
	out := make([]Product, len(rows))
	for i, r := range rows {
		out[i] = r.product()
	}
	return out, nil
}

// Products returns every product ordered by id.
func (s *PG) Products(ctx context.Context) ([]Product, error) {
	ps, err := s.products(ctx, s.db, `SELECT `+productCols+` FROM products ORDER BY product_id`)
	if err != nil {
		return nil, fmt.Errorf("list products: %w", err)
	}
	return ps, nil
}

// Product returns one product, or stock.ErrUnknownProduct. With forUpdate (q must be a
// tx) the row stays locked until the transaction ends.
func (s *PG) Product(ctx context.Context, q sqlx.QueryerContext, id string, forUpdate bool) (Product, error) {
	query := `SELECT ` + productCols + ` FROM products WHERE product_id = $1`
	if forUpdate {
		query += ` FOR UPDATE`
	}
	ps, err := s.products(ctx, q, query, id)
	if err != nil {
		return Product{}, fmt.Errorf("load product %s: %w", id, err)
	}
	if len(ps) == 0 {
		return Product{}, stock.ErrUnknownProduct
	}
	return ps[0], nil
}

// LockProducts locks the products of ids that exist, in id order (so that concurrent
// transactions never deadlock), and returns them by id.
func (s *PG) LockProducts(ctx context.Context, tx *sqlx.Tx, ids []string) (map[string]Product, error) {
	ps, err := s.products(ctx, tx, `SELECT `+productCols+` FROM products WHERE product_id = ANY($1) ORDER BY product_id FOR UPDATE`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("lock products: %w", err)
	}
	out := make(map[string]Product, len(ps))
	for _, p := range ps {
		out[p.ID] = p
	}
	return out, nil
}

// SetPrice writes a product's price (the caller holds the row lock).
func (s *PG) SetPrice(ctx context.Context, tx *sqlx.Tx, id string, cents int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE products SET price_cents = $2 WHERE product_id = $1`, id, cents); err != nil {
		return fmt.Errorf("set price of %s: %w", id, err)
	}
	return nil
}

// NextVersions bumps the version of each product in ids and marks it announced: the
// caller, which already changed (and so locked) those rows, enqueues the returned
// snapshots in the same transaction.
func (s *PG) NextVersions(ctx context.Context, tx *sqlx.Tx, ids []string) ([]Product, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ps, err := s.products(ctx, tx, `
		UPDATE products SET version = version + 1, announced_version = version + 1, updated_at = now()
		WHERE product_id = ANY($1) RETURNING `+productCols, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("bump product versions: %w", err)
	}
	return sortByID(ps), nil
}

// ClaimUnannounced marks every product whose current version was never enqueued as a
// snapshot as announced, and returns them for the caller to enqueue in the same
// transaction. Concurrent callers (instances starting together) claim each version once.
func (s *PG) ClaimUnannounced(ctx context.Context, tx *sqlx.Tx) ([]Product, error) {
	ps, err := s.products(ctx, tx, `
		UPDATE products SET announced_version = version WHERE announced_version < version
		RETURNING `+productCols)
	if err != nil {
		return nil, fmt.Errorf("claim unannounced products: %w", err)
	}
	return sortByID(ps), nil
}

func sortByID(ps []Product) []Product {
	slices.SortFunc(ps, func(a, b Product) int { return strings.Compare(a.ID, b.ID) })
	return ps
}
