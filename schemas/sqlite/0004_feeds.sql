-- Read-only ICS subscription feeds (issue 4): a calendar published at a secret URL for
-- clients that cannot speak CalDAV (Outlook's "subscribe from web"). Only a SHA-256 of the
-- token is kept; the token itself is shown once, when the feed is made.
CREATE TABLE feeds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash   TEXT NOT NULL UNIQUE,
    owner_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    calendar_id  BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX feeds_owner ON feeds(owner_id);
