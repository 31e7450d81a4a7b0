-- Schedule sharing (issue 6).
--
-- Rules: everything in CALENDAR also goes to a user, a group, a department, or the owner's
-- manager, including events made before the rule and people who join the group later.
CREATE TABLE share_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    calendar_id BIGINT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    target      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (calendar_id, kind, target)
);
CREATE INDEX share_rules_owner ON share_rules(owner_id);

-- How far the sharing worker has carried each calendar's change log into the recipients'
-- copies (the durable job: a change committed is a change the worker will see). `audience`
-- fingerprints the recipients the calendar's rules and the groups its events name
-- (`refs`) stood for at that point: when it changes, the calendar is reconciled whole.
-- `lease_until` keeps two instances from working on one calendar at once.
CREATE TABLE share_cursors (
    calendar_id BIGINT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL DEFAULT 0,
    audience    TEXT NOT NULL DEFAULT '',
    refs        TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0
);

-- The worker looks for calendars with unshared changes on every pass: an index of calendars
-- alone keeps that from reading every object row.
CREATE INDEX resources_calendars ON resources(id) WHERE kind = 'calendar';

-- Which recipients hold a copy of which owner object (calendar, member name), and where
-- (the recipient's `from~OWNER` calendar and the copy's name there). No foreign key on the
-- calendar: when it is deleted (or its owner is), the rows stay so the worker can find and
-- remove the copies it left.
CREATE TABLE share_copies (
    calendar_id  BIGINT NOT NULL,
    name         TEXT NOT NULL,
    recipient_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mount        TEXT NOT NULL,
    copy_name    TEXT NOT NULL,
    PRIMARY KEY (calendar_id, name, recipient_id)
);
CREATE INDEX share_copies_recipient ON share_copies(recipient_id);

-- Per-user sharing settings: the colour others see my entries in, and whether my copies of
-- others' entries get an "[Owner] " prefix.
CREATE TABLE share_settings (
    user_id        BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    colour         TEXT,
    prefix_summary BIGINT NOT NULL DEFAULT 0
);
