-- +goose Up
-- The catalog and its stock. The CHECK is what really keeps stock from going below
-- zero: every change is a relative UPDATE that fails rather than overdraws.
CREATE TABLE products (
    product_id        TEXT        PRIMARY KEY,
    name              TEXT        NOT NULL,
    price_cents       BIGINT      NOT NULL CHECK (price_cents BETWEEN 0 AND 100000000),
    available         INT         NOT NULL,
    reserved          INT         NOT NULL DEFAULT 0,
    sold              INT         NOT NULL DEFAULT 0,
    -- Bumped on every change of what a ProductSnapshot shows (name, price, available);
    -- it is the snapshot's aggregate_version.
    version           BIGINT      NOT NULL DEFAULT 1,
    -- The highest version enqueued as a snapshot; start-up announces the rest.
    announced_version BIGINT      NOT NULL DEFAULT 0,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT products_stock_never_negative CHECK (available >= 0 AND reserved >= 0 AND sold >= 0),
    CONSTRAINT products_announced_le_version CHECK (announced_version <= version)
);
CREATE INDEX products_unannounced_idx ON products (product_id) WHERE announced_version < version;

-- The inventory's view of each cart it has seen. version numbers the inventory events
-- published for the cart (their aggregate_version); rows serialize work on one cart.
CREATE TABLE carts (
    cart_id     TEXT        PRIMARY KEY,
    status      TEXT        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'checked_out')),
    version     BIGINT      NOT NULL DEFAULT 0 CHECK (version >= 0),
    checkout_id TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Stock held for a cart line. A cart's holds all expire together, RESERVATION_HOLD after
-- the cart's last change.
CREATE TABLE reservations (
    cart_id    TEXT        NOT NULL REFERENCES carts (cart_id),
    product_id TEXT        NOT NULL REFERENCES products (product_id),
    quantity   INT         NOT NULL CHECK (quantity > 0),
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cart_id, product_id)
);
CREATE INDEX reservations_expires_at_idx ON reservations (expires_at);

-- +goose Down
DROP TABLE reservations;
DROP TABLE carts;
DROP TABLE products;
