-- Delegation (CalendarServer calendar-proxy): OWNER lets DELEGATE read (can_write 0) or read
-- and write (1) their calendars, and schedule as them. One row per pair: write includes read.
CREATE TABLE delegates (
    owner_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    delegate_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    can_write   BIGINT NOT NULL,
    PRIMARY KEY (owner_id, delegate_id)
);
CREATE INDEX delegates_delegate ON delegates(delegate_id);
