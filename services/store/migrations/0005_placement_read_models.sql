-- Read models: students (projection "students"), offers ("offers") and
-- placements ("placements"). Each row holds the domain's record as folded from
-- the log (`record`), plus the few columns the lists filter on.
--
-- As in 0002: the indexed columns never change once a row exists (ids, school,
-- company, qualification, region), and everything an update changes (status,
-- slots, flags, the record) is unindexed, so with room left on each page
-- PostgreSQL updates a row in place (a HOT update) without writing any index.
-- Every list pages by id, so each index ends in the id.

-- A student's id is unique only within the school, hence the compound key
-- `<school>:<student number>` (the aggregate id).
CREATE TABLE students (
    student_key   text        PRIMARY KEY,
    school        text        NOT NULL,
    student_id    text        NOT NULL,
    record        jsonb       NOT NULL,
    version       bigint      NOT NULL,
    last_position bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX students_school ON students (school, student_id);

-- Reserving and releasing slots rewrites an offer often while it is being
-- matched: hence the fillfactor. Whether an offer is open (S1, S2) depends on
-- the day and on the company's standing, so it is computed when read, from
-- these columns and `company_registry`, never stored.
CREATE TABLE offers (
    offer_id          uuid        PRIMARY KEY,
    company_id        text        NOT NULL,
    qualification     text        NOT NULL,
    region            text        NOT NULL,
    levels            smallint[]  NOT NULL,
    period_start      date        NOT NULL,
    period_end        date        NOT NULL,
    withdrawn         boolean     NOT NULL,
    free_slots        integer     NOT NULL,
    open_for_matching boolean     NOT NULL,
    record            jsonb       NOT NULL,
    version           bigint      NOT NULL,
    last_position     bigint      NOT NULL,
    updated_at        timestamptz NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX offers_qualification ON offers (qualification, offer_id);
CREATE INDEX offers_region ON offers (region, offer_id);
CREATE INDEX offers_company ON offers (company_id, offer_id);

-- A placement changes with every step of its lifecycle: hence the fillfactor,
-- and no index on `status` or the attention columns (a filter on them walks
-- one of the id-ordered indexes, which a paged list does anyway).
-- `flagged` is `PlacementRecord::flagged()`, `overdue_from` is
-- `PlacementRecord::overdue_from()`: together they decide "needs attention" on
-- any day without refolding the record.
CREATE TABLE placements (
    placement_id  uuid        PRIMARY KEY,
    school        text        NOT NULL,
    student_id    text        NOT NULL,
    company_id    text        NOT NULL,
    qualification text        NOT NULL,
    status        text        NOT NULL,
    flagged       boolean     NOT NULL,
    -- NULL unless active, unwaived and missing a required contact moment (G2).
    overdue_from  date,
    record        jsonb       NOT NULL,
    version       bigint      NOT NULL,
    last_position bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX placements_school ON placements (school, placement_id);
CREATE INDEX placements_company ON placements (company_id, placement_id);
CREATE INDEX placements_student ON placements (school, student_id, placement_id);

INSERT INTO projection_checkpoints (name) VALUES ('students'), ('offers'), ('placements');
