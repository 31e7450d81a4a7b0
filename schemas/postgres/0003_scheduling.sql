-- RFC 6638 scheduling: the Schedule-Tag of scheduling object resources, look-ups of a user's
-- copy of an event by UID and of a user by calendar-user address, and a schedule inbox and
-- outbox (and the CalendarServer notification collection) in every existing home (new homes
-- get them when they are created).
ALTER TABLE resources ADD COLUMN schedule_tag TEXT;
CREATE INDEX resources_owner_uid ON resources(owner_id, uid) WHERE uid IS NOT NULL;
CREATE INDEX users_email ON users(lower(email));

INSERT INTO resources (uuid, owner_id, parent_id, name, kind, sync_seq, mod_seq, created_at, modified_at)
SELECT gen_random_uuid()::text, h.owner_id, h.id, m.name, m.name, 0, 0, h.created_at, h.created_at
FROM resources h CROSS JOIN (VALUES ('inbox'), ('outbox'), ('notification')) AS m(name)
WHERE h.parent_id IS NULL
  AND NOT EXISTS (SELECT 1 FROM resources c WHERE c.parent_id = h.id AND c.name = m.name);

-- Recurring objects whose first instance lies beyond the indexing horizon were stored with an
-- unbounded first start, which hid them from query-time expansion: bound it by the horizon.
UPDATE resources SET first_start = complete_until
WHERE complete_until IS NOT NULL AND first_start > complete_until;
