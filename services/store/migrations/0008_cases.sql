-- Read model "cases": the meldpunt's reports and SBB's side of them — signals,
-- complaints and investigations — one row per aggregate (DESIGN §3: Report,
-- Investigation; signals and complaints are aggregates of their own so that
-- nothing SBB reads points back to a report).
--
-- Sealed content (a report's description and grounds, a signal's grounds) stays
-- sealed in `record`: the read model is ciphertext like the log, and the API
-- opens it for the reader. As in 0005, the indexed columns never change once a
-- row exists and every list pages by id.
CREATE TABLE cases (
    case_id       uuid        PRIMARY KEY,
    -- report | signal | complaint | investigation
    kind          text        NOT NULL,
    company_id    text        NOT NULL,
    -- The school of a report or complaint.
    school        text,
    -- The student of a report (the school's number).
    student_id    text,
    -- A report's filing day, a complaint's receipt, an investigation's opening.
    opened_on     date,
    acknowledged  boolean     NOT NULL,
    closed        boolean     NOT NULL,
    record        jsonb       NOT NULL,
    version       bigint      NOT NULL,
    last_position bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX cases_school ON cases (kind, school, case_id);
CREATE INDEX cases_company ON cases (kind, company_id, case_id);
