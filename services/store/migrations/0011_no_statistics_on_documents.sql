-- No planner statistics for the JSON documents (event payloads and metadata,
-- snapshots, read-model records). No query filters or joins on a document
-- column itself, only on expressions over it or on the key columns beside it,
-- and the planner has no use for a whole document's statistics there. Computing
-- them is what made ANALYZE of the event log expensive: every sampled payload is
-- detoasted and compared. Under load autovacuum's ANALYZE of `events`, about once
-- a minute, took 1.1-1.7 s (0.5-0.65 s of CPU) on two cores already busy, and
-- commands queued behind it (BENCHMARKS.md, "Soak"); with statistics target 0
-- ANALYZE skips the column (0.18-0.23 s of CPU on a table twice the size).
ALTER TABLE events ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN metadata SET STATISTICS 0;
ALTER TABLE snapshots ALTER COLUMN payload SET STATISTICS 0;
ALTER TABLE company_registry ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE idempotency_keys ALTER COLUMN response_headers SET STATISTICS 0;
ALTER TABLE students ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE offers ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE placements ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE reaction_outbox ALTER COLUMN command SET STATISTICS 0;
ALTER TABLE cases ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE matching_rounds ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE indicator_student_records ALTER COLUMN record SET STATISTICS 0;
ALTER TABLE indicator_placement_records ALTER COLUMN record SET STATISTICS 0;
