-- A new event used to write three b-trees for its index rows: the rowid table, the window
-- index and instances_resource (for deletes and the foreign-key cascade). Keyed WITHOUT ROWID
-- on (resource_id, ord), the table is itself the lookup by resource, so instances_resource
-- goes. `ord` keeps each object's rows in the order they were written (`stored_instances`
-- compares them in that order). The window index carries every column a listing reads, so
-- loading a calendar's listing never goes back to the table.
CREATE TABLE instances_keyed (
    resource_id BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    ord         BIGINT NOT NULL,
    parent_id   BIGINT NOT NULL,
    start_at    BIGINT NOT NULL,
    end_at      BIGINT NOT NULL,
    rule        BIGINT NOT NULL,
    floating    BIGINT NOT NULL,
    long_span   BIGINT NOT NULL,
    PRIMARY KEY (resource_id, ord)
) WITHOUT ROWID;
INSERT INTO instances_keyed (resource_id, ord, parent_id, start_at, end_at, rule, floating, long_span)
SELECT resource_id, row_number() OVER (PARTITION BY resource_id ORDER BY rowid) - 1,
       parent_id, start_at, end_at, rule, floating, long_span
FROM instances;
DROP TABLE instances;
ALTER TABLE instances_keyed RENAME TO instances;
CREATE INDEX instances_window ON instances(parent_id, start_at, end_at, rule, floating);
CREATE INDEX instances_long ON instances(parent_id, start_at, end_at, rule, floating) WHERE long_span = 1;

-- Scheduling finds a UID among the owner's calendars through resources_uid, one probe per
-- calendar, so the (owner_id, uid) index that every object write kept up goes. Its
-- replacement holds calendar rows only, which object writes never touch.
DROP INDEX resources_owner_uid;
CREATE INDEX resources_owner_calendars ON resources(owner_id) WHERE kind = 'calendar';
