-- The placement reactions (a process manager, "placement_reactions"): how a
-- company's recognition decisions reach its placements, and how a placement
-- that ends early gives its offer's slot back. Driven from the global log with
-- a checkpoint like any projection.

-- The process manager's own view of the placements that are still open (not
-- objected, withdrawn, completed or interrupted), as of its checkpoint: so a
-- recognition event at position P reaches exactly the placements open at P,
-- whatever a read model shows at the time.
CREATE TABLE reaction_placements (
    placement_id  uuid PRIMARY KEY,
    company_id    text NOT NULL,
    qualification text NOT NULL,
    offer_id      uuid
);
CREATE INDEX reaction_placements_company ON reaction_placements (company_id, qualification);

-- The process manager's view of each company's standing as of its checkpoint
-- (active, suspended, revoked): a placement proposed on an earlier look at the
-- company, but recorded after SBB's decision, notices that decision too.
CREATE TABLE reaction_companies (
    company_id text PRIMARY KEY,
    standing   text NOT NULL CHECK (standing IN ('active', 'suspended', 'revoked')),
    cause      text NOT NULL, -- the company event that set the standing
    on_day     date NOT NULL
);

-- Commands decided by the process manager, written in the same transaction as
-- its checkpoint and carried out after commit by the dispatcher. A command is
-- keyed by the event that caused it; the target aggregate records each cause
-- once, so carrying a command out twice (a crash before its row is deleted,
-- two dispatchers) records nothing twice.
CREATE TABLE reaction_outbox (
    id             bigserial PRIMARY KEY,
    reaction_to    text  NOT NULL,
    aggregate_type text  NOT NULL,
    aggregate_id   text  NOT NULL,
    command        jsonb NOT NULL,
    attempts       int   NOT NULL DEFAULT 0,
    UNIQUE (reaction_to, aggregate_type, aggregate_id)
);

INSERT INTO projection_checkpoints (name) VALUES ('placement_reactions');

-- A student's timeline: the events that name the student as a party.
CREATE INDEX events_student_timeline ON events ((metadata->>'student'), log_position)
    WHERE log_position IS NOT NULL;
