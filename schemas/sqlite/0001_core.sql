-- Convene core schema, SQLite dialect. Instants are epoch seconds (BIGINT) so both backends
-- share one set of queries.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE,
    email         TEXT,
    display_name  TEXT,
    password_hash TEXT,
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- Every WebDAV resource: homes (parent_id NULL), collections, calendars and objects.
CREATE TABLE resources (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 TEXT NOT NULL UNIQUE,
    owner_id             BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    parent_id            BIGINT REFERENCES resources(id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    content_type         TEXT,
    data                 BLOB,
    etag                 TEXT,
    size                 BIGINT NOT NULL DEFAULT 0,
    uid                  TEXT,
    component            TEXT,
    supported_components TEXT,
    sync_seq             BIGINT NOT NULL DEFAULT 0,
    mod_seq              BIGINT NOT NULL DEFAULT 0,
    tomb_floor           BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    modified_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX resources_child ON resources(parent_id, name);
CREATE UNIQUE INDEX resources_home ON resources(owner_id) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX resources_uid ON resources(parent_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX resources_changes ON resources(parent_id, mod_seq);

-- The latest deletion of each member name, for sync-collection (RFC 6578 3.5).
CREATE TABLE tombstones (
    parent_id BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (parent_id, name)
);
CREATE INDEX tombstones_seq ON tombstones(parent_id, seq);

-- Writable and dead properties, stored as standalone XML elements, per viewing user.
CREATE TABLE props (
    resource_id BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL,
    ns          TEXT NOT NULL,
    local       TEXT NOT NULL,
    xml         BLOB NOT NULL,
    PRIMARY KEY (resource_id, user_id, ns, local)
);
