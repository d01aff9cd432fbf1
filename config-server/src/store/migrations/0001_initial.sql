-- The first schema. Plain SQL that SQLite and PostgreSQL both run unchanged: TEXT, BIGINT,
-- no vendor types. JSON is kept as TEXT; times are milliseconds since the Unix epoch (UTC).

-- One row: the store's revision, raised by every change. A change takes it first, which
-- also makes writers take turns (the row lock in PostgreSQL, BEGIN IMMEDIATE in SQLite).
CREATE TABLE revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rev BIGINT NOT NULL
);
INSERT INTO revision (id, rev) VALUES (1, 0);

-- The layers: 'fleet', 'type:<device_type>', 'device:<device id>'. body is a JSON object;
-- rev is the revision of its last change, its version (ETag "v<rev>").
CREATE TABLE documents (
    doc TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    rev BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- Every change of a document: when, who, what (the leaf changes as JSON), and the document
-- as it was before and after, so any version can be restored.
CREATE TABLE history (
    rev BIGINT PRIMARY KEY,
    doc TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    reverted_to BIGINT,
    before_body TEXT,
    after_body TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE INDEX history_by_doc ON history (doc, rev);

-- What each device last did: its fetches and pushes, the revision its last fetch returned
-- (the race rule's reference), and what it says it is.
CREATE TABLE devices (
    device TEXT PRIMARY KEY,
    device_type TEXT,
    exporter_version TEXT,
    first_seen_at BIGINT NOT NULL,
    last_fetch_at BIGINT,
    last_push_at BIGINT,
    fetched_rev BIGINT
);

-- Per-device tokens, as SHA-256 digests in hex.
CREATE TABLE device_tokens (
    device TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
