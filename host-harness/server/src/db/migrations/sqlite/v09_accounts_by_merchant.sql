
ALTER TABLE accounts RENAME TO accounts_v8;
CREATE TABLE accounts (
    merchant TEXT NOT NULL,
    id TEXT NOT NULL,
    charges_enabled INTEGER NOT NULL DEFAULT 0,
    details_submitted INTEGER NOT NULL DEFAULT 0,
    disconnected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant, id)
);
INSERT INTO accounts (merchant, id, charges_enabled, details_submitted, disconnected)
    SELECT COALESCE((SELECT m.id FROM merchants m WHERE m.account_id = a.id), 'default'),
           a.id, a.charges_enabled, a.details_submitted, a.disconnected
    FROM accounts_v8 a;
DROP TABLE accounts_v8;
