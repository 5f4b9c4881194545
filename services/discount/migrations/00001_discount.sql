-- +goose Up
-- Discount rules. Which columns matter depends on kind; the others stay at their zero
-- value (the API refuses anything else).
CREATE TABLE rules (
    rule_id         TEXT        PRIMARY KEY,
    description     TEXT        NOT NULL DEFAULT '',
    kind            TEXT        NOT NULL CHECK (kind IN ('PERCENT_OFF_PRODUCT', 'BUY_X_GET_Y', 'ORDER_THRESHOLD', 'COUPON')),
    product_id      TEXT        NOT NULL DEFAULT '',
    percent         INT         NOT NULL DEFAULT 0 CHECK (percent BETWEEN 0 AND 100),
    buy_quantity    INT         NOT NULL DEFAULT 0 CHECK (buy_quantity >= 0),
    free_quantity   INT         NOT NULL DEFAULT 0 CHECK (free_quantity >= 0),
    threshold_cents BIGINT      NOT NULL DEFAULT 0 CHECK (threshold_cents >= 0),
    coupon_code     TEXT        NOT NULL DEFAULT '',
    usage_limit     INT         NOT NULL DEFAULT 0 CHECK (usage_limit >= 0), -- 0 = unlimited
    used            INT         NOT NULL DEFAULT 0 CHECK (used >= 0),
    expires_at      TIMESTAMPTZ,
    active          BOOLEAN     NOT NULL DEFAULT true,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- A coupon code names one coupon rule.
CREATE UNIQUE INDEX rules_coupon_code ON rules (coupon_code) WHERE kind = 'COUPON';

-- Each cart as the cart events told it. version counts the discount events published
-- for the cart (their aggregate_version), not the cart's own version.
CREATE TABLE carts (
    cart_id     TEXT        PRIMARY KEY,
    user_id     TEXT        NOT NULL,
    status      TEXT        NOT NULL CHECK (status IN ('open', 'checked_out')),
    coupon_code TEXT        NOT NULL DEFAULT '',
    version     BIGINT      NOT NULL DEFAULT 0 CHECK (version >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE cart_lines (
    cart_id          TEXT   NOT NULL REFERENCES carts (cart_id) ON DELETE CASCADE,
    product_id       TEXT   NOT NULL,
    quantity         INT    NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (cart_id, product_id)
);

-- The last discount published for each cart (GetCartDiscount).
CREATE TABLE cart_discounts (
    cart_id        TEXT        PRIMARY KEY REFERENCES carts (cart_id) ON DELETE CASCADE,
    subtotal_cents BIGINT      NOT NULL CHECK (subtotal_cents >= 0),
    discount_cents BIGINT      NOT NULL CHECK (discount_cents >= 0 AND discount_cents <= subtotal_cents),
    applied        JSONB       NOT NULL,
    coupon_code    TEXT        NOT NULL DEFAULT '',
    final          BOOLEAN     NOT NULL,
    checkout_id    TEXT        NOT NULL DEFAULT '',
    version        BIGINT      NOT NULL,
    calculated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Exactly one outcome per checkout: the primary key is what makes a second one
-- impossible, whatever the delivery.
CREATE TABLE checkouts (
    checkout_id    TEXT        PRIMARY KEY,
    cart_id        TEXT        NOT NULL,
    coupon_code    TEXT        NOT NULL DEFAULT '',
    outcome        TEXT        NOT NULL CHECK (outcome IN ('calculated', 'coupon_redeemed', 'coupon_rejected')),
    discount_cents BIGINT      NOT NULL DEFAULT 0,
    reason         TEXT        NOT NULL DEFAULT '',
    decided_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE checkouts;
DROP TABLE cart_discounts;
DROP TABLE cart_lines;
DROP TABLE carts;
DROP TABLE rules;
