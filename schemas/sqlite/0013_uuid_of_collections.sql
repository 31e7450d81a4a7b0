-- no-transaction
-- Objects never look their uuid up (it only names them in DAV:resource-id, and v4 uuids do
-- not collide), yet the column's inline UNIQUE gave every PUT one more index page to write.
-- Uniqueness is now enforced for collections only, whose uuid labels sync tokens and ctags.
-- An inline constraint cannot be dropped in SQLite, so the table is rebuilt as its manual
-- prescribes (ALTER TABLE, "making other kinds of table schema changes"): with foreign keys
-- off, or dropping the old table would cascade into every table that references it, then
-- create, copy, drop, rename, and recreate the indexes.
-- sqlx runs this file outside a transaction (first line) because the foreign_keys pragma
-- is ignored inside one; the transaction below keeps the rebuild all or nothing, and
-- running it again (a crash before sqlx records it) rebuilds the same table again.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE resources_rebuilt (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                 TEXT NOT NULL,
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
    modified_at          BIGINT NOT NULL,
    first_start          BIGINT,
    last_end             BIGINT,
    complete_until       BIGINT,
    schedule_tag         TEXT
);
INSERT INTO resources_rebuilt (id, uuid, owner_id, parent_id, name, kind, content_type, data,
    etag, size, uid, component, supported_components, sync_seq, mod_seq, tomb_floor,
    created_at, modified_at, first_start, last_end, complete_until, schedule_tag)
SELECT id, uuid, owner_id, parent_id, name, kind, content_type, data,
    etag, size, uid, component, supported_components, sync_seq, mod_seq, tomb_floor,
    created_at, modified_at, first_start, last_end, complete_until, schedule_tag
FROM resources;
-- AUTOINCREMENT's high-water mark goes with the old table: carried over, so an id once
-- used (the newest resource, since deleted) is never handed out again.
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'resources'), 0))
WHERE name = 'resources_rebuilt';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'resources_rebuilt', seq FROM sqlite_sequence
WHERE name = 'resources'
  AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'resources_rebuilt');
DROP TABLE resources;
ALTER TABLE resources_rebuilt RENAME TO resources;
CREATE UNIQUE INDEX resources_uuid ON resources(uuid) WHERE kind <> 'object';
CREATE UNIQUE INDEX resources_child ON resources(parent_id, name);
CREATE UNIQUE INDEX resources_home ON resources(owner_id) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX resources_uid ON resources(parent_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX resources_calendars ON resources(id) WHERE kind = 'calendar';
CREATE INDEX resources_incomplete ON resources(parent_id, complete_until)
    WHERE complete_until < 2305843009213693951;
CREATE INDEX resources_owner_calendars ON resources(owner_id) WHERE kind = 'calendar';
CREATE INDEX resources_changes ON resources(parent_id, mod_seq) WHERE kind = 'object';
CREATE INDEX resources_collections ON resources(parent_id) WHERE kind <> 'object';
COMMIT;
PRAGMA foreign_keys = ON;
