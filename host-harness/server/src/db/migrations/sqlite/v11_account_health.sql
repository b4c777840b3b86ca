-- Connect account health (issue 22): whether Stripe restricted the account
-- (charges disabled, or requirements past due).
ALTER TABLE accounts ADD COLUMN restricted INTEGER NOT NULL DEFAULT 0;
