
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    merchant TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    died_ms INTEGER NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX dead_letters_merchant ON dead_letters (merchant, id);
