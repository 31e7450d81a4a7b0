-- The SQLite schema keys instances on (resource_id, ord) (see its 0011); PostgreSQL keeps its
-- heap and indexes and gains the same column, so both backends run the same statements.
ALTER TABLE instances ADD COLUMN ord BIGINT NOT NULL DEFAULT 0;

-- Scheduling finds a UID among the owner's calendars through resources_uid, one probe per
-- calendar, so the (owner_id, uid) index that every object write kept up goes.
DROP INDEX resources_owner_uid;
CREATE INDEX resources_owner_calendars ON resources(owner_id) WHERE kind = 'calendar';
