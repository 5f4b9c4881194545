// Package store keeps discount rules, carts, their last discount and checkout outcomes
// in PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/eventshop/eventshop/pkg/postgres"
	"github.com/eventshop/eventshop/services/discount/internal/discount"
)

// Errors the API maps to status codes.
var (
	ErrNotFound    = errors.New("not found")
	ErrCouponTaken = errors.New("coupon code belongs to another rule")
)

// PG is the discount's PostgreSQL store. Methods taking a tx run inside the caller's
// transaction; those taking a sqlx.QueryerContext run on the pool or a tx.
type PG struct{ db *sqlx.DB }

// New returns a store over db.
func New(db *sqlx.DB) *PG { return &PG{db: db} }

// DB is the pool.
func (s *PG) DB() *sqlx.DB { return s.db }

// Now is the database's clock: the transaction's start time. Coupon expiry is judged by
// this one clock, in Go and in SQL alike.
func (s *PG) Now(ctx context.Context, q sqlx.QueryerContext) (time.Time, error) {
	var t time.Time
	if err := sqlx.GetContext(ctx, q, &t, `SELECT now()`); err != nil {
		return time.Time{}, fmt.Errorf("database clock: %w", err)
	}
	return t.UTC(), nil
}

const ruleColumns = `rule_id, description, kind, product_id, percent, buy_quantity, free_quantity, threshold_cents,
	coupon_code, usage_limit, used, expires_at, active`

type ruleRow struct {
	ID             string       `db:"rule_id"`
	Description    string       `db:"description"`
	Kind           string       `db:"kind"`
	ProductID      string       `db:"product_id"`
	Percent        int32        `db:"percent"`
	BuyQuantity    int32        `db:"buy_quantity"`
	FreeQuantity   int32        `db:"free_quantity"`
	ThresholdCents int64        `db:"threshold_cents"`
	CouponCode     string       `db:"coupon_code"`
	UsageLimit     int32        `db:"usage_limit"`
	Used           int32        `db:"used"`
	ExpiresAt      sql.NullTime `db:"expires_at"`
	Active         bool         `db:"active"`
}

func (r ruleRow) rule() discount.Rule {
	out := discount.Rule{
		ID: r.ID, Description: r.Description, Kind: discount.Kind(r.Kind), ProductID: r.ProductID, Percent: r.Percent,
		BuyQuantity: r.BuyQuantity, FreeQuantity: r.FreeQuantity, ThresholdCents: r.ThresholdCents,
		CouponCode: r.CouponCode, UsageLimit: r.UsageLimit, Used: r.Used, Active: r.Active,
	}
	if r.ExpiresAt.Valid {
		t := r.ExpiresAt.Time.UTC()
		out.ExpiresAt = &t
	}
	return out
}

// Rules returns every rule, ordered by rule id.
func (s *PG) Rules(ctx context.Context, q sqlx.QueryerContext) ([]discount.Rule, error) {
	var rows []ruleRow
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT `+ruleColumns+` FROM rules ORDER BY rule_id`); err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	out := make([]discount.Rule, len(rows))
	for i, r := range rows {
		out[i] = r.rule()
	}
	return out, nil
}

// UpsertRule creates or replaces r (its Used counter is kept) and returns the stored rule.
// A coupon code of another coupon rule gives ErrCouponTaken.
func (s *PG) UpsertRule(ctx context.Context, r discount.Rule) (discount.Rule, error) {
	var expires any
	if r.ExpiresAt != nil {
		expires = r.ExpiresAt.UTC()
	}
	var row ruleRow
	err := sqlx.GetContext(ctx, s.db, &row, `
		INSERT INTO rules (rule_id, description, kind, product_id, percent, buy_quantity, free_quantity, threshold_cents,
		                   coupon_code, usage_limit, expires_at, active)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (rule_id) DO UPDATE SET description = EXCLUDED.description, kind = EXCLUDED.kind,
		    product_id = EXCLUDED.product_id, percent = EXCLUDED.percent, buy_quantity = EXCLUDED.buy_quantity,
		    free_quantity = EXCLUDED.free_quantity, threshold_cents = EXCLUDED.threshold_cents,
		    coupon_code = EXCLUDED.coupon_code, usage_limit = EXCLUDED.usage_limit, expires_at = EXCLUDED.expires_at,
		    active = EXCLUDED.active, updated_at = now()
		RETURNING `+ruleColumns,
		r.ID, r.Description, string(r.Kind), r.ProductID, r.Percent, r.BuyQuantity, r.FreeQuantity, r.ThresholdCents,
		r.CouponCode, r.UsageLimit, expires, r.Active)
	if postgres.IsUniqueViolation(err) {
		return discount.Rule{}, ErrCouponTaken
	}
	if err != nil {
		return discount.Rule{}, fmt.Errorf("upsert rule %s: %w", r.ID, err)
	}
	return row.rule(), nil
}

// Coupon returns the coupon rule of code, or ErrNotFound.
func (s *PG) Coupon(ctx context.Context, q sqlx.QueryerContext, code string) (discount.Rule, error) {
	var row ruleRow
	err := sqlx.GetContext(ctx, q, &row, `SELECT `+ruleColumns+` FROM rules WHERE kind = 'COUPON' AND coupon_code = $1`, code)
	if errors.Is(err, sql.ErrNoRows) {
		return discount.Rule{}, ErrNotFound
	}
	if err != nil {
		return discount.Rule{}, fmt.Errorf("load coupon %s: %w", code, err)
	}
	return row.rule(), nil
}

// RedeemCoupon uses the coupon of code once if it can be used now (active, not expired,
// under its limit) and returns it with its new count; ok is false when it cannot. The
// single UPDATE is the guard: concurrent redemptions queue on the row lock and each
// re-checks the limit, so the count never passes it.
func (s *PG) RedeemCoupon(ctx context.Context, tx *sqlx.Tx, code string) (_ discount.Rule, ok bool, err error) {
	var row ruleRow
	err = sqlx.GetContext(ctx, tx, &row, `
		UPDATE rules SET used = used + 1, updated_at = now()
		WHERE kind = 'COUPON' AND coupon_code = $1 AND active
		  AND (usage_limit = 0 OR used < usage_limit)
		  AND (expires_at IS NULL OR expires_at > now())
		RETURNING `+ruleColumns, code)
	if errors.Is(err, sql.ErrNoRows) {
		return discount.Rule{}, false, nil
	}
	if err != nil {
		return discount.Rule{}, false, fmt.Errorf("redeem coupon %s: %w", code, err)
	}
	return row.rule(), true, nil
}

// LockCart returns cartID's cart, locked until tx ends, or nil when it is not known yet.
func (s *PG) LockCart(ctx context.Context, tx *sqlx.Tx, cartID string) (*discount.Cart, error) {
	var r struct {
		ID         string `db:"cart_id"`
		UserID     string `db:"user_id"`
		Status     string `db:"status"`
		CouponCode string `db:"coupon_code"`
		Version    int64  `db:"version"`
	}
	err := sqlx.GetContext(ctx, tx, &r, `SELECT cart_id, user_id, status, coupon_code, version FROM carts WHERE cart_id = $1 FOR UPDATE`, cartID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load cart %s: %w", cartID, err)
	}
	c := &discount.Cart{ID: r.ID, UserID: r.UserID, Status: discount.Status(r.Status), CouponCode: r.CouponCode, Version: r.Version}
	var lines []struct {
		ProductID string `db:"product_id"`
		Quantity  int32  `db:"quantity"`
		Price     int64  `db:"unit_price_cents"`
	}
	if err := sqlx.SelectContext(ctx, tx, &lines, `SELECT product_id, quantity, unit_price_cents FROM cart_lines WHERE cart_id = $1 ORDER BY product_id`, cartID); err != nil {
		return nil, fmt.Errorf("load cart lines %s: %w", cartID, err)
	}
	for _, l := range lines {
		c.Lines = append(c.Lines, discount.Line{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.Price})
	}
	return c, nil
}

// SaveCart writes c and replaces its lines.
func (s *PG) SaveCart(ctx context.Context, tx *sqlx.Tx, c *discount.Cart) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO carts (cart_id, user_id, status, coupon_code, version, updated_at) VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (cart_id) DO UPDATE SET user_id = EXCLUDED.user_id, status = EXCLUDED.status,
		    coupon_code = EXCLUDED.coupon_code, version = EXCLUDED.version, updated_at = now()`,
		c.ID, c.UserID, string(c.Status), c.CouponCode, c.Version); err != nil {
		return fmt.Errorf("save cart %s: %w", c.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM cart_lines WHERE cart_id = $1`, c.ID); err != nil {
		return fmt.Errorf("save cart lines %s: %w", c.ID, err)
	}
	if len(c.Lines) == 0 {
		return nil
	}
	ids := make([]string, len(c.Lines))
	qty := make([]int64, len(c.Lines))
	price := make([]int64, len(c.Lines))
	for i, l := range c.Lines {
		ids[i], qty[i], price[i] = l.ProductID, int64(l.Quantity), l.UnitPriceCents
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO cart_lines (cart_id, product_id, quantity, unit_price_cents)
		SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])`,
		c.ID, pq.Array(ids), pq.Array(qty), pq.Array(price)); err != nil {
		return fmt.Errorf("save cart lines %s: %w", c.ID, err)
	}
	return nil
}

// CartDiscount is the last discount published for a cart.
type CartDiscount struct {
	CartID     string
	UserID     string
	Result     discount.Result
	CouponCode string // the coupon taken into account, "" if none
	CartCoupon string // the coupon on the cart, valid or not
	Final      bool
	CheckoutID string
	Version    int64
}

// SaveDiscount records d as the cart's last published discount.
func (s *PG) SaveDiscount(ctx context.Context, tx *sqlx.Tx, d CartDiscount) error {
	applied, err := json.Marshal(d.Result.Applied)
	if err != nil {
		return fmt.Errorf("save discount %s: %w", d.CartID, err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO cart_discounts (cart_id, subtotal_cents, discount_cents, applied, coupon_code, final, checkout_id, version, calculated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
		ON CONFLICT (cart_id) DO UPDATE SET subtotal_cents = EXCLUDED.subtotal_cents, discount_cents = EXCLUDED.discount_cents,
		    applied = EXCLUDED.applied, coupon_code = EXCLUDED.coupon_code, final = EXCLUDED.final,
		    checkout_id = EXCLUDED.checkout_id, version = EXCLUDED.version, calculated_at = now()`,
		d.CartID, d.Result.SubtotalCents, d.Result.DiscountCents, string(applied), d.CouponCode, d.Final, d.CheckoutID, d.Version); err != nil {
		return fmt.Errorf("save discount %s: %w", d.CartID, err)
	}
	return nil
}

// CartDiscount returns the last discount published for cartID, or ErrNotFound.
func (s *PG) CartDiscount(ctx context.Context, q sqlx.QueryerContext, cartID string) (CartDiscount, error) {
	var r struct {
		CartID     string `db:"cart_id"`
		UserID     string `db:"user_id"`
		Subtotal   int64  `db:"subtotal_cents"`
		Discount   int64  `db:"discount_cents"`
		Applied    []byte `db:"applied"`
		CouponCode string `db:"coupon_code"`
		CartCoupon string `db:"cart_coupon"`
		Final      bool   `db:"final"`
		CheckoutID string `db:"checkout_id"`
		Version    int64  `db:"version"`
	}
	err := sqlx.GetContext(ctx, q, &r, `
		SELECT d.cart_id, c.user_id, d.subtotal_cents, d.discount_cents, d.applied, d.coupon_code, c.coupon_code AS cart_coupon,
		       d.final, d.checkout_id, d.version
		FROM cart_discounts d JOIN carts c USING (cart_id) WHERE d.cart_id = $1`, cartID)
	if errors.Is(err, sql.ErrNoRows) {
		return CartDiscount{}, ErrNotFound
	}
	if err != nil {
		return CartDiscount{}, fmt.Errorf("load discount %s: %w", cartID, err)
	}
	d := CartDiscount{CartID: r.CartID, UserID: r.UserID, CouponCode: r.CouponCode, CartCoupon: r.CartCoupon, Final: r.Final,
		CheckoutID: r.CheckoutID, Version: r.Version, Result: discount.Result{SubtotalCents: r.Subtotal, DiscountCents: r.Discount}}
	if err := json.Unmarshal(r.Applied, &d.Result.Applied); err != nil {
		return CartDiscount{}, fmt.Errorf("load discount %s: applied rules: %w", cartID, err)
	}
	return d, nil
}

// Outcome of a checkout.
type Outcome string

// Checkout outcomes.
const (
	OutcomeCalculated     Outcome = "calculated" // no coupon
	OutcomeCouponRedeemed Outcome = "coupon_redeemed"
	OutcomeCouponRejected Outcome = "coupon_rejected"
)

// Checkout is the one outcome of a checkout.
type Checkout struct {
	CheckoutID    string
	CartID        string
	CouponCode    string
	Outcome       Outcome
	DiscountCents int64
	Reason        string
}

// CheckoutDecided reports whether checkoutID already has its outcome.
func (s *PG) CheckoutDecided(ctx context.Context, q sqlx.QueryerContext, checkoutID string) (bool, error) {
	var n int
	if err := sqlx.GetContext(ctx, q, &n, `SELECT count(*) FROM checkouts WHERE checkout_id = $1`, checkoutID); err != nil {
		return false, fmt.Errorf("load checkout %s: %w", checkoutID, err)
	}
	return n > 0, nil
}

// SaveCheckout records a checkout's outcome. A second outcome for the same checkout
// fails on the primary key: a concurrent transaction that decided it first wins, and the
// caller's transaction (with its coupon redemption) rolls back and is retried, when
// CheckoutDecided sees the first outcome.
func (s *PG) SaveCheckout(ctx context.Context, tx *sqlx.Tx, c Checkout) error {
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO checkouts (checkout_id, cart_id, coupon_code, outcome, discount_cents, reason) VALUES ($1, $2, $3, $4, $5, $6)`,
		c.CheckoutID, c.CartID, c.CouponCode, string(c.Outcome), c.DiscountCents, c.Reason); err != nil {
		return fmt.Errorf("save checkout %s: %w", c.CheckoutID, err)
	}
	return nil
}
