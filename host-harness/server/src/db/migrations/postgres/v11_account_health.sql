-- Connect account health (issue 22): whether Stripe restricted the account
-- (charges disabled, or requirements past due).
ALTER TABLE accounts ADD COLUMN restricted BOOLEAN NOT NULL DEFAULT FALSE;
