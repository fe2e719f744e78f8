-- Read models whose rows are rewritten by every event of their placement or
-- student: autovacuum analyses a table once changes reach a tenth of its rows,
-- and a row rewritten a dozen times in a lifecycle counts a dozen changes. With
-- autovacuum every 10 s (the embedded cluster's setting) a steady load had these
-- tables analysed in every round, 66-67 times in a ten-minute soak: 20 of the 25
-- CPU seconds autovacuum spent, in bursts of up to 0.4 s that lined up with the
-- soak's slowest seconds (BENCHMARKS.md, "Soak", run S). Rewrites do not change
-- what the planner needs (how many rows, how the schools, companies and regions
-- spread), new rows do: analyse once the changes reach ten times the rows, which
-- at a dozen rewrites a row is about when the table has grown by four fifths.
-- Vacuum's thresholds stay as they are: the dead row versions must go.
ALTER TABLE placements SET (autovacuum_analyze_scale_factor = 10);
ALTER TABLE offers SET (autovacuum_analyze_scale_factor = 10);
ALTER TABLE reaction_placements SET (autovacuum_analyze_scale_factor = 10);
ALTER TABLE indicator_placements SET (autovacuum_analyze_scale_factor = 10);
ALTER TABLE indicator_placement_records SET (autovacuum_analyze_scale_factor = 10);
ALTER TABLE indicator_students SET (autovacuum_analyze_scale_factor = 10);
ALTER TABLE indicator_student_records SET (autovacuum_analyze_scale_factor = 10);
