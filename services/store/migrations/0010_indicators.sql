-- Read model "indicators": the pact's monitoring of its four goals ([001],
-- "Monitoring en bijsturing"). One projection keeps all its tables, so a
-- rebuild gives one consistent set of numbers; see src/indicators/.
--
-- No column holds special-category data of a person: a support need stays
-- sealed in the student's record, and report grounds are not stored per
-- report. The projector opens them only to add one to a count of a cell in
-- `indicator_counts`. A cell can be as small as one person, so inside this
-- database it may still be linked to a report or placement of that cell:
-- these tables are for the API, which suppresses small counts, not for
-- direct access. An erasure takes a person's need and grounds out of the
-- counts at the next rebuild.

-- Company dimensions: where a company is, and whether it takes part in
-- matching (M4).
CREATE TABLE indicator_companies (
    company_id   text    PRIMARY KEY,
    region       text    NOT NULL,
    sector       text    NOT NULL,
    participates boolean NOT NULL
);

-- Students and placements each carry what they count for as 0/1 columns,
-- decided once, in Rust, when the projector saves the row (see
-- src/indicators/mod.rs). A filtered query sums the rows of its scope
-- through the index of its filter; a query of all schools, regions,
-- qualifications and sectors (at most one school year) reads the
-- `indicator_year_*` totals instead, which the projector keeps as the sums
-- of the same columns per school year. Both give the same numbers.

-- Students. `wish_year`: the school year (its first calendar year) the
-- student first recorded a learning wish in, i.e. started seeking a
-- placement (the latest wish). `holding`: how many of the student's
-- placements are accepted, agreed or started; `completed_since_wish`: how
-- many were completed since the latest learning wish (a student who
-- completed a placement and records a new wish seeks again); `matched`: how
-- many came from a matching round. The projector keeps these as the
-- placements change, so no query has to look up a student's placements.
CREATE TABLE indicator_students (
    student_key            text     PRIMARY KEY,
    school                 text     NOT NULL,
    qualification          text     NOT NULL,
    region                 text,
    sectors                text[]   NOT NULL,
    wish_year              integer,
    holding                integer  NOT NULL,
    completed_since_wish   integer  NOT NULL,
    matched                integer  NOT NULL,
    seeking                smallint NOT NULL,
    without_placement      smallint NOT NULL,
    first_year_bol         smallint NOT NULL,
    first_year_bol_matched smallint NOT NULL
) WITH (fillfactor = 90);
CREATE INDEX indicator_students_school ON indicator_students (school);
CREATE INDEX indicator_students_region ON indicator_students (region);
CREATE INDEX indicator_students_qualification ON indicator_students (qualification);
CREATE INDEX indicator_students_sectors ON indicator_students USING gin (sectors);

CREATE TABLE indicator_year_students (
    wish_year              integer PRIMARY KEY,
    seeking                bigint  NOT NULL,
    without_placement      bigint  NOT NULL,
    first_year_bol         bigint  NOT NULL,
    first_year_bol_matched bigint  NOT NULL
);

-- The domain's records the projector folds, apart from the facts above and
-- below: the queries scan narrow rows only. A student's support need stays
-- sealed inside the record.
CREATE TABLE indicator_student_records (
    student_key text  PRIMARY KEY,
    record      jsonb NOT NULL
);
CREATE TABLE indicator_placement_records (
    placement_id uuid  PRIMARY KEY,
    record       jsonb NOT NULL
);

-- Placements (the record is in `indicator_placement_records`). `region` and
-- `sector` are the company's; `school_year` is that of the agreement's first
-- day, or of the proposal before there is an agreement. `allowance_cents`:
-- the internship allowance per month, of an agreement that has one.
CREATE TABLE indicator_placements (
    placement_id      uuid     PRIMARY KEY,
    student_key       text     NOT NULL,
    school            text     NOT NULL,
    qualification     text     NOT NULL,
    region            text     NOT NULL,
    sector            text     NOT NULL,
    level             smallint NOT NULL,
    pathway           text     NOT NULL,
    first_year        boolean  NOT NULL,
    via_round         boolean  NOT NULL,
    proposed_year     integer  NOT NULL,
    school_year       integer  NOT NULL,
    allowance_cents   bigint,
    rated             smallint NOT NULL,
    satisfied_school  smallint NOT NULL,
    satisfied_company smallint NOT NULL,
    completed         smallint NOT NULL,
    compliant         smallint NOT NULL,
    bol_agreement     smallint NOT NULL,
    bol_allowance     smallint NOT NULL,
    bbl_agreement     smallint NOT NULL,
    bbl_wage_ok       smallint NOT NULL
) WITH (fillfactor = 80);
-- Each filter of a scope has its index, so a filtered query reads only its
-- rows; these columns are set when the placement is proposed (the school
-- year once more when the agreement is drafted), so updates stay in place.
CREATE INDEX indicator_placements_school ON indicator_placements (school);
CREATE INDEX indicator_placements_region ON indicator_placements (region);
CREATE INDEX indicator_placements_qualification ON indicator_placements (qualification);
CREATE INDEX indicator_placements_sector ON indicator_placements (sector);

CREATE TABLE indicator_year_placements (
    school_year       integer PRIMARY KEY,
    rated             bigint  NOT NULL,
    satisfied_school  bigint  NOT NULL,
    satisfied_company bigint  NOT NULL,
    completed         bigint  NOT NULL,
    compliant         bigint  NOT NULL,
    bol_agreement     bigint  NOT NULL,
    bol_allowance     bigint  NOT NULL,
    bbl_agreement     bigint  NOT NULL,
    bbl_wage_ok       bigint  NOT NULL
);

-- Internship allowances per school year, level, pathway and amount: what
-- the medians of all schools are taken from.
CREATE TABLE indicator_year_allowances (
    school_year     integer  NOT NULL,
    level           smallint NOT NULL,
    pathway         text     NOT NULL,
    allowance_cents bigint   NOT NULL,
    n               bigint   NOT NULL,
    PRIMARY KEY (school_year, level, pathway, allowance_cents)
);

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
