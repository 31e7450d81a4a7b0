-- What an outgoing message is about, when it is an organizer's invitation or cancellation:
-- the organizer, the event's UID and the attendee, so that the outbox worker can record on the
-- organizer's event what became of it (SCHEDULE-STATUS 1.1 once the relay took it, 5.1 once
-- it was given up).
ALTER TABLE mail_outbox ADD COLUMN origin_owner BIGINT;
ALTER TABLE mail_outbox ADD COLUMN origin_uid TEXT;
ALTER TABLE mail_outbox ADD COLUMN origin_attendee TEXT;
