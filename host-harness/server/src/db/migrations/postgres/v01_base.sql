
CREATE TABLE kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL,
    expires_ms BIGINT,
    PRIMARY KEY (ns, key)
);
CREATE INDEX kv_expiry ON kv (expires_ms) WHERE expires_ms IS NOT NULL;
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    ns TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    recipients TEXT NOT NULL,
    cc TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT,
    created_ms BIGINT NOT NULL,
    UNIQUE (ns, dedupe_key)
);
CREATE TABLE host_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sync_cursors (merchant TEXT PRIMARY KEY, cursor TEXT NOT NULL);
CREATE TABLE merchants (
    id TEXT PRIMARY KEY,
    account_id TEXT UNIQUE,
    settings TEXT NOT NULL
);
CREATE TABLE customers (
    merchant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    stripe_customer_id TEXT,
    card_on_file TEXT,
    PRIMARY KEY (merchant, id)
);
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    charges_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    details_submitted BOOLEAN NOT NULL DEFAULT FALSE,
    disconnected BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE invoices (
    merchant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (merchant, id)
);
