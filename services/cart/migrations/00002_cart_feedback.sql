-- +goose Up
-- What the other services said about a cart (flow step 5): stock problems from inventory
-- and the latest discount from the discount service, shown by GetCart.
CREATE TABLE cart_problems (
    cart_id    UUID        NOT NULL,
    product_id TEXT        NOT NULL, -- '' for a cart-wide problem (a rejected coupon)
    message    TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, product_id)
);

CREATE TABLE cart_discounts (
    cart_id        UUID        PRIMARY KEY,
    subtotal_cents BIGINT      NOT NULL,
    discount_cents BIGINT      NOT NULL CHECK (discount_cents >= 0),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE cart_discounts;
DROP TABLE cart_problems;
