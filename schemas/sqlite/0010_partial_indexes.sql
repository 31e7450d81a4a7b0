-- Two indexes that answer for a few rows only now hold only those rows: every object or
-- instance written used to pay for an entry that no query reads, one b-tree page more per PUT.
-- Only rows longer than LONG_SPAN are looked up through this one (`long_span = 1`). It keeps
-- start_at so that SQLite's planner, with no statistics, prefers it to instances_window.
DROP INDEX instances_long;
CREATE INDEX instances_long ON instances(parent_id, start_at) WHERE long_span = 1;
-- Only objects whose index stops short of POS_INF (open-ended rules) are looked up here; the
-- literal is ical::index::POS_INF, and the query names it too (store::sql `pos_inf!`).
DROP INDEX resources_incomplete;
CREATE INDEX resources_incomplete ON resources(parent_id, complete_until)
    WHERE complete_until < 2305843009213693951;
