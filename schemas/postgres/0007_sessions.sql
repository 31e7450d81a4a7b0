-- Web sign-in (issue 5): server-side sessions, OpenID Connect identities, and the groups a
-- user's identity provider or directory says they belong to.
--
-- A session row holds an HMAC of the cookie's token (under the server key), never the token.
-- For a session made by OpenID Connect it also keeps the ID token (the hint for RP-initiated
-- logout) and the refresh token sealed (AEAD under the server key), with the time the
-- provider must next be asked whether the person may still sign in.
CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    id_token    TEXT,
    refresh_sealed TEXT,
    refresh_due BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);

-- Which provider account is which local user: (issuer, sub) is the only stable OIDC key.
CREATE TABLE oidc_identities (
    issuer  TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX oidc_identities_user ON oidc_identities(user_id);

-- Group names per source ('oidc', 'ldap'), replaced whole at each sign-in or refresh.
CREATE TABLE user_groups (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source  TEXT NOT NULL,
    name    TEXT NOT NULL,
    PRIMARY KEY (user_id, source, name)
);
CREATE INDEX user_groups_name ON user_groups(name);
