
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    merchant TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at_ms INTEGER NOT NULL,
    locked_until_ms INTEGER,
    created_ms INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (merchant, kind, subject)
);
CREATE INDEX jobs_due ON jobs (run_at_ms);
