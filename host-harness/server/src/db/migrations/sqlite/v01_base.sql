
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    expires_ms INTEGER,
    PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    ns TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    recipients TEXT NOT NULL,
    cc TEXT NOT NULL,
    subject TEXT NOT NULL,
    text_body TEXT NOT NULL,
    html_body TEXT,
    created_ms INTEGER NOT NULL,
    UNIQUE (ns, dedupe_key)
);
CREATE TABLE IF NOT EXISTS host_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_cursors (
    merchant TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    stripe_customer_id TEXT,
    card_on_file TEXT
);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    charges_enabled INTEGER NOT NULL DEFAULT 0,
    details_submitted INTEGER NOT NULL DEFAULT 0,
    disconnected INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS invoices (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    state TEXT NOT NULL
);
