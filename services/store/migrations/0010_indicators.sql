-- Read model "indicators": the pact's monitoring of its four goals ([001],
-- "Monitoring en bijsturing"). One projection keeps all five tables, so a
-- rebuild gives one consistent set of numbers. The queries aggregate these
-- rows per call with the caller's filters (school year, school, region,
-- qualification, sector); see src/indicators.rs.
--
-- Nothing special-category is stored readable here. A student's support need
-- stays sealed (`support_need`), and report grounds are never stored per
-- report: the projector opens them only to add one to a count in
-- `indicator_counts`, a cell of many people, suppressed when small.

-- Company dimensions: where a company is, and whether it takes part in
-- matching (M4).
CREATE TABLE indicator_companies (
    company_id   text    PRIMARY KEY,
    region       text    NOT NULL,
    sector       text    NOT NULL,
    participates boolean NOT NULL
);

-- Students, with the domain's record (support need sealed inside it).
-- `wish_year`: the school year (its first calendar year) the student first
-- recorded a learning wish in, i.e. started seeking a placement.
CREATE TABLE indicator_students (
    student_key   text     PRIMARY KEY,
    school        text     NOT NULL,
    qualification text     NOT NULL,
    level         smallint NOT NULL,
    pathway       text     NOT NULL,
    first_year    boolean  NOT NULL,
    region        text,
    sectors       text[]   NOT NULL,
    wish_year     integer,
    record        jsonb    NOT NULL
);

-- Placements: the domain's record, and the facts the goals count, in columns.
-- `region` and `sector` are the company's; `school_year` is that of the
-- agreement's first day, or of the proposal before there is an agreement.
CREATE TABLE indicator_placements (
    placement_id       uuid     PRIMARY KEY,
    student_key        text     NOT NULL,
    school             text     NOT NULL,
    company_id         text     NOT NULL,
    qualification      text     NOT NULL,
    region             text     NOT NULL,
    sector             text     NOT NULL,
    level              smallint NOT NULL,
    pathway            text     NOT NULL,
    first_year         boolean  NOT NULL,
    via_round          boolean  NOT NULL,
    proposed_year      integer  NOT NULL,
    school_year        integer  NOT NULL,
    status             text     NOT NULL,
    g2_compliant       boolean  NOT NULL,
    school_score       smallint,
    company_score      smallint,
    agreed             boolean  NOT NULL,
    allowance_cents    bigint,
    hourly_wage_cents  bigint,
    minimum_wage_cents bigint,
    record             jsonb    NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX indicator_placements_student ON indicator_placements (student_key);

-- Reports (meldingen), without their content: the kind, where, and how many
-- working days after filing the school took its first follow-up step (D4).
CREATE TABLE indicator_reports (
    report_id          uuid    PRIMARY KEY,
    school             text    NOT NULL,
    company_id         text    NOT NULL,
    qualification      text    NOT NULL,
    region             text    NOT NULL,
    sector             text    NOT NULL,
    school_year        integer NOT NULL,
    kind               text    NOT NULL,
    filed_on           date    NOT NULL,
    follow_up_days     integer,
    forwarded          boolean NOT NULL,
    escalated          boolean NOT NULL
);

-- Counts per cell that are kept as counts only: grounds of reports (D2),
-- support needs at the start of a placement (G3), and SBB's decisions about
-- companies (D5), which concern no school (`school` = '').
CREATE TABLE indicator_counts (
    metric        text    NOT NULL,
    school_year   integer NOT NULL,
    school        text    NOT NULL,
    region        text    NOT NULL,
    qualification text    NOT NULL,
    sector        text    NOT NULL,
    n             integer NOT NULL,
    PRIMARY KEY (metric, school_year, school, region, qualification, sector)
);

INSERT INTO projection_checkpoints (name) VALUES ('indicators');
