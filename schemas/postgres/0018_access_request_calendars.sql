-- The calendars an access request names (newline-separated names in the owner's home; empty:
-- every calendar of the owner's). The owner's grant may choose others.
ALTER TABLE access_requests ADD COLUMN calendars TEXT NOT NULL DEFAULT '';
