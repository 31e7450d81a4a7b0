-- What a subscription feed shows (ical::privacy::Detail): 'full' (the privacy rule alone:
-- CONFIDENTIAL and PRIVATE reduced), 'time-and-summary' or 'busy' for every event.
ALTER TABLE feeds ADD COLUMN detail TEXT NOT NULL DEFAULT 'full';
