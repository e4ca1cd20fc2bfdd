"""The single database writer: every change to a case during a run goes through here.

Workers return values; this class turns them into rows, in batches, inside transactions, so a
process killed at any moment leaves the case at the last committed batch and the next run
continues from there.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any

from vidpipe.pipeline.tasks import STAGE_VERSIONS, ContentResult, HashResult
from vidpipe.sources.base import ItemRef, WalkEntry
from vidpipe.store.casedb import utc_now


def _readable(raw: bytes) -> str:
    """A path as storable text: UTF-8, with other bytes shown as ``\\xNN`` (as item locators show them)."""
    return raw.decode("utf-8", "backslashreplace")


def _frame_key(video_time_s: float) -> str:
    """A video frame's key in faces/scenes/stages rows (as apply_faces writes it)."""
    return f"{round(video_time_s, 3):.3f}"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


@dataclass
class PendingItem:
    item_id: int
    ref: ItemRef


@dataclass
class CaseWriter:
    conn: sqlite3.Connection
    run_id: str = ""
    _in_tx: bool = field(default=False, init=False)
    _ops: int = field(default=0, init=False)

    # -- transactions -------------------------------------------------------------------------
    # Not casedb.transaction: each write opens the batch (`begin`) and the runner commits when it
    # chooses (every 2,000 discovered paths, after archive members, at the end of a pass), so one
    # transaction spans many calls and cannot be a `with` block. Batching is what keeps ingest fast.
    def begin(self) -> None:
        if not self._in_tx:
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.conn.execute("COMMIT")
            self._in_tx = False
            self._ops = 0

    def rollback(self) -> None:
        if self._in_tx:
            self.conn.execute("ROLLBACK")
            self._in_tx = False
            self._ops = 0

    @property
    def uncommitted(self) -> int:
        return self._ops

    # -- runs ---------------------------------------------------------------------------------
    def abort_stale_runs(self) -> int:
        """Runs left 'running' by a killed process (we hold the lock, so none is alive)."""
        cur = self.conn.execute("UPDATE runs SET status='aborted', ended_utc=COALESCE(ended_utc, ?) "
                                "WHERE status='running'", (utc_now(),))
        return cur.rowcount

    def begin_run(self, command: str, env: dict[str, Any], config: dict[str, Any], config_hash: str) -> str:
        self.run_id = uuid.uuid4().hex
        self.conn.execute(
            "INSERT INTO runs(run_id, command, started_utc, status, operator, argv, tool_version, git_commit, "
            "libraries, host, config, config_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (self.run_id, command, utc_now(), "running", env["operator"], _json(env["argv"]), env["tool_version"],
             env["git_commit"], _json(env["libraries"]), env["host"], _json(config), config_hash))
        return self.run_id

    def end_run(self, status: str, summary: dict[str, Any] | None) -> None:
        self.commit()
        self.conn.execute("UPDATE runs SET status=?, ended_utc=?, summary=? WHERE run_id=?",
                          (status, utc_now(), _json(summary), self.run_id))

    # -- discovery ----------------------------------------------------------------------------
    def register_source(self, root_bytes: bytes, given_bytes: bytes | None = None) -> int:
        """The source row for a walked root (resolved path), created on first sight; return its id.

        Rows are found by their exact bytes. The text columns hold a readable form (bytes that are
        not UTF-8 as ``\\xNN``; a surrogate-escaped str cannot be stored as SQLite text). The path as
        given (``given_bytes``, e.g. the link that led to the root) is kept as first recorded; every
        run's own arguments are in ``runs.argv``.
        """
        row = self.conn.execute("SELECT source_id FROM sources WHERE root_bytes=?", (root_bytes,)).fetchone()
        if row is not None:
            return row[0]
        given_bytes = root_bytes if given_bytes is None else given_bytes
        root = text = _readable(root_bytes)
        n = 1
        while self.conn.execute("SELECT 1 FROM sources WHERE root=?", (text,)).fetchone():
            n += 1  # another root reads alike (a literal "\\xff" vs the byte 0xff): number this one
            text = f"{root} [#{n}]"
        cur = self.conn.execute(
            "INSERT INTO sources(root, root_bytes, added_run, given_root, given_root_bytes) VALUES (?,?,?,?,?)",
            (text, root_bytes, self.run_id, _readable(given_bytes), given_bytes))
        return cur.lastrowid

    def upsert_item(self, entry: WalkEntry, source_id: int, parent_sha256: str | None = None) -> None:
        """Record a discovered path; a known, unchanged path keeps its state (no new work)."""
        self.begin()
        self._ops += 1
        ref = entry.ref
        row = self.conn.execute("SELECT item_id, size, mtime_ns, state FROM items WHERE locator_bytes=?",
                                (ref.identity_bytes,)).fetchone()
        if row is None and ref.members and all(m.kind == "member" and m.index is None for m in ref.members):
            row = self._adopt_legacy_member(ref)
        state, status, reason = ("final", *entry.preset) if entry.preset else ("pending", None, None)
        if row is None:
            self.conn.execute(
                "INSERT INTO items(locator, locator_bytes, ref, source_id, parent_sha256, depth, fs_kind, size, "
                "mtime_ns, extension, state, status, reason, detail, first_run, last_run) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (ref.locator, ref.identity_bytes, ref.to_blob(), source_id, parent_sha256, entry.depth, entry.fs_kind,
                 entry.size, entry.mtime_ns, ref.extension, state, status, reason, _json(entry.extra or None),
                 self.run_id, self.run_id))
            return
        changed = (row["size"], row["mtime_ns"]) != (entry.size, entry.mtime_ns) and entry.fs_kind == "file"
        if changed:
            # The evidence at this path changed since it was processed: process it again, and say so.
            self.conn.execute(
                "UPDATE items SET size=?, mtime_ns=?, state=?, status=?, reason=?, sha256=NULL, last_run=?, "
                "detail=json_set(COALESCE(detail,'{}'), '$.changed_in_run', ?) WHERE item_id=?",
                (entry.size, entry.mtime_ns, state, status, reason, self.run_id, self.run_id, row["item_id"]))
        else:
            self.conn.execute("UPDATE items SET last_run=? WHERE item_id=?", (self.run_id, row["item_id"]))

    def _adopt_legacy_member(self, ref: ItemRef) -> Any:
        """A member recorded by a version before typed member keys: give it its new identity.

        Only member rows are looked at, so a file literally named ``a.zip!x.jpg`` never stands in."""
        row = self.conn.execute("SELECT item_id, size, mtime_ns, state FROM items WHERE locator_bytes=? "
                                "AND fs_kind != 'file'", (ref.legacy_locator_bytes,)).fetchone()
        if row is not None:
            self.conn.execute("UPDATE items SET locator_bytes=?, ref=? WHERE item_id=?",
                              (ref.identity_bytes, ref.to_blob(), row["item_id"]))
        return row

    # -- worker results -----------------------------------------------------------------------
    def apply_hash(self, result: HashResult) -> bool:
        """Store an item's digests; return True when its content is new to the case."""
        self.begin()
        self._ops += 1
        if not result.ok:
            self.conn.execute("UPDATE items SET state='final', status='failed', reason=? WHERE item_id=?",
                              (result.reason, result.item_id))
            return False
        if self.conn.execute("SELECT 1 FROM retention_tombstones WHERE sha256=? LIMIT 1", (result.sha256,)).fetchone():
            # Content removed under retention stays removed: a new path or copy of it is recorded, not processed.
            self.conn.execute("UPDATE items SET state='final', status='skipped', reason='removed_retention' "
                              "WHERE item_id=?", (result.item_id,))
            return False
        self.conn.execute("UPDATE items SET state='hashed', sha256=?, ext_mismatch=? WHERE item_id=?",
                          (result.sha256, int(result.ext_mismatch), result.item_id))
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO media(sha256, md5, sha1, size, mime, label, kind, state, first_run) "
            "VALUES (?,?,?,?,?,?,?, 'pending', ?)",
            (result.sha256, result.md5, result.sha1, result.size, result.mime, result.label, result.kind, self.run_id))
        return cur.rowcount == 1

    def apply_content(self, result: ContentResult, members_source: tuple[int, ItemRef, int] | None = None) -> None:
        """Store one content's features and mark it done, in one transaction with its signals."""
        self.begin()
        self._ops += 1
        detail = dict(result.detail)
        detail.pop("elapsed_ms", None)  # timing differs between runs; it is not a property of the evidence
        frames, vpdq = result.keyframes, result.vpdq
        if frames is not None:
            kept = self._drop_gone_frame_features(result.sha256, {_frame_key(f.time_s) for f in frames})
            if kept:
                detail["faces_kept_for_review"] = kept  # faces at dropped frame times a reviewer used
            self.conn.execute("DELETE FROM frames WHERE sha256=?", (result.sha256,))
            self.conn.executemany(
                "INSERT INTO frames(sha256, time_s, frame_index, shot_id, reason, pdq, pdq_quality, phash) "
                "VALUES (?,?,?,?,?,?,?,?)",
                [(result.sha256, f.time_s, f.frame_index, f.shot_id, f.reason, f.pdq, f.pdq_quality, f.phash)
                 for f in frames])
        if vpdq is not None:
            self.conn.execute("DELETE FROM vpdq WHERE sha256=?", (result.sha256,))
            self.conn.executemany("INSERT INTO vpdq(sha256, frame_number, quality, pdq, time_s) VALUES (?,?,?,?,?)",
                                  [(result.sha256, f.frame_number, f.quality, f.pdq, f.time_s) for f in vpdq])
        self.conn.execute(
            "UPDATE media SET state='done', status=?, reason=?, width=?, height=?, exif=?, detail=?, done_run=? "
            "WHERE sha256=?",
            (result.status, result.reason, result.width, result.height, _json(result.exif), _json(detail),
             self.run_id, result.sha256))
        for signal, hex_value, quality in result.signals:
            self.conn.execute(
                "INSERT OR REPLACE INTO signals(sha256, signal, value, quality, stage_version, run_id) "
                "VALUES (?,?,?,?,?,?)",
                (result.sha256, signal, hex_value, quality, STAGE_VERSIONS.get(result.stage, result.stage), self.run_id))
        self.conn.execute(
            "INSERT OR REPLACE INTO stages(sha256, stage, stage_version, status, reason, run_id, done_utc) "
            "VALUES (?,?,?,?,?,?,?)",
            (result.sha256, result.stage, STAGE_VERSIONS.get(result.stage, result.stage), result.status,
             result.reason, self.run_id, utc_now()))
        if result.members is not None and members_source is not None:
            source_id, parent_ref, depth = members_source
            for member in result.members:
                entry = WalkEntry(parent_ref.child(member.key), member.fs_kind, member.size, None, member.preset,
                                  depth=depth + 1)
                self.upsert_item(entry, source_id, parent_sha256=result.sha256)
                if member.hashed is not None:
                    self._apply_member_hash(entry.ref, member.hashed)

    def _drop_gone_frame_features(self, sha256: str, new_keys: set[str]) -> int:
        """A video's keyframes are being replaced (say a ``partial: timeout`` video retried with a
        larger budget): its faces and scenes at frame times that are no longer keyframes go, in the
        same transaction as the new frames, so no face points at a frame the case does not have.

        Faces and scenes at surviving times stay until the face stage replaces them. When the set of
        times changed, the video's ``faces``/``scenes`` stage marks are cleared as well: the new
        frames are not scanned yet, and a missing mark is what makes a run (this one, or a later one
        after ``--no-faces``) scan them. A face a reviewer has used (a decision or a must/cannot-link
        constraint) is kept, never deleted (the count is returned); its cluster membership is dropped.
        """
        old_keys = {_frame_key(row[0]) for row in
                    self.conn.execute("SELECT time_s FROM frames WHERE sha256=?", (sha256,))}
        old_keys |= {row[0] for row in self.conn.execute(
            "SELECT frame_key FROM faces WHERE sha256=? AND frame_key != '' UNION "
            "SELECT frame_key FROM scenes WHERE sha256=? AND frame_key != ''", (sha256, sha256))}
        if old_keys == new_keys:
            return 0  # the same keyframes (the video stage redone for its faces): nothing to replace
        kept_faces = 0
        for key in sorted(old_keys - new_keys):
            ids = [row[0] for row in self.conn.execute(
                "SELECT face_id FROM faces WHERE sha256=? AND frame_key=?", (sha256, key))]
            for face_id in ids:
                if self.conn.execute(
                        "SELECT 1 FROM face_constraints WHERE face_a=? OR face_b=? UNION ALL "
                        "SELECT 1 FROM decisions WHERE face_id=? OR query_face=? LIMIT 1",
                        (face_id, face_id, face_id, face_id)).fetchone():
                    kept_faces += 1  # a reviewer's work refers to it
                    continue
                self.conn.execute("DELETE FROM face_person WHERE face_id=?", (face_id,))
                self.conn.execute("DELETE FROM faces WHERE face_id=?", (face_id,))
            self.conn.execute("DELETE FROM scenes WHERE sha256=? AND frame_key=?", (sha256, key))
            self.conn.execute("DELETE FROM stages WHERE sha256=? AND stage IN (?, ?)",
                              (sha256, f"faces@{key}", f"scenes@{key}"))
        self.conn.execute("DELETE FROM stages WHERE sha256=? AND stage IN ('faces', 'scenes')", (sha256,))
        return kept_faces

    def _apply_member_hash(self, ref: ItemRef, hashed: HashResult) -> None:
        """Store the digests an archive pass computed for a member (vidpipe.pipeline.archive_task), so
        the member is not opened again to be hashed; a member already past 'pending' keeps its state."""
        row = self.conn.execute("SELECT item_id FROM items WHERE locator_bytes=? AND state='pending'",
                                (ref.identity_bytes,)).fetchone()
        if row is not None:
            self.apply_hash(dataclasses.replace(hashed, item_id=row["item_id"], content=None))

    def fail_content(self, sha256: str, stage: str, reason: str, detail: str = "") -> None:
        self.apply_content(ContentResult(sha256, "failed", reason, stage, detail={"error": detail} if detail else {}))

    def fail_item(self, item_id: int, reason: str) -> None:
        self.begin()
        self._ops += 1
        self.conn.execute("UPDATE items SET state='final', status='failed', reason=? WHERE item_id=?",
                          (reason, item_id))

    # -- faces --------------------------------------------------------------------------------
    def register_model(self, role: str, info: dict[str, Any]) -> str:
        """Record a model's provenance once; return its key (name@first 16 hex of its weights hash)."""
        name = info.get("model") or info.get("name") or role
        sha = info.get("weights_sha256")
        key = f"{name}@{(sha or 'unknown')[:16]}"
        self.conn.execute("INSERT OR IGNORE INTO models(model_key, name, role, weights_sha256, info, first_run) "
                          "VALUES (?,?,?,?,?,?)", (key, name, role, sha, _json(info), self.run_id))
        return key

    def apply_faces(self, output: Any, detector_key: str, embedder_key: str) -> None:
        """Store one image's (or frame's) faces and mark its face stage done, in one transaction."""
        import numpy as np

        self.begin()
        self._ops += 1
        version = f"faces-1:{detector_key}:{embedder_key}"
        frame_key = "" if output.video_time_s is None else f"{output.video_time_s:.3f}"
        if output.error:
            self.conn.execute(
                "INSERT OR REPLACE INTO stages(sha256, stage, stage_version, status, reason, run_id, done_utc) "
                "VALUES (?,?,?,?,?,?,?)", (output.sha256, "faces" + (f"@{frame_key}" if frame_key else ""), version,
                                           "failed", output.error, self.run_id, utc_now()))
            self.conn.execute("UPDATE media SET status='partial', reason=? WHERE sha256=? AND status='ok'",
                              (output.error, output.sha256))
            return
        self.conn.execute("DELETE FROM faces WHERE sha256=? AND frame_key=? AND embedder=?",
                          (output.sha256, frame_key, embedder_key))
        for index, (face, vector) in enumerate(zip(output.faces, output.embeddings)):
            x1, y1, x2, y2 = (float(v) for v in face.box)
            self.conn.execute(
                "INSERT INTO faces(sha256, frame_key, video_time_s, face_index, x1, y1, x2, y2, det_score, landmarks, "
                "size_px, sharpness, detector, embedder, embedding, run_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (output.sha256, frame_key, output.video_time_s, index, x1, y1, x2, y2, float(face.det_score),
                 _json([[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks]) if face.landmarks else None,
                 float(face.size_px), float(face.sharpness), detector_key, embedder_key,
                 np.asarray(vector, dtype="<f4").tobytes(), self.run_id))
        if not frame_key:
            self.conn.execute(
                "INSERT OR REPLACE INTO stages(sha256, stage, stage_version, status, reason, run_id, done_utc) "
                "VALUES (?,?,?,?,?,?,?)", (output.sha256, "faces", version, "ok", None, self.run_id, utc_now()))

    def apply_scene(self, output: Any, scene_key: str, version: str) -> None:
        """Store one image's (or frame's) masked room vector and, for an image, mark its scene stage."""
        import numpy as np

        self.begin()
        self._ops += 1
        frame_key = "" if output.video_time_s is None else f"{output.video_time_s:.3f}"
        stage = "scenes" + (f"@{frame_key}" if frame_key else "")
        error = output.error or output.scene_error or (None if output.scene is not None else "scene_missing")
        if error:
            self.conn.execute(
                "INSERT OR REPLACE INTO stages(sha256, stage, stage_version, status, reason, run_id, done_utc) "
                "VALUES (?,?,?,?,?,?,?)", (output.sha256, stage, version, "failed", error, self.run_id, utc_now()))
            self.conn.execute("UPDATE media SET status='partial', reason=? WHERE sha256=? AND status='ok'",
                              (error, output.sha256))
            return
        self.conn.execute(
            "INSERT INTO scenes(sha256, frame_key, video_time_s, embedder, embedding, masked, run_id) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT(sha256, frame_key, embedder) DO UPDATE SET "
            "embedding=excluded.embedding, masked=excluded.masked, run_id=excluded.run_id",
            (output.sha256, frame_key, output.video_time_s, scene_key,
             np.asarray(output.scene, dtype="<f4").tobytes(), _json(output.scene_masked), self.run_id))
        if not frame_key:
            self.conn.execute(
                "INSERT OR REPLACE INTO stages(sha256, stage, stage_version, status, reason, run_id, done_utc) "
                "VALUES (?,?,?,?,?,?,?)", (output.sha256, "scenes", version, "ok", None, self.run_id, utc_now()))

    def mark_stage(self, sha256: str, stage: str, version: str, status: str = "ok", reason: str | None = None) -> None:
        self.begin()
        self._ops += 1
        self.conn.execute(
            "INSERT OR REPLACE INTO stages(sha256, stage, stage_version, status, reason, run_id, done_utc) "
            "VALUES (?,?,?,?,?,?,?)", (sha256, stage, version, status, reason, self.run_id, utc_now()))
