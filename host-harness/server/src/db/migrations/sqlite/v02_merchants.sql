
CREATE TABLE merchants (
    id TEXT PRIMARY KEY,
    account_id TEXT UNIQUE,
    settings TEXT NOT NULL
);
ALTER TABLE invoices RENAME TO invoices_v1;
CREATE TABLE invoices (
    merchant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (merchant, id)
);
INSERT INTO invoices (merchant, id, doc, state)
    SELECT 'default', id, doc, state FROM invoices_v1;
DROP TABLE invoices_v1;
ALTER TABLE customers RENAME TO customers_v1;
CREATE TABLE customers (
    merchant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    stripe_customer_id TEXT,
    card_on_file TEXT,
    PRIMARY KEY (merchant, id)
);
INSERT INTO customers (merchant, id, doc, stripe_customer_id, card_on_file)
    SELECT 'default', id, doc, stripe_customer_id, card_on_file FROM customers_v1;
DROP TABLE customers_v1;
