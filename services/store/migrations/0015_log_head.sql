-- The log's head as a row of its own, so that the appender gives a batch its
-- positions in one statement (see src/appender.rs). A statement's snapshot is
-- taken before it waits for any lock, so `max(log_position)` read in the same
-- statement as a lock could miss the batch committed during the wait. An
-- UPDATE of this row waits for the row's lock and then reads the row as the
-- last holder committed it: every giver of positions (the appender's batches,
-- the sequencer's stamps) moves it in the transaction that gives them, and
-- holds its lock until that transaction has committed.
CREATE TABLE log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint  NOT NULL CHECK (position >= 0)
);
-- Updated by every batch: keep each new row version on the row's own page.
ALTER TABLE log_head SET (fillfactor = 10);
INSERT INTO log_head (position) SELECT coalesce(max(log_position), 0) FROM events;

-- Ends the appender's statement when fewer events went in than it was given
-- (a sequence number was taken, or an aggregate has an unstamped event): the
-- whole statement is then undone, the head with it, and no position is left
-- unused. The appender then appends the batch's commands one by one to learn
-- which of them lost.
CREATE FUNCTION log_append_complete(appended bigint, expected bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF appended <> expected THEN
        RAISE EXCEPTION 'only % of % events could be appended', appended, expected
            USING ERRCODE = 'SPL01';
    END IF;
    RETURN true;
END
$$;
