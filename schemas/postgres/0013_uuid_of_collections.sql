-- Objects never look their uuid up (it only names them in DAV:resource-id, and v4 uuids do
-- not collide), yet the column's UNIQUE constraint gave every object write one more index
-- entry. Uniqueness is now enforced for collections only, whose uuid labels sync tokens and
-- ctags. (SQLite's 0013 rebuilds its table for the same change.)
ALTER TABLE resources DROP CONSTRAINT resources_uuid_key;
CREATE UNIQUE INDEX resources_uuid ON resources(uuid) WHERE kind <> 'object';
