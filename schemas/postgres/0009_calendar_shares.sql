-- Calendar sharing (CalendarServer sharing extension) and access requests (issue 6).
--
-- A calendar shared by its owner with a sharee: the invite (`invite_uid`), its status, the
-- access granted, and the name under which the calendar appears in the sharee's own home
-- (`mount`, always `shared~...`, so a request path says by itself that it is a mount).
CREATE TABLE calendar_shares (
    id          BIGSERIAL PRIMARY KEY,
    calendar_id BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    owner_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sharee_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access      TEXT NOT NULL,
    status      TEXT NOT NULL,
    invite_uid  TEXT NOT NULL UNIQUE,
    summary     TEXT,
    mount       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (calendar_id, sharee_id),
    UNIQUE (sharee_id, mount)
);
CREATE INDEX calendar_shares_owner ON calendar_shares(owner_id);

-- "May I see your calendar?": one open request per pair, answered by the owner, withdrawn
-- by the requester, or expired.
CREATE TABLE access_requests (
    id           BIGSERIAL PRIMARY KEY,
    requester_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    owner_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access       TEXT NOT NULL,
    status       TEXT NOT NULL,
    granted      TEXT,
    message      TEXT,
    uid          TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    decided_at   BIGINT
);
CREATE UNIQUE INDEX access_requests_open ON access_requests(requester_id, owner_id) WHERE status = 'open';
CREATE INDEX access_requests_owner ON access_requests(owner_id);

-- A sharee's own part of an entry in a calendar shared with them (CalendarServer sharing
-- 5.5.4: alarms and transparency are per user): their last body, of which only the VALARMs
-- and TRANSP are used, laid over the sharer's current content when they read it.
CREATE TABLE personal_data (
    resource_id BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    etag        TEXT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (resource_id, user_id)
);
