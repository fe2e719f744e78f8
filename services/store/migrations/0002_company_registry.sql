-- Read model: the company registry (projection "company_registry").
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
);
CREATE INDEX company_registry_region ON company_registry (region, company_id);
CREATE INDEX company_registry_status ON company_registry (status, company_id);

CREATE TABLE company_recognitions (
    company_id    text NOT NULL REFERENCES company_registry ON DELETE CASCADE,
    qualification text NOT NULL,
    status        text NOT NULL,
    valid_until   date NOT NULL,
    PRIMARY KEY (company_id, qualification)
);
CREATE INDEX company_recognitions_qualification ON company_recognitions (qualification, company_id);

INSERT INTO projection_checkpoints (name) VALUES ('company_registry');
