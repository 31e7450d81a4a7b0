-- A person's account in each business system, bound to their Convene account: its state
-- ('bound' after a real login succeeded; 'needs-update' after one failed, so the credential
-- is not tried again until the person changes it). The credential itself is in the vault.
CREATE TABLE bridge_bindings (
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    system      TEXT NOT NULL,
    state       TEXT NOT NULL,
    verified_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, system)
);

-- Every release of a vaulted secret: which system, when, why, and how it went.
CREATE TABLE bridge_audit (
    id      BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    system  TEXT NOT NULL,
    purpose TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX bridge_audit_user ON bridge_audit(user_id, at);
