
CREATE TABLE pay_links (
    merchant TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    invoice TEXT NOT NULL,
    PRIMARY KEY (merchant, token_sha256)
);
