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
    status        TEXT NOT NULL CHECK (status IN ('running','completed','incomplete','interrupted','aborted','failed')),
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

MIGRATIONS.append((2, "faces and model provenance", """
-- Every model that produced a stored value, keyed by name and the SHA-256 of its weights.
CREATE TABLE models (
    model_key      TEXT PRIMARY KEY,      -- name@weights_sha256[:16]
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,         -- face_detector | face_embedder | scene_embedder
    weights_sha256 TEXT,
    info           TEXT NOT NULL,         -- JSON: licence, training data, versions, alignment
    first_run      TEXT NOT NULL REFERENCES runs(run_id)
);

-- One row per detected face. Boxes and landmarks are in the upright image (EXIF orientation
-- applied), in pixels of the full-resolution image, as a reviewer sees it.
CREATE TABLE faces (
    face_id       INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    frame_key     TEXT NOT NULL DEFAULT '',   -- '' for an image; the frame time for a video frame
    video_time_s  REAL,
    face_index    INTEGER NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    det_score     REAL NOT NULL,
    landmarks     TEXT,                   -- JSON [[x, y] x 5]
    size_px       REAL,
    sharpness     REAL,
    detector      TEXT NOT NULL REFERENCES models(model_key),
    embedder      TEXT NOT NULL REFERENCES models(model_key),
    embedding     BLOB NOT NULL,          -- float32 little-endian, L2-normalised
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    UNIQUE (sha256, frame_key, face_index, embedder)
);
CREATE INDEX faces_sha256 ON faces(sha256);
"""))

MIGRATIONS.append((3, "calibrated thresholds and index manifests", """
-- A threshold measured on labelled data, with the error rates it gives; search shows it.
CREATE TABLE calibrations (
    calibration_id INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,         -- face | scene | near_dup
    model_key      TEXT,                  -- the embedder the scores come from
    threshold      REAL NOT NULL,
    target         TEXT NOT NULL,         -- e.g. "FAR=0.001"
    far            REAL,                  -- measured false-match rate at the threshold
    frr            REAL,                  -- measured false-non-match rate at the threshold
    n_genuine      INTEGER,
    n_impostor     INTEGER,
    labels         TEXT,                  -- the labelled set it came from (path + SHA-256)
    detail         TEXT,                  -- JSON: ROC points
    created_utc    TEXT NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1
);
"""))

MIGRATIONS.append((4, "review: users, sessions, decisions, hash-chained audit", """
CREATE TABLE users (
    user_id       INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('examiner','analyst','reviewer','admin')),
    password_hash TEXT NOT NULL,          -- scrypt$n$r$p$salt$hash
    created_utc   TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

-- A reviewer's decision on one candidate (query vs media item / face). Nothing is "identified"
-- without one, and every decision names its reviewer.
CREATE TABLE decisions (
    decision_id   INTEGER PRIMARY KEY,
    query_sha256  TEXT NOT NULL,
    query_face    INTEGER,
    mode          TEXT NOT NULL,          -- face | scene | near-dup | video
    media_sha256  TEXT NOT NULL REFERENCES media(sha256),
    face_id       INTEGER,
    video_time_s  REAL,
    score         REAL,
    threshold     REAL,
    decision      TEXT NOT NULL CHECK (decision IN ('confirmed','rejected','unsure')),
    reason        TEXT,
    reviewer      TEXT NOT NULL,
    decided_utc   TEXT NOT NULL
);
CREATE INDEX decisions_media ON decisions(media_sha256);

-- Append-only audit trail; each entry holds the previous entry's hash (a hash chain).
CREATE TABLE audit (
    seq           INTEGER PRIMARY KEY,
    ts_utc        TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,          -- login | logout | search | reveal | decision | export | ...
    target        TEXT,
    detail        TEXT,                   -- JSON
    prev_hash     TEXT NOT NULL,
    entry_hash    TEXT NOT NULL
);
"""))

MIGRATIONS.append((5, "people: face clusters and reviewer constraints", """
-- Reviewer constraints between two faces; they bind every later clustering run.
CREATE TABLE face_constraints (
    face_a        INTEGER NOT NULL REFERENCES faces(face_id),
    face_b        INTEGER NOT NULL REFERENCES faces(face_id),
    kind          TEXT NOT NULL CHECK (kind IN ('must_link','cannot_link')),
    reviewer      TEXT NOT NULL,
    reason        TEXT,
    created_utc   TEXT NOT NULL,
    PRIMARY KEY (face_a, face_b),
    CHECK (face_a < face_b)
);

-- The latest clustering: person_id is the smallest face_id in the cluster (stable across runs
-- while that face stays in it).
CREATE TABLE face_person (
    face_id       INTEGER PRIMARY KEY REFERENCES faces(face_id),
    person_id     INTEGER NOT NULL,
    clustering_id INTEGER NOT NULL
);
CREATE INDEX face_person_person ON face_person(person_id);

CREATE TABLE clusterings (
    clustering_id INTEGER PRIMARY KEY,
    created_utc   TEXT NOT NULL,
    threshold     REAL NOT NULL,
    threshold_source TEXT NOT NULL,
    embedder      TEXT,
    faces         INTEGER NOT NULL,
    persons       INTEGER NOT NULL,
    detail        TEXT
);
"""))

MIGRATIONS.append((6, "video keyframes and vPDQ", """
-- Keyframes chosen per shot and interval; their hashes make video frames searchable like stills.
CREATE TABLE frames (
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    time_s        REAL NOT NULL,          -- exact presentation time from the stream start
    frame_index   INTEGER NOT NULL,
    shot_id       INTEGER NOT NULL,
    reason        TEXT NOT NULL,          -- shot_start | interval
    pdq           TEXT,
    pdq_quality   INTEGER,
    phash         TEXT,
    PRIMARY KEY (sha256, frame_index)
);

-- Meta-compatible vPDQ: one PDQ per sampled frame (frame number, quality, hash, timestamp).
CREATE TABLE vpdq (
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    frame_number  INTEGER NOT NULL,
    quality       INTEGER NOT NULL,
    pdq           TEXT NOT NULL,
    time_s        REAL NOT NULL,
    PRIMARY KEY (sha256, frame_number)
);
"""))

MIGRATIONS.append((7, "known-hash lists and their hits", """
-- One imported list file per list name; re-importing the same file under the same name adds nothing.
CREATE TABLE hashlists (
    list_id       INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    negative      INTEGER NOT NULL DEFAULT 0 CHECK (negative IN (0,1)),   -- 1: known false positives
    source_path   TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    imported_utc  TEXT NOT NULL,
    entries       INTEGER NOT NULL DEFAULT 0,
    categories    TEXT,                   -- JSON {code: label} given with the list, or NULL
    UNIQUE (name, source_sha256)
);

-- Hashes as lower-case hex; any of them may be NULL. Category exactly as the list gives it.
CREATE TABLE hashlist_entries (
    list_id       INTEGER NOT NULL REFERENCES hashlists(list_id),
    category      TEXT,
    md5           TEXT,
    sha1          TEXT,
    sha256        TEXT,
    pdq           TEXT
);
CREATE INDEX hashlist_entries_md5 ON hashlist_entries(md5) WHERE md5 IS NOT NULL;
CREATE INDEX hashlist_entries_sha1 ON hashlist_entries(sha1) WHERE sha1 IS NOT NULL;
CREATE INDEX hashlist_entries_sha256 ON hashlist_entries(sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX hashlist_entries_pdq ON hashlist_entries(pdq) WHERE pdq IS NOT NULL;

-- Derived: recomputed for the whole case by vidpipe.hashlists.match.match_case.
CREATE TABLE hashlist_hits (
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    list_id       INTEGER NOT NULL REFERENCES hashlists(list_id),
    category      TEXT,
    match         TEXT NOT NULL CHECK (match IN ('md5','sha1','sha256','pdq')),
    distance      INTEGER NOT NULL,       -- Hamming distance for pdq, 0 for exact digests
    suppressed    INTEGER NOT NULL DEFAULT 0 CHECK (suppressed IN (0,1)),   -- 1: a negative list covers it
    PRIMARY KEY (sha256, list_id, match)
);
"""))

MIGRATIONS.append((8, "scene (room) embeddings and reference places", """
-- One room vector per image, or per keyframe of a video; people are masked out before embedding
-- (the body boxes hidden are kept so that a reviewer can see what the vector did not look at).
CREATE TABLE scenes (
    scene_id      INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    frame_key     TEXT NOT NULL DEFAULT '',   -- '' for an image; the frame time for a video frame
    video_time_s  REAL,
    embedder      TEXT NOT NULL REFERENCES models(model_key),
    embedding     BLOB NOT NULL,          -- float32 little-endian, L2-normalised
    masked        TEXT NOT NULL,          -- JSON [[x1, y1, x2, y2], ...] in upright full-resolution pixels
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    UNIQUE (sha256, frame_key, embedder)
);
CREATE INDEX scenes_sha256 ON scenes(sha256);

-- Reference photos that name a place (a hotel's own room photos, say), from a labels CSV given
-- at ingest. A scene match on one of these can name the place; the label file is kept by hash.
CREATE TABLE places (
    sha256        TEXT NOT NULL REFERENCES media(sha256),
    place         TEXT NOT NULL,          -- e.g. the hotel's name
    detail        TEXT,                   -- JSON: the CSV's other columns (chain, city, room, ...)
    label_file    TEXT NOT NULL,          -- absolute path of the CSV
    label_sha256  TEXT NOT NULL,
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    PRIMARY KEY (sha256, place)
);
"""))

MIGRATIONS.append((9, "retention tombstones", """
-- Content removed under a retention order (vidpipe retention remove). Its derived rows, index
-- vectors and thumbnails are deleted and its paths become 'skipped: removed_retention'; this row
-- keeps what was removed, when, by whom and why. Evidence files are never touched.
CREATE TABLE retention_tombstones (
    tombstone_id  INTEGER PRIMARY KEY,
    sha256        TEXT NOT NULL,          -- no foreign key: the media row is gone
    md5           TEXT,
    sha1          TEXT,
    size          INTEGER,
    kind          TEXT,
    removed_utc   TEXT NOT NULL,
    removed_by    TEXT NOT NULL,
    reason        TEXT NOT NULL,
    audit_seq     INTEGER NOT NULL,       -- the audit entry recording the removal
    detail        TEXT NOT NULL           -- JSON: paths, rows deleted per table, archived review records
);
CREATE INDEX retention_tombstones_sha256 ON retention_tombstones(sha256);
"""))

# Reserved migration numbers (keep them in this order; each is appended at its own marker):
# 10 item identity (typed member keys)   11 decisions bound to the audit chain, append-only
# 12 shared review queue                 13 login throttling, sessions and reviewer preferences
# 14 derived items (pages, thumbnails, appended data)
# -- migration 10 --
# -- migration 11 --
MIGRATIONS.append((11, "decisions bound to the audit chain; audit and decisions append-only", """
-- The audit entry that records the decision; its detail holds every field of the row
-- (vidpipe/store/decision_log.py). Decisions made before this migration get the entry that
-- logged their decision_id.
ALTER TABLE decisions ADD COLUMN audit_seq INTEGER;
UPDATE decisions SET audit_seq = (SELECT max(a.seq) FROM audit a WHERE a.action = 'decision'
    AND json_valid(a.detail) AND json_extract(a.detail, '$.decision_id') = decisions.decision_id);
CREATE UNIQUE INDEX decisions_audit_seq ON decisions(audit_seq);

-- Content whose review records a retention removal is archiving right now: filled and emptied
-- inside the removal's transaction (vidpipe/store/retention.py), empty at any other time.
CREATE TABLE retention_pending (sha256 TEXT PRIMARY KEY);

-- Append-only: the audit trail is never changed; a decision is only ever removed by a retention
-- removal, which archives it in the tombstone first. (Anyone who can drop a trigger can get
-- round this; `vidpipe verify` and an anchored head (`vidpipe audit checkpoint`) find what they did.)
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only: entries cannot be changed'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only: entries cannot be deleted'); END;
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only: record a new decision instead'); END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
WHEN NOT EXISTS (SELECT 1 FROM retention_pending p WHERE p.sha256 = OLD.media_sha256)
BEGIN SELECT RAISE(ABORT, 'decisions are append-only: only a retention removal archives them'); END;
"""))
# -- migration 12 --
MIGRATIONS.append((12, "shared review queue", """
-- Candidates sent from a search to review, shared by every user of the case (ui/queue.py).
-- One open row per candidate (item_key: mode, query, query face, media, frame, face; a decided
-- one may be sent again for a second opinion); reviewers work the open rows in score order. A claim says who has the item open, so two reviewers do not work
-- one item at once; it lapses after a while (a closed tab does not hold an item for ever).
CREATE TABLE review_queue (
    item_id        INTEGER PRIMARY KEY,
    item_key       TEXT NOT NULL,
    query_sha256   TEXT NOT NULL,
    query_path     TEXT NOT NULL,
    query_label    TEXT NOT NULL,
    query_kind     TEXT NOT NULL,
    query_face     INTEGER,
    query_box      TEXT,                  -- JSON [x1, y1, x2, y2] in query pixels
    query_face_id  INTEGER,               -- the query face as a face of the case, when known
    mode           TEXT NOT NULL,
    media_sha256   TEXT NOT NULL,
    media_path     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    video_time_s   REAL,
    box            TEXT,                  -- JSON [x1, y1, x2, y2] in candidate pixels
    face_id        INTEGER,
    score          REAL,
    threshold      REAL,
    rank           INTEGER NOT NULL,
    above_threshold INTEGER,
    sent_by        TEXT NOT NULL,
    sent_utc       TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done')),
    claimed_by     TEXT,
    claimed_utc    TEXT,
    decision_id    INTEGER,               -- the decision that closed the item
    done_by        TEXT,
    done_utc       TEXT
);
CREATE INDEX review_queue_open ON review_queue(state, score);
CREATE UNIQUE INDEX review_queue_open_key ON review_queue(item_key) WHERE state = 'open';

-- A reviewer put an item aside for now; it comes back to them after the items not skipped.
CREATE TABLE review_skips (
    item_id        INTEGER NOT NULL REFERENCES review_queue(item_id),
    reviewer       TEXT NOT NULL,
    skipped_utc    TEXT NOT NULL,
    PRIMARY KEY (item_id, reviewer)
);

-- A decision that contradicts an earlier one on the same pair names it, with the reason.
CREATE TABLE decision_overrules (
    decision_id    INTEGER NOT NULL REFERENCES decisions(decision_id),
    overruled_id   INTEGER NOT NULL REFERENCES decisions(decision_id),
    reviewer       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_utc    TEXT NOT NULL,
    PRIMARY KEY (decision_id, overruled_id)
);
"""))
# -- migration 13 --
MIGRATIONS.append((13, "case-insensitive user names, name-hashing key, reviewer preferences", """
-- User names are case-insensitive ("Admin" and "admin" are one account). Enforced by triggers,
-- not a UNIQUE index on lower(name): an older case holding both spellings would make the index
-- fail to build, and the case would no longer open (ui/auth.py picks the exact spelling then).
-- SQLite's lower() folds ASCII only; ui/auth.py compares names with str.casefold() as well.
CREATE INDEX users_name_lower ON users(lower(name));
CREATE TRIGGER users_name_nocase_insert BEFORE INSERT ON users
WHEN EXISTS (SELECT 1 FROM users u WHERE lower(u.name) = lower(NEW.name))
BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: users.name (case-insensitive)'); END;
CREATE TRIGGER users_name_nocase_update BEFORE UPDATE OF name ON users
WHEN EXISTS (SELECT 1 FROM users u WHERE lower(u.name) = lower(NEW.name) AND u.user_id <> NEW.user_id)
BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: users.name (case-insensitive)'); END;

-- Per-case secrets of the review UI, made on first use: 'name_hmac' keys the hash that stands for
-- an unknown user name in the audit trail (a password typed into the name field is never stored).
CREATE TABLE ui_secrets (
    name         TEXT PRIMARY KEY,
    secret       BLOB NOT NULL,
    created_utc  TEXT NOT NULL
);

-- Each reviewer's wellness settings (ui/auth.py: Prefs); no row = the defaults.
CREATE TABLE user_prefs (
    user_id        INTEGER PRIMARY KEY REFERENCES users(user_id),
    blur_share     REAL NOT NULL,      -- blur radius as a share of the image width
    reveal_s       INTEGER NOT NULL,   -- seconds a revealed image stays clear (0 = until navigated away)
    break_every    INTEGER NOT NULL,   -- reveals between break reminders (0 = never)
    break_minutes  INTEGER NOT NULL,   -- minutes of session between break reminders (0 = never)
    updated_utc    TEXT NOT NULL
);
"""))
# -- migration 14 --
# -- migration 15 --
MIGRATIONS.append((15, "evidence roots as given and as resolved", """
-- An evidence root is walked at its resolved path (os.path.realpath): sources.root/root_bytes now
-- hold that path, and these columns the path as given on the command line (absolute, links not
-- resolved), so '/link-to-folder' is recorded with the folder it led to. NULL in older rows, whose
-- root was the path as given.
ALTER TABLE sources ADD COLUMN given_root TEXT;
ALTER TABLE sources ADD COLUMN given_root_bytes BLOB;
"""))

SCHEMA_VERSION = MIGRATIONS[-1][0]
