-- +goose Up
-- The demo catalog. limited-print has 5 units, to show a reservation being rejected.
INSERT INTO products (product_id, name, price_cents, available) VALUES
    ('mug',           'Eventshop Mug',              1250,  200),
    ('tshirt',        'Logo T-Shirt',               2000,  150),
    ('hoodie',        'Zip Hoodie',                 4900,   80),
    ('cap',           'Baseball Cap',               1800,  120),
    ('poster',        'Kafka Poster',                999,  300),
    ('sticker-pack',  'Sticker Pack',                450, 1000),
    ('notebook',      'Dotted Notebook',            1100,  250),
    ('pen',           'Gel Pen',                     250, 1000),
    ('backpack',      'Laptop Backpack',            6500,   40),
    ('water-bottle',  'Steel Water Bottle',         2200,  100),
    ('tote-bag',      'Canvas Tote Bag',            1500,  140),
    ('socks',         'Striped Socks',               900,  220),
    ('keychain',      'Enamel Keychain',             600,  400),
    ('mousepad',      'Desk Mousepad',              1900,   90),
    ('desk-lamp',     'LED Desk Lamp',              3900,   30),
    ('headphones',    'Wireless Headphones',        8900,   25),
    ('phone-case',    'Phone Case',                 1700,  160),
    ('usb-cable',     'USB-C Cable',                 990,  500),
    ('charger',       '65W Charger',                3500,   60),
    ('limited-print', 'Signed Limited Print',      12000,    5);

-- +goose Down
DELETE FROM products WHERE product_id IN ('mug', 'tshirt', 'hoodie', 'cap', 'poster', 'sticker-pack', 'notebook', 'pen',
    'backpack', 'water-bottle', 'tote-bag', 'socks', 'keychain', 'mousepad', 'desk-lamp', 'headphones', 'phone-case',
    'usb-cable', 'charger', 'limited-print');
