
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    merchant TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    run_at_ms BIGINT NOT NULL,
    locked_until_ms BIGINT,
    created_ms BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (merchant, kind, subject)
);
CREATE INDEX jobs_due ON jobs (run_at_ms);
