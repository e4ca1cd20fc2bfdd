"""The ingest runner: discover, hash, extract, write — resumable and idempotent.

Work is keyed by content (SHA-256) and stage. Discovery records every path first; workers then
hash each pending path and derive features once per new content; the single writer commits
every ``batch_size`` results. A killed run leaves committed batches; the same command resumes
from them and ends with exactly the case an uninterrupted run gives.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vidpipe import filetype
from vidpipe.errors import Interrupted
from vidpipe.pipeline.engines import make_pool
from vidpipe.pipeline.retry import (
    carried_record,
    keep_earlier_partial,
    plan_retries,
    retry_config,
    start_retries,
)
from vidpipe.pipeline.sandbox import SandboxLimits, SandboxPool, TaskFailure
from vidpipe.pipeline.summary import ingest_summary, missing_model_stages_sql
from vidpipe.pipeline.task_keys import ContentKey, FaceInputKey, HashKey, TaskKey, VideoProbeKey
from vidpipe.pipeline.tasks import ContentResult, ContentTask, HashResult, HashTask, run_content, run_hash
from vidpipe.provenance import config_hash, run_environment
from vidpipe.sources import ItemRef, source_for
from vidpipe.sources.limits import ArchiveLimits
from vidpipe.store.case_guard import refuse_case_inside_sources
from vidpipe.store.casedb import WriteLock, open_case
from vidpipe.store.queries.paths import first_path_sql
from vidpipe.store.writer import CaseWriter


def _face_input_entry(task: ContentTask):
    from vidpipe.pipeline.image_task import face_input_task

    return face_input_task(task)


def _video_probe_entry(task: ContentTask):
    from vidpipe.pipeline.video_task import probe_video

    return probe_video(task)


WORKER_FUNCTIONS = {"hash": run_hash, "content": run_content, "face_input": _face_input_entry,
                    "video_probe": _video_probe_entry}


@dataclass
class IngestConfig:
    """What an ingest run does; hashed into the run's provenance."""

    sources: list[str]                 # evidence roots, resolved (os.path.realpath) by the CLI
    workers: int = 2
    given_sources: list[str] = field(default_factory=list)  # the same roots as typed (absolute), if resolved
    faces: bool = True
    scenes: bool = True
    engine: str = "local"
    ray_address: str | None = None
    ray_insecure: bool = False         # join ray_address without token authentication (--ray-insecure)
    max_pixels: int = 200_000_000
    face_detector: str = "mtcnn"
    face_embedder: str = "facenet"
    scene_embedder: str = "effnet-lite0"
    places: str | None = None          # CSV naming the place each reference photo shows (vidpipe.places)
    face_weights: str | None = None
    device: str | None = None
    task_timeout_s: float = 60.0
    worker_memory_mb: int = 2048
    batch_size: int = 64
    commit_interval_s: float = 2.0
    archive_limits: ArchiveLimits = field(default_factory=ArchiveLimits)
    video_budget_scale: float = 1.0  # multiplies the measured video time budget (vidpipe.video.budget)
    retry_failed: bool = True        # retry earlier sandbox-limit failures once (vidpipe.pipeline.retry)

    def __post_init__(self) -> None:
        # Absurd limits would fail every file and poison the case: refuse them before any work.
        from vidpipe.errors import UsageError
        from vidpipe.pipeline.limits import limits_problem

        problem = limits_problem(self)
        if problem:
            raise UsageError(problem)

    def provenance(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("workers")  # parallelism does not change results
        data.pop("ray_address")  # nor does where the cluster is (the engine is recorded)
        data.pop("ray_insecure")  # nor how the driver authenticates to it
        data.pop("device")  # recorded separately, in the run's environment
        return data


class _StopFlag:
    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        self.signum = signum


def _hash_timeout(size: int | None, base: float) -> float:
    # Reading and hashing runs at well over 50 MB/s; big files get time in proportion. A video's
    # decode is budgeted by its duration instead (_Scheduler._on_video_probe, vidpipe.video.budget).
    return base + (size or 0) / 50e6


# A probe opens the container and decodes one frame; a floor so that a tiny --timeout (or a
# busy machine) does not turn every video into a probe timeout.
PROBE_MIN_TIMEOUT_S = 10.0


def run_ingest(case_dir: Path, config: IngestConfig, progress: bool = True, *,
               refresh_indexes: Callable[[Any, Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Ingest ``config.sources`` into the case; return the contract's summary object.

    ``refresh_indexes(paths, conn)``, when given, brings the case's indexes up to date after a
    completed run and its answer becomes the summary's ``indexes`` (the CLI passes
    `vidpipe.search.build.refresh_indexes`; the pipeline sits below search and does not import it).
    """
    started = time.monotonic()
    refuse_case_inside_sources(case_dir, config.sources)  # exit 2 before any work
    if config.places:  # a malformed label file stops the run before any work (exit 2)
        from vidpipe.places import read_label_file

        read_label_file(Path(config.places))
    paths, conn = open_case(case_dir, create=True)
    stop = _StopFlag()
    with WriteLock(paths):
        writer = CaseWriter(conn)
        writer.abort_stale_runs()
        writer.begin_run("ingest", run_environment(), config.provenance(), config_hash(config.provenance()))
        old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            faces = _open_face_stage(writer, config) if (config.faces or config.scenes) else None
            source_ids = [_discover(writer, root, given)
                          for root, given in zip(config.sources, config.given_sources or config.sources)]
            writer.commit()
            retries = plan_retries(conn, source_ids, config_hash(config.provenance())) if config.retry_failed else None
            report: dict[str, Any] = {}
            interrupted = _process(writer, config, stop, progress, faces, last=not retries, report=report)
            if retries and not interrupted:
                interrupted = _retry(writer, config, retries, stop, progress, faces)
            places = _apply_places(writer, config) if config.places and not interrupted else None
            summary = ingest_summary(conn, source_ids, writer.run_id, time.monotonic() - started,
                                     faces_enabled=config.faces, scenes_enabled=config.scenes)
            if places is not None:
                summary["places"] = places
            summary["retried"] = len(retries) if retries else 0
            summary["sandbox"] = report.get("sandbox")  # what confined the decode workers on this host
            if interrupted:
                summary["status"] = "interrupted"
                writer.end_run("interrupted", summary)
                raise Interrupted(f"interrupted by signal {stop.signum}; the case is consistent; "
                                  "run the same command again to resume")
            if summary["status"] == "completed":
                if refresh_indexes is not None:
                    summary["indexes"] = refresh_indexes(paths, conn)
                summary["hashlist_hits"] = _match_hash_lists(conn)
            writer.end_run(summary["status"], summary)
            return summary
        except Interrupted:
            raise
        except BaseException:
            writer.rollback()
            writer.end_run("failed", None)
            raise
        finally:
            for s, h in old_handlers.items():
                signal.signal(s, h)
            conn.close()


@dataclass
class _Faces:
    """The model stage and the keys of its models (faces and/or scenes; detection serves both)."""

    stage: Any
    detector_key: str
    embedder_key: str | None
    scene_key: str | None = None

    @property
    def faces_on(self) -> bool:
        return self.embedder_key is not None

    @property
    def scenes_on(self) -> bool:
        return self.scene_key is not None

    @property
    def faces_version(self) -> str:
        return f"faces-1:{self.detector_key}:{self.embedder_key}"

    @property
    def scenes_version(self) -> str:
        return f"scenes-1:{self.detector_key}:{self.scene_key}"


def _open_face_stage(writer: CaseWriter, config: IngestConfig) -> _Faces:
    """Load the models before any work: missing weights stop the run here (exit 3), not hours in.

    The face detector loads for scenes alone too: its boxes mask the people out of room vectors."""
    import os

    if config.engine == "ray":  # a cluster with GPUs runs the models in GPU actors instead
        on_gpus = _open_ray_model_stage(writer, config)
        if on_gpus is not None:
            return on_gpus

    # The model thread shares the CPUs with the decode workers: idle OpenMP threads must sleep,
    # not spin (must be set before torch starts its thread pool).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from vidpipe.models.device import configure_cpu_threads, select_device
    from vidpipe.models.registry import ModelConfig, load_case_models
    from vidpipe.pipeline.face_stage import FaceStage

    device = select_device(config.device)
    if device == "cpu":
        configure_cpu_threads()
    models = load_case_models(ModelConfig.from_ingest(config), device)
    keys = {role: writer.register_model(role, models.provenance(role)) for role in models.models()}
    writer.commit()
    return _Faces(FaceStage(models.detector, models.embedder, scene_embedder=models.scene_embedder),
                  keys["face_detector"], keys.get("face_embedder"), keys.get("scene_embedder"))


def _open_ray_model_stage(writer: CaseWriter, config: IngestConfig) -> _Faces | None:
    """With ``--engine ray``: the model stage in one actor per GPU of the cluster, or None when the
    cluster has no GPU (the models then run in this process, as with the local engine: CPU actors
    would only add a copy of every image).

    Connects to Ray here (the pool reuses the connection); the stage owns it and shuts it down."""
    from vidpipe.models.registry import ModelConfig
    from vidpipe.pipeline.ray_face_stage import RayModelStage, cluster_accelerators
    from vidpipe.pipeline.ray_pool import connect_ray, import_ray

    ray = import_ray()
    owns = connect_ray(ray, config.ray_address, config.workers, config.ray_insecure)
    gpus = int(cluster_accelerators(ray))
    if gpus < 1:
        if owns:
            ray.shutdown()  # the pool starts (and ends) its own
        return None
    stage = RayModelStage(ModelConfig.from_ingest(config), config.device, actors=gpus, accelerators=1,
                          owns_ray=owns)
    keys = {role: writer.register_model(role, info) for role, info in stage.model_info().items()}
    writer.commit()
    return _Faces(stage, keys["face_detector"], keys.get("face_embedder"), keys.get("scene_embedder"))


def _apply_places(writer: CaseWriter, config: IngestConfig) -> dict[str, Any]:
    """Label reference photos with their place, once their content is known (end of the run)."""
    from vidpipe.places import apply_place_labels

    writer.begin()
    out = apply_place_labels(writer.conn, writer.run_id, Path(config.places), config.sources)
    writer.commit()
    return out


def _match_hash_lists(conn) -> int:
    """Flag the case's media against every imported known-hash list; return unsuppressed hits."""
    from vidpipe.hashlists.match import match_case

    match_case(conn)
    return conn.execute("SELECT COUNT(*) FROM hashlist_hits WHERE suppressed=0").fetchone()[0]


def _discover(writer: CaseWriter, root: str, given: str | None = None) -> int:
    """Record every path under one evidence root; ``given`` is the root as typed when ``root`` is resolved."""
    source = source_for(root, given)
    source_id = writer.register_source(source.root_bytes, getattr(source, "given_bytes", None))
    for n, entry in enumerate(source.discover(), 1):
        writer.upsert_item(entry, source_id)
        if n % 2000 == 0:
            writer.commit()
    writer.commit()
    return source_id


# Content kinds whose verdict needs their bytes decoded in a sandboxed worker.
_DECODED_KINDS = frozenset({filetype.KIND_IMAGE, filetype.KIND_RAW, filetype.KIND_VIDEO, filetype.KIND_ARCHIVE})


class _Scheduler:
    """Turns case state into tasks and results into new tasks."""

    def __init__(self, writer: CaseWriter, config: IngestConfig, pool: SandboxPool, faces: _Faces | None) -> None:
        self.writer, self.config, self.pool, self.faces = writer, config, pool, faces
        self.conn = writer.conn
        self.in_flight_content: set[str] = set()
        self.deferred_archives: set[str] = set()  # and images whose derived items wait (on_result)
        self.hash_in_flight = 0
        # Items being hashed: item_id -> (locator_bytes, size), and their ids by size (_smaller_twin_hashing).
        self.hashing: dict[int, tuple[bytes, int | None]] = {}
        self.hashing_by_size: dict[int | None, set[int]] = {}
        self.submitted = 0
        self.video_frames_left: dict[str, int] = {}
        self.model_wants: dict[str, tuple[bool, bool]] = {}

    def content_options(self) -> dict[str, Any]:
        return {"max_pixels": self.config.max_pixels, "model_inputs": self.faces is not None}

    def wants(self, sha256: str) -> tuple[bool, bool]:
        """(faces, scene) still to be stored for this content; a resumed run redoes only what is missing."""
        if sha256 in self.model_wants:
            return self.model_wants[sha256]
        return self.faces.faces_on, self.faces.scenes_on

    def schedule_pending_items(self) -> None:
        rows = self.conn.execute("SELECT item_id, ref, size, locator_bytes FROM items WHERE state='pending' "
                                 "ORDER BY locator_bytes").fetchall()
        for row in rows:
            if row["item_id"] in self.hashing:  # derived items arrive while others are still being hashed
                continue
            self.hashing[row["item_id"]] = (bytes(row["locator_bytes"]), row["size"])
            self.hashing_by_size.setdefault(row["size"], set()).add(row["item_id"])
            task = HashTask(row["item_id"], ItemRef.from_blob(row["ref"]), self.config.archive_limits,
                            self.content_options())
            self.pool.submit(HashKey(row["item_id"], task), HashKey.kind, task,
                             _hash_timeout(row["size"], self.config.task_timeout_s))
            self.hash_in_flight += 1
            self.submitted += 1

    def schedule_pending_content(self) -> None:
        rows = self.conn.execute("SELECT sha256, kind FROM media WHERE state='pending'").fetchall()
        for row in rows:
            self.schedule_content(row["sha256"], row["kind"])

    def schedule_content(self, sha256: str, kind: str) -> None:
        if sha256 in self.in_flight_content:
            return
        if kind == filetype.KIND_ARCHIVE and self.hash_in_flight:
            # Members are addressed under the smallest path holding the archive: wait until every
            # path is hashed so that choice is the same in every run (resume == uninterrupted).
            self.deferred_archives.add(sha256)
            return
        row = self.conn.execute(
            "SELECT i.ref, i.depth, i.source_id, m.label, m.kind, m.size FROM items i JOIN media m "
            # "+i.state": look the content up by items_sha256; SQLite otherwise picks items_state and
            # scans every hashed item per call (quadratic for an archive of many members).
            "ON m.sha256 = i.sha256 WHERE i.sha256=? AND +i.state='hashed' ORDER BY i.locator_bytes LIMIT 1",
            (sha256,)).fetchone()
        if row is None:
            return
        ref = ItemRef.from_blob(row["ref"])
        task = ContentTask(sha256, ref, row["label"], row["kind"], self.config.archive_limits,
                           self.content_options())
        key = ContentKey(sha256, row["source_id"], row["depth"], bytes(row["ref"]))
        if row["kind"] not in _DECODED_KINDS:
            # Not media: the verdict comes from the type and the name alone and no byte is read, so
            # it is decided here; a worker round trip per text member made big archives slow.
            self.on_result(key, run_content(task))
            return
        self.in_flight_content.add(sha256)
        if row["kind"] == filetype.KIND_VIDEO:  # budget by duration: ask the container first
            self.pool.submit(VideoProbeKey(key, task, row["size"]), VideoProbeKey.kind, task,
                             max(self.config.task_timeout_s, PROBE_MIN_TIMEOUT_S))
        else:
            self.pool.submit(key, key.kind, task, _hash_timeout(row["size"], self.config.task_timeout_s))
        self.submitted += 1

    def _on_video_probe(self, key: ContentKey, task: ContentTask, size: int | None, result: Any) -> None:
        """Submit a video's decode with its soft budget (the worker stops there) and a hard timeout above it."""
        from dataclasses import replace

        from vidpipe.pipeline.video_task import BUDGET_OPTION, VideoProbe
        from vidpipe.video.budget import hard_timeout_s, soft_budget_s

        if not isinstance(result, VideoProbe):  # cannot be opened, or the probe died: that is the verdict
            self.on_result(key, result)
            return
        base = self.config.task_timeout_s
        soft = soft_budget_s(result.duration_s, result.width, result.height, result.fps, base,
                             self.config.video_budget_scale, size)
        task = replace(task, options={**task.options, BUDGET_OPTION: soft})
        self.pool.submit(key, key.kind, task, hard_timeout_s(soft, base))
        self.submitted += 1

    def on_face_output(self, output: Any) -> None:
        """Store one image's or keyframe's faces and scene; a video's stages are done with its last frame."""
        if output.want_faces:
            self.writer.apply_faces(output, self.faces.detector_key, self.faces.embedder_key)
        if output.want_scene:
            self.writer.apply_scene(output, self.faces.scene_key, self.faces.scenes_version)
        if output.video_time_s is None:
            self.model_wants.pop(output.sha256, None)
            return
        left = self.video_frames_left.get(output.sha256, 0) - 1
        self.video_frames_left[output.sha256] = left
        if left <= 0:
            self.video_frames_left.pop(output.sha256, None)
            self.model_wants.pop(output.sha256, None)
            if output.want_faces:
                self.writer.mark_stage(output.sha256, "faces", self.faces.faces_version)
            if output.want_scene:
                self.writer.mark_stage(output.sha256, "scenes", self.faces.scenes_version)

    def submit_model_input(self, item: Any) -> None:
        item.want_faces, item.want_scene = self.wants(item.sha256)
        self.faces.stage.submit(item)

    def _on_face_input(self, sha256: str, result: Any) -> None:
        from vidpipe.pipeline.face_stage import FaceInput, FaceOutput

        if isinstance(result, FaceInput):
            self.submit_model_input(result)
            return
        reason = result.reason if isinstance(result, (ContentResult, TaskFailure)) else "face_decode"
        want_faces, want_scene = self.wants(sha256)
        self.on_face_output(FaceOutput(sha256, None, error=f"face_decode:{reason}", want_faces=want_faces,
                                       want_scene=want_scene))

    def on_result(self, key: TaskKey, result: Any) -> None:
        if isinstance(key, HashKey):
            self.hash_in_flight -= 1
            item_id, task = key.item_id, key.task
            if isinstance(result, TaskFailure) and task.content_options is not None:
                # The decoder, not the read, may have died: hash alone, then run the content stage
                # on its own so that the failure lands on the content record, digests kept.
                retry = HashTask(task.item_id, task.ref, task.limits, None)
                self.pool.submit(HashKey(item_id, retry), HashKey.kind, retry, self.config.task_timeout_s * 4)
                self.hash_in_flight += 1
                return
            _, size = self.hashing.pop(item_id, (None, None))
            self.hashing_by_size.get(size, set()).discard(item_id)
            if isinstance(result, TaskFailure):
                self.writer.fail_item(item_id, result.reason)
            else:
                assert isinstance(result, HashResult)
                self.writer.apply_hash(result)
                if result.ok:
                    state = self.conn.execute("SELECT state, kind FROM media WHERE sha256=?",
                                              (result.sha256,)).fetchone()
                    if state is not None and state["state"] == "pending" and result.sha256 not in self.in_flight_content:
                        if result.content is not None and result.content.members and \
                                self._smaller_twin_hashing(item_id, result.size):
                            # Derived items hang under the smallest path holding the content, as archive
                            # members do; a smaller path that may hold it is still being hashed: wait.
                            self.deferred_archives.add(result.sha256)
                        elif result.content is not None:
                            self._apply_content(result.content,
                                                self._members_source(item_id) if result.content.members else None)
                        else:
                            self.schedule_content(result.sha256, state["kind"])
            if self.hash_in_flight == 0 and self.deferred_archives:
                for sha256 in sorted(self.deferred_archives):
                    row = self.conn.execute("SELECT state FROM media WHERE sha256=?", (sha256,)).fetchone()
                    if row is not None and row["state"] == "pending":  # a deferred image may be done by now
                        self.schedule_content(sha256, filetype.KIND_ARCHIVE)
                self.deferred_archives.clear()
            return
        if isinstance(key, FaceInputKey):
            self._on_face_input(key.sha256, result)
            return
        if isinstance(key, VideoProbeKey):
            self._on_video_probe(key.content, key.task, key.size, result)
            return
        sha256, source_id, depth, ref_blob = key.sha256, key.source_id, key.depth, key.ref_blob
        self.in_flight_content.discard(sha256)
        retry = carried_record(self.conn, sha256)
        if isinstance(result, TaskFailure):
            stage = "content"
            if retry is not None:
                self.writer.begin()
                if keep_earlier_partial(self.conn, sha256, retry, result.reason):
                    return
            self.writer.fail_content(sha256, stage, result.reason, result.detail)
            if retry is not None:  # the attempt stays on record, so this configuration does not try again
                self.conn.execute("UPDATE media SET detail=json_set(COALESCE(detail,'{}'), '$.retry', json(?)) "
                                  "WHERE sha256=?", (json.dumps(retry, sort_keys=True), sha256))
            return
        assert isinstance(result, ContentResult)
        if retry is not None:
            result.detail["retry"] = retry
        self._apply_content(result, (source_id, ItemRef.from_blob(ref_blob), depth))

    def _smaller_twin_hashing(self, item_id: int, size: int | None) -> bool:
        """Whether an item that sorts before ``item_id`` and may hold the same bytes is still being hashed."""
        locator = self.conn.execute("SELECT locator_bytes FROM items WHERE item_id=?", (item_id,)).fetchone()[0]
        candidates = self.hashing_by_size.get(size, set()) | self.hashing_by_size.get(None, set())
        return any(self.hashing[other][0] < bytes(locator) for other in candidates)

    def _members_source(self, item_id: int) -> tuple[int, ItemRef, int]:
        """(source, ref, depth) of the item whose content's derived items hang under it."""
        row = self.conn.execute("SELECT source_id, ref, depth FROM items WHERE item_id=?", (item_id,)).fetchone()
        return row["source_id"], ItemRef.from_blob(row["ref"]), row["depth"]

    def _apply_content(self, result: ContentResult, members_source: tuple | None) -> None:
        self.writer.apply_content(result, members_source)
        if self.faces is not None:
            video_frames = sum(1 for f in result.face_inputs if f.video_time_s is not None)
            if video_frames:
                self.video_frames_left[result.sha256] = video_frames
            for face_input in result.face_inputs:
                self.submit_model_input(face_input)
        if result.members:
            self._content_of_members_hashed_in_pass(result)
            self.writer.commit()
            self.schedule_pending_items()

    def _content_of_members_hashed_in_pass(self, result: ContentResult) -> None:
        """Members that an archive pass hashed (vidpipe.pipeline.archive_task): store the content that
        pass derived (small images), or schedule it; none is opened again just to be hashed."""
        for member in result.members:
            hashed = member.hashed
            if hashed is None or not hashed.ok or hashed.sha256 in self.in_flight_content:
                continue
            row = self.conn.execute("SELECT state, kind FROM media WHERE sha256=?", (hashed.sha256,)).fetchone()
            if row is None or row["state"] != "pending":
                continue
            if hashed.content is not None and not hashed.content.members:
                self._apply_content(hashed.content, None)
            else:  # videos, large images, nested archives; derived items hang under the smallest path
                self.schedule_content(hashed.sha256, row["kind"])


def _schedule_pending_faces(scheduler: _Scheduler) -> None:
    """Content whose features are stored but whose faces or scene are not (a run killed in between,
    or an earlier run with --no-faces/--no-scenes)."""
    faces = scheduler.faces
    missing = missing_model_stages_sql(faces.faces_on, faces.scenes_on)
    for row in scheduler.conn.execute(
            "SELECT m.sha256, (SELECT COUNT(*) FROM stages s WHERE s.sha256=m.sha256 AND s.stage='faces'), "
            "(SELECT COUNT(*) FROM stages s WHERE s.sha256=m.sha256 AND s.stage='scenes') FROM media m "
            "WHERE m.kind IN ('image','video') AND m.state='done' AND m.status IN ('ok','partial') "
            f"AND ({missing})").fetchall():
        scheduler.model_wants[row[0]] = (faces.faces_on and not row[1], faces.scenes_on and not row[2])
    rows = scheduler.conn.execute(
        "SELECT m.sha256, m.label, m.kind, m.size FROM media m WHERE m.kind='image' AND m.state='done' "
        "AND m.status IN ('ok','partial') AND m.width IS NOT NULL "
        f"AND ({missing})").fetchall()
    for row in rows:
        ref_row = scheduler.conn.execute(f"SELECT {first_path_sql('?', 'ref')} AS ref", (row["sha256"],)).fetchone()
        task = ContentTask(row["sha256"], ItemRef.from_blob(ref_row["ref"]), row["label"], row["kind"],
                           scheduler.config.archive_limits, {"max_pixels": scheduler.config.max_pixels, "model_inputs": True})
        scheduler.pool.submit(FaceInputKey(row["sha256"]), FaceInputKey.kind, task,
                              _hash_timeout(row["size"], scheduler.config.task_timeout_s))
        scheduler.submitted += 1
    # A video's keyframes are not stored as pixels: redo its video stage (same values) for the faces.
    for row in scheduler.conn.execute(
            "SELECT m.sha256 FROM media m WHERE m.kind='video' AND m.state='done' AND m.status IN ('ok','partial') "
            f"AND ({missing})").fetchall():
        scheduler.schedule_content(row["sha256"], "video")


def _retry(writer: CaseWriter, config: IngestConfig, plan: Any, stop: _StopFlag, progress: bool,
           faces: _Faces | None) -> bool:
    """Earlier runs' sandbox-limit failures, once more with larger limits (vidpipe.pipeline.retry)."""
    bigger = retry_config(config)
    writer.begin()
    start_retries(writer.conn, plan, writer.run_id, config_hash(config.provenance()), bigger)
    writer.commit()
    return _process(writer, bigger, stop, progress, faces)


def _process(writer: CaseWriter, config: IngestConfig, stop: _StopFlag, progress: bool,
             faces: _Faces | None = None, last: bool = True, report: dict[str, Any] | None = None) -> bool:
    """Run every pending task; return True when stopped by a signal. ``last=False`` keeps the
    model stage open for another pass (the retries)."""
    limits = SandboxLimits(memory_bytes=config.worker_memory_mb * 1024**2, base_timeout_s=config.task_timeout_s)
    bar = _progress_bar(progress)
    # A model stage in Ray actors reads the decoded images straight from the workers' object stores.
    by_ref = faces is not None and getattr(faces.stage, "reads_object_refs", False)
    with make_pool(config.engine, WORKER_FUNCTIONS, config.workers, limits, config.ray_address,
                   config.ray_insecure, pixels_by_ref=by_ref) as pool:
        scheduler = _Scheduler(writer, config, pool, faces)
        scheduler.schedule_pending_items()
        scheduler.schedule_pending_content()
        if faces is not None:
            _schedule_pending_faces(scheduler)
        last_commit = time.monotonic()
        stopping = False
        while pool.pending or (faces is not None and faces.stage.pending):
            if stop.signum == signal.SIGTERM:
                # SIGTERM means now (SIGINT finishes the batch): end the tasks in flight without
                # results and stop waiting for the model stage; what is committed stays, the rest
                # is still pending and a resumed run redoes it.
                pool.abort()
                break
            if stop.signum is not None and not stopping:
                stopping = True
                pool.drop_queued()  # finish what is in flight, start nothing new
            for key, result in pool.results():
                scheduler.on_result(key, result)
                if bar is not None:
                    bar.total = max(bar.total or 0, scheduler.submitted)
                    bar.update(1)
            if faces is not None:
                for output in faces.stage.results():
                    scheduler.on_face_output(output)
                    if bar is not None:
                        bar.set_postfix_str(f"faces pending {faces.stage.pending}", refresh=False)
                if not pool.pending and faces.stage.pending:
                    time.sleep(0.05)
            if stopping:
                pool.drop_queued()  # results may have scheduled follow-up work
            if writer.uncommitted >= config.batch_size or time.monotonic() - last_commit > config.commit_interval_s:
                writer.commit()
                last_commit = time.monotonic()
        if faces is not None:  # outputs that arrived after the last look
            for output in faces.stage.results():
                scheduler.on_face_output(output)
        writer.commit()
        if report is not None:
            report["sandbox"] = getattr(pool, "protections", None)
    if faces is not None and stop.signum == signal.SIGTERM:
        _leave_without_finalizing()
    if faces is not None and stop.signum != signal.SIGTERM and (last or stop.signum is not None):
        faces.stage.close()
    if bar is not None:
        bar.close()
    return stop.signum is not None


def _leave_without_finalizing() -> None:
    """After SIGTERM the model thread may still be inside torch: tearing the interpreter (and
    torch's thread pool) down under it aborts the process (SIGABRT, "terminate called without an
    active exception") instead of exiting 130. So once the run has ended (case committed and
    closed, lock released, the message printed), the process leaves with os._exit."""
    import atexit
    import os

    from vidpipe.errors import EXIT_INTERRUPTED

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(EXIT_INTERRUPTED)

    atexit.register(leave)


def _progress_bar(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=0, unit="task", desc="ingest", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
