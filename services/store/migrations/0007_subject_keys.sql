-- The vault (DESIGN §6): one data key per data subject. Sensitive content is
-- sealed under its subject's key before it reaches an event, a snapshot or a
-- read model; erasing the subject deletes the key row, and everything sealed
-- under it becomes unreadable everywhere at once (crypto-shredding) while the
-- events themselves stay and still replay.
CREATE TABLE subject_keys (
    -- The id stored next to every sealed value; also the associated data of
    -- both the wrapped key and the content, so neither can be moved to
    -- another key's row or value and still open.
    key_id     uuid        PRIMARY KEY,
    -- A student aggregate id ("SCHOOL1:12345") or a pseudo-subject such as
    -- "sbb-signals". UNIQUE: one live key per subject, so concurrent first
    -- writers agree on it (INSERT .. ON CONFLICT (subject) DO NOTHING).
    subject    text        NOT NULL UNIQUE,
    -- The data key encrypted under the master key (nonce || ciphertext || tag):
    -- a dump of this table alone opens nothing.
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The audit record that a subject was erased, and when (the last time, when
-- it was erased again after new content). It holds no key material: the
-- subject id is the pseudonymous reference the erasure request was made for.
CREATE TABLE erasures (
    subject   text        PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);
