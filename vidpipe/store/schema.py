"""Versioned, additive schema migrations for ``case.sqlite``.

Each migration is applied once, in order, inside a transaction, and recorded in
``schema_migrations``. Migrations only add (tables, columns, indexes, views): a case made by an
older version stays readable, and nothing ever rewrites evidence-derived rows in place.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial case schema", """
CREATE TABLE runs (
    run_id        TEXT PRIMARY KEY,
    command       TEXT NOT NULL,
    started_utc   TEXT NOT NULL,
    ended_utc     TEXT,
    status        TEXT NOT NULL CHECK (status IN ('running','completed','interrupted','aborted','failed')),
    operator      TEXT,
    argv          TEXT NOT NULL,          -- JSON list
    tool_version  TEXT NOT NULL,
    git_commit    TEXT,
    libraries     TEXT NOT NULL,          -- JSON {distribution: version}
    host          TEXT,
    config        TEXT NOT NULL,          -- JSON
    config_hash   TEXT NOT NULL,
    summary       TEXT                    -- JSON, the ingest summary when the run ended
);

CREATE TABLE sources (
    source_id     INTEGER PRIMARY KEY,
    root          TEXT NOT NULL UNIQUE,   -- absolute path given on the command line
    root_bytes    BLOB NOT NULL,
    added_run     TEXT NOT NULL REFERENCES runs(run_id)
);

-- One row per discovered evidence path (a file on disk or a member of an archive).
CREATE TABLE items (
    item_id       INTEGER PRIMARY KEY,
    locator       TEXT NOT NULL,          -- "/abs/path" or "/abs/a.zip!inner/x.jpg" (odd bytes escaped)
    locator_bytes BLOB NOT NULL UNIQUE,   -- exact bytes of the name: the identity of the path
    ref           BLOB NOT NULL,          -- fs path, then member names, NUL-separated (how to open it)
    source_id     INTEGER NOT NULL REFERENCES sources(source_id),
    parent_sha256 TEXT,                   -- the containing archive's content, for members
    depth         INTEGER NOT NULL DEFAULT 0,   -- archive nesting depth
    fs_kind       TEXT NOT NULL,          -- file | member | symlink | fifo | device | socket | other
    size          INTEGER,
    mtime_ns      INTEGER,
    extension     TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL CHECK (state IN ('pending','hashed','final')),
    status        TEXT CHECK (status IN ('ok','partial','failed','skipped')),   -- set when state = final
    reason        TEXT,
    sha256        TEXT,                   -- set when state = hashed
    ext_mismatch  INTEGER NOT NULL DEFAULT 0,
    detail        TEXT,                   -- JSON: link target, change notes
    first_run     TEXT NOT NULL REFERENCES runs(run_id),
    last_run      TEXT NOT NULL REFERENCES runs(run_id)
);
CREATE INDEX items_sha256 ON items(sha256);
CREATE INDEX items_state ON items(state);

-- One row per unique content.
CREATE TABLE media (
    sha256        TEXT PRIMARY KEY,
    md5           TEXT NOT NULL,
    sha1          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    mime          TEXT NOT NULL,
    label         TEXT NOT NULL,          -- sniffed format, e.g. JPEG, HEIC, MP4
    kind          TEXT NOT NULL,          -- image | raw_image | video | archive | audio | other
    state         TEXT NOT NULL CHECK (state IN ('pending','done')),
    status        TEXT CHECK (status IN ('ok','partial','failed','skipped')),
    reason        TEXT,
    width         INTEGER,
    height        INTEGER,
    exif          TEXT,                   -- JSON, the contract's exif object
    detail        TEXT,                   -- JSON: warnings, decode facts, video probe, archive listing
    first_run     TEXT NOT NULL REFERENCES runs(run_id),
    done_run      TEXT REFERENCES runs(run_id)
);

-- Perceptual and other content signals, one row per (content, signal type).
CREATE TABLE signals (
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    signal        TEXT NOT NULL,          -- phash | dhash | pdq
    value         TEXT NOT NULL,          -- hex
    quality       INTEGER,
    stage_version TEXT NOT NULL,
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    PRIMARY KEY (sha256, signal)
);

-- Which stage ran on which content, at which version: the unit of resumable work.
CREATE TABLE stages (
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    stage         TEXT NOT NULL,
    stage_version TEXT NOT NULL,
    status        TEXT NOT NULL,
    reason        TEXT,
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    done_utc      TEXT NOT NULL,
    PRIMARY KEY (sha256, stage)
);

-- Final status per discovered path: among paths with one content, the smallest name (bytewise) carries
-- the content's status and the rest are duplicates. Derived, so it is the same whatever order
-- the workers finished in (a resumed run equals an uninterrupted one).
CREATE VIEW item_status AS
SELECT i.item_id, i.locator, i.sha256,
       CASE
         WHEN i.state = 'final' THEN i.status
         WHEN i.state = 'pending' THEN NULL
         WHEN m.state = 'pending' THEN NULL
         WHEN i.locator_bytes = (SELECT MIN(j.locator_bytes) FROM items j WHERE j.sha256 = i.sha256) THEN m.status
         ELSE 'skipped'
       END AS status,
       CASE
         WHEN i.state = 'final' THEN i.reason
         WHEN i.state = 'pending' OR m.state = 'pending' THEN NULL
         WHEN i.locator_bytes = (SELECT MIN(j.locator_bytes) FROM items j WHERE j.sha256 = i.sha256) THEN m.reason
         ELSE 'duplicate_content'
       END AS reason
FROM items i LEFT JOIN media m ON m.sha256 = i.sha256;
"""),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]
