
CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    merchant TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    attempts INT NOT NULL,
    created_ms BIGINT NOT NULL,
    died_ms BIGINT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX dead_letters_merchant ON dead_letters (merchant, id);
