-- The event store of cqrs-es/postgres-es (same columns it writes), plus the
-- global event log: every event gets a dense log position, stamped after commit
-- by the single active sequencer in the order of the writing transactions
-- (see src/log.rs for why a bigserial is not enough).
CREATE TABLE events (
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    sequence       bigint NOT NULL CHECK (sequence >= 0),
    event_type     text   NOT NULL,
    event_version  text   NOT NULL,
    payload        jsonb  NOT NULL,
    metadata       jsonb  NOT NULL,
    -- Filled in by PostgreSQL, never by the writer.
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- NULL until the sequencer stamps it.
    log_position   bigint CHECK (log_position > 0),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_log_position ON events (log_position);
CREATE INDEX events_unsequenced ON events (transaction_id) WHERE log_position IS NULL;

-- One row per projection and per process manager: how far it has applied the log.
-- Updated in the same transaction as the read model it belongs to.
CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
