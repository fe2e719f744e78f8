-- Read model "matching_rounds": each school's matching rounds (stagematching),
-- with the latest run's proposals, explanations and metrics in `record`.
-- `pending` marks a round whose published or settled matches are not all
-- carried out yet: the repair round looks for those.
CREATE TABLE matching_rounds (
    round_id      uuid        PRIMARY KEY,
    school        text        NOT NULL,
    status        text        NOT NULL,
    pending       boolean     NOT NULL,
    record        jsonb       NOT NULL,
    version       bigint      NOT NULL,
    last_position bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX matching_rounds_school ON matching_rounds (school, round_id);
CREATE INDEX matching_rounds_pending ON matching_rounds (round_id) WHERE pending;

INSERT INTO projection_checkpoints (name) VALUES ('matching_rounds');
