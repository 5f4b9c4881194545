-- +goose Up
-- The demo rules, on product ids of the inventory seed catalog (mug, tshirt).
INSERT INTO rules (rule_id, description, kind, product_id, percent, buy_quantity, free_quantity, threshold_cents, coupon_code, usage_limit) VALUES
    ('mug-buy2-get1',   'Mugs: buy 2, get 1 free',          'BUY_X_GET_Y',         'mug',    0,  2, 1,     0, '',         0),
    ('tshirt-15-off',   '15% off T-shirts',                 'PERCENT_OFF_PRODUCT', 'tshirt', 15, 0, 0,     0, '',         0),
    ('orders-over-100', '5% off orders of 100.00 or more',  'ORDER_THRESHOLD',     '',       5,  0, 0, 10000, '',         0),
    ('coupon-save10',   'Coupon SAVE10: 10% off',           'COUPON',              '',       10, 0, 0,     0, 'SAVE10',   100),
    ('coupon-first3',   'Coupon FIRST3: 20% off, 3 uses',   'COUPON',              '',       20, 0, 0,     0, 'FIRST3',   3);

-- +goose Down
DELETE FROM rules WHERE rule_id IN ('mug-buy2-get1', 'tshirt-15-off', 'orders-over-100', 'coupon-save10', 'coupon-first3');
