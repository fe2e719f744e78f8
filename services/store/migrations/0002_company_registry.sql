-- Read model: the company registry (projection "company_registry").
--
-- Most changes (suspend, reinstate) touch only unindexed columns, so with room
-- left on each page PostgreSQL updates the row in place (a HOT update) without
-- writing any index: no index on `status` for that reason — a status filter
-- walks the primary key in id order, which a paged list does anyway.
CREATE TABLE company_registry (
    company_id    text        PRIMARY KEY,
    name          text        NOT NULL,
    sector        text        NOT NULL,
    region        text        NOT NULL,
    status        text        NOT NULL,
    record        jsonb       NOT NULL,
    version       bigint      NOT NULL,
    last_position bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
) WITH (fillfactor = 80);
CREATE INDEX company_registry_region ON company_registry (region, company_id);

-- Which company holds (or held) a recognition for which qualification, for the
-- qualification filter; rewritten only when a company's set of qualifications
-- or their end dates change. Statuses live in `record`.
CREATE TABLE company_recognitions (
    company_id    text NOT NULL REFERENCES company_registry ON DELETE CASCADE,
    qualification text NOT NULL,
    valid_until   date NOT NULL,
    PRIMARY KEY (company_id, qualification)
);
CREATE INDEX company_recognitions_qualification ON company_recognitions (qualification, company_id);

INSERT INTO projection_checkpoints (name) VALUES ('company_registry');
