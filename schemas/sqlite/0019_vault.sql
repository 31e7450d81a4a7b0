-- The credential vault (ADR 0009). Nothing here opens without the key-encryption key, which
-- is never stored: a check value sealed under it, each user's data key wrapped under it, and
-- each vaulted field sealed under its user's data key.
CREATE TABLE vault_check (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    kek_id TEXT NOT NULL,
    blob   BLOB NOT NULL
);

CREATE TABLE vault_keys (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    kek_id  TEXT NOT NULL,
    key_id  TEXT NOT NULL,
    wrapped BLOB NOT NULL
);
CREATE INDEX vault_keys_kek ON vault_keys(kek_id);

CREATE TABLE vault_secrets (
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    system     TEXT NOT NULL,
    field      TEXT NOT NULL,
    blob       BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, system, field)
);
