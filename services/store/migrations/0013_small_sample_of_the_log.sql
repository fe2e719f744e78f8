-- Autovacuum analyses `events` about once a minute under load (every 10 % of
-- new rows). At the default statistics target of 100 it samples 30,000 rows:
-- on the soak's machine 1.1-1.3 s and 0.3 s of CPU each time, reading about
-- 200 MB, while two cores were 90 % busy; the slowest seconds of the soak end
-- with it (BENCHMARKS.md, "Soak", run E). No plan on the log needs that much:
-- events are found by their primary key or by a range of positions, and range
-- reads no longer follow the statistics (see READ_RANGE in src/log.rs). A
-- target of 10 samples 3,000 rows; the documents have none (migration 0011).
ALTER TABLE events ALTER COLUMN aggregate_type SET STATISTICS 10;
ALTER TABLE events ALTER COLUMN aggregate_id SET STATISTICS 10;
ALTER TABLE events ALTER COLUMN sequence SET STATISTICS 10;
ALTER TABLE events ALTER COLUMN event_type SET STATISTICS 10;
ALTER TABLE events ALTER COLUMN event_version SET STATISTICS 10;
ALTER TABLE events ALTER COLUMN transaction_id SET STATISTICS 10;
ALTER TABLE events ALTER COLUMN recorded_at SET STATISTICS 10;
ALTER TABLE events ALTER COLUMN log_position SET STATISTICS 10;
ALTER INDEX events_student_timeline ALTER COLUMN 1 SET STATISTICS 10;
