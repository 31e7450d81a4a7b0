-- Every object write bumps its calendar's mod_seq (the home's change log reports the
-- calendar), and with the calendar's row in resources_changes that rewrote one more index
-- page per PUT. The change log now reads objects through resources_changes, which holds
-- object rows only, and the few collections under a parent through resources_collections,
-- which holds collection rows keyed by parent alone: a bumped mod_seq touches neither.
DROP INDEX resources_changes;
CREATE INDEX resources_changes ON resources(parent_id, mod_seq) WHERE kind = 'object';
CREATE INDEX resources_collections ON resources(parent_id) WHERE kind <> 'object';
