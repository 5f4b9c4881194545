-- +goose Up
CREATE TABLE carts (
    id             UUID        PRIMARY KEY,
    user_id        TEXT        NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('open', 'checked_out')),
    coupon_code    TEXT        NOT NULL DEFAULT '',
    version        BIGINT      NOT NULL CHECK (version >= 0),
    checkout_id    UUID,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- A user has at most one open cart; checked-out carts stay for history.
CREATE UNIQUE INDEX carts_one_open_per_user ON carts (user_id) WHERE status = 'open';

CREATE TABLE cart_lines (
    cart_id          UUID   NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id       TEXT   NOT NULL,
    position         INT    NOT NULL,
    quantity         INT    NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_price_cents BIGINT NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (cart_id, product_id)
);

-- The catalog read model, fed by inventory.products.v1: the cart's price authority.
CREATE TABLE catalog (
    product_id   TEXT        PRIMARY KEY,
    name         TEXT        NOT NULL,
    price_cents  BIGINT      NOT NULL CHECK (price_cents >= 0),
    available    INT         NOT NULL,
    version      BIGINT      NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Responses of mutating requests by Idempotency-Key, per user.
CREATE TABLE idempotency_keys (
    user_id      TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    method       TEXT        NOT NULL,
    request_hash BYTEA       NOT NULL,
    response     BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE catalog;
DROP TABLE cart_lines;
DROP TABLE carts;
