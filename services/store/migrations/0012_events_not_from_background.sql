-- The event log's sequencer does not wait for the transactions of the service's
-- background sessions (application_name 'stagepact background': sequencer,
-- projectors, reaction dispatcher, purges), because they never append events
-- (see services/store/src/log.rs). This trigger makes that a rule the database
-- keeps rather than a promise of the code: an insert from such a session fails.
-- A statement trigger with a WHEN clause: other inserts pay one comparison.
CREATE FUNCTION events_refuse_background_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are appended through request sessions only, not by %',
        current_setting('application_name')
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_not_from_background
    BEFORE INSERT ON events
    FOR EACH STATEMENT
    WHEN (current_setting('application_name') = 'stagepact background')
    EXECUTE FUNCTION events_refuse_background_insert();
