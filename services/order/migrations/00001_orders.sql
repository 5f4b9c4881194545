-- +goose Up
CREATE TABLE orders (
    id             UUID        PRIMARY KEY,
    user_id        TEXT        NOT NULL,
    cart_id        TEXT        NOT NULL,
    -- One order per checkout: a redelivered or re-published CheckedOut cannot create a second.
    checkout_id    TEXT        NOT NULL UNIQUE,
    status         TEXT        NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected')),
    subtotal_cents BIGINT      NOT NULL CHECK (subtotal_cents >= 0),
    discount_cents BIGINT      NOT NULL CHECK (discount_cents >= 0 AND discount_cents <= subtotal_cents),
    total_cents    BIGINT      NOT NULL CHECK (total_cents = subtotal_cents - discount_cents),
    reason         TEXT        NOT NULL DEFAULT '',
    -- Version of the last event published about the order (1 placed, 2 decided).
    version        BIGINT      NOT NULL CHECK (version >= 1),
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
-- ListOrders: a user's orders, newest first.
CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);

CREATE TABLE order_lines (
    order_id         UUID   NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position         INT    NOT NULL,
    product_id       TEXT   NOT NULL,
    quantity         INT    NOT NULL CHECK (quantity >= 1),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, position)
);

-- What the inventory and discount services said about a checkout. Outcomes may arrive
-- before the checkout itself (other topics, other partitions), so they are kept here
-- until the order exists.
CREATE TABLE checkout_outcomes (
    checkout_id     TEXT        PRIMARY KEY,
    stock           TEXT        NOT NULL DEFAULT '' CHECK (stock IN ('', 'committed', 'rejected')),
    stock_reason    TEXT        NOT NULL DEFAULT '',
    discount_known  BOOLEAN     NOT NULL DEFAULT false,
    discount_cents  BIGINT      NOT NULL DEFAULT 0 CHECK (discount_cents >= 0),
    coupon_rejected BOOLEAN     NOT NULL DEFAULT false,
    coupon_reason   TEXT        NOT NULL DEFAULT '',
    updated_at      TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE checkout_outcomes;
DROP TABLE order_lines;
DROP TABLE orders;
