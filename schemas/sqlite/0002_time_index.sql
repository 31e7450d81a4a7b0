-- Time-range index (RFC 4791 9.9): one row per instance of an object's main component,
-- computed on write. Instants are epoch seconds; floating instances hold civil seconds and are
-- read in the calendar's time zone at query time.
ALTER TABLE resources ADD COLUMN first_start BIGINT;
ALTER TABLE resources ADD COLUMN last_end BIGINT;
-- Instances are complete up to this instant; beyond it the object is expanded at query time.
ALTER TABLE resources ADD COLUMN complete_until BIGINT;

CREATE TABLE instances (
    resource_id BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    parent_id   BIGINT NOT NULL,
    start_at    BIGINT NOT NULL,
    end_at      BIGINT NOT NULL,
    rule        BIGINT NOT NULL,
    floating    BIGINT NOT NULL,
    -- Spans longer than a week are looked up separately so the window scan stays narrow.
    long_span   BIGINT NOT NULL
);
CREATE INDEX instances_window ON instances(parent_id, start_at);
CREATE INDEX instances_long ON instances(parent_id, long_span);
CREATE INDEX instances_resource ON instances(resource_id);
CREATE INDEX resources_incomplete ON resources(parent_id, complete_until);
