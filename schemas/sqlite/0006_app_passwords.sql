-- App passwords (issue 5): per-client passwords for CalDAV clients that can only send a user
-- name and a password. The password is shown once; only an HMAC of it, keyed with the
-- server's secret key, is kept, and `lookup` (a random public part of the password) finds
-- the row without comparing hashes.
CREATE TABLE app_passwords (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    lookup       TEXT NOT NULL UNIQUE,
    hash         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX app_passwords_user ON app_passwords(user_id);
