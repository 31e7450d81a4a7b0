-- The login proxy's session hand-off: a one-time code the portal issues for one of its
-- sessions and one system, redeemed once by that system's host (which then sets its own
-- host-only cookie). Only a keyed hash of the code is kept; codes live for a minute.
CREATE TABLE bridge_handoffs (
    code_hash  TEXT PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    system     TEXT NOT NULL,
    next_path  TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX bridge_handoffs_expiry ON bridge_handoffs(expires_at);
