-- Aggregate snapshots (postgres-es's snapshot table): a cache of an aggregate's
-- state every few events, so a command loads the snapshot and the events after
-- it instead of the whole history. The events stay the source of truth: this
-- table may be truncated at any time (a command that was writing a snapshot
-- meanwhile is recognised by its command id, see src/commands.rs), and must be
-- when an aggregate's state type changes shape.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
