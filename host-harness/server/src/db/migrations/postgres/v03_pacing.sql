
CREATE TABLE stripe_pacing (account TEXT PRIMARY KEY, next_free_ms BIGINT NOT NULL);
