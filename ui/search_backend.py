"""The UI's side of search: keeping the uploaded query photo, and calling the search API (`vidpipe.search.api`).

The query is the only file a user can upload. It is size-capped, sniffed by content (never by
name), checked against the decoder allowlist, and kept as ``CASE/queries/<sha256>.<ext>`` so a
decision can always be traced to the exact query bytes.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpipe.decode.image import ALLOWED_FORMATS
from vidpipe.filetype import SNIFF_BYTES, sniff

MODES = ("face", "scene", "near-dup", "video")
QUERY_MAX_MB = 25  # also Streamlit's server.maxUploadSize in ui/config.toml; a photo or short clip
QUERY_MAX_BYTES = QUERY_MAX_MB * 1024 * 1024
_models_lock = threading.Lock()
_face_models: list = []  # face models, loaded once per server process: code and weights, never case data
_scene_models: list = []  # the same for the scene embedder and its masking detector
VIDEO_LABELS = ("MP4", "MOV", "MKV", "AVI", "3GP", "MPEG-TS", "ASF", "FLV", "MPEG-PS")


@dataclass(frozen=True)
class Query:
    """A stored query file."""

    path: Path
    sha256: str
    label: str
    kind: str  # image | video

    def as_dict(self, mode: str) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "label": self.label, "kind": self.kind,
                "mode": mode}


def save_query(case_root: Path, data: bytes, mode: str) -> tuple[Query | None, str | None]:
    """Check and keep an uploaded query; ``(query, None)`` or ``(None, why it was refused)``."""
    if mode not in MODES:
        return None, f"mode must be one of {', '.join(MODES)}"
    if not data:
        return None, "the uploaded file is empty"
    if len(data) > QUERY_MAX_BYTES:
        return None, f"the query is larger than {QUERY_MAX_MB} MB"
    ftype = sniff(data[:SNIFF_BYTES])
    if mode == "video":
        if ftype.kind != "video" or ftype.label not in VIDEO_LABELS:
            return None, f"video search needs a video query; this file looks like {ftype.label}"
        kind = "video"
    else:
        if ftype.label not in ALLOWED_FORMATS:
            return None, f"{mode} search needs a photo (JPEG, PNG, WebP, HEIC, ...); this file looks like {ftype.label}"
        kind = "image"
    sha = hashlib.sha256(data).hexdigest()
    folder = case_root / "queries"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{sha}.{ftype.label.lower().replace('-', '')}"
    if not path.exists():
        tmp = folder / f".{sha}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o400)
        os.replace(tmp, path)
    return Query(path, sha, ftype.label, kind), None


def search_unavailable() -> str | None:
    """Why search cannot run (the search module is missing), or None when it can."""
    try:
        from vidpipe.search import api as _search  # noqa: F401
    except ImportError as exc:
        return f"Search is not available in this installation: vidpipe.search.api could not be imported ({exc})."
    return None


def run_search(case_root: Path, query: Query, mode: str, top_k: int) -> tuple[dict[str, Any] | None, str | None]:
    """Call ``vidpipe.search.api.search``; ``(result JSON, None)`` or ``(None, message)``."""
    problem = search_unavailable()
    if problem:
        return None, problem
    from vidpipe.search import api as search_module

    kwargs = {}
    try:
        parameters = inspect.signature(search_module.search).parameters
        if mode == "face" and "models" in parameters:
            kwargs["models"] = _load_face_models(case_root)
        if mode == "scene" and "scene_models" in parameters:
            kwargs["scene_models"] = _load_scene_models()
        result = search_module.search(case_root, query.path, mode, top_k=top_k, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure of the search becomes a message on the page
        message = str(exc) or type(exc).__name__
        return None, f"Search failed: {message}"
    if not isinstance(result, dict) or "results" not in result:
        return None, "Search returned no results object."
    return result, None


def _load_face_models(case_root: Path) -> Any:
    """The face detector and the embedder the case was made with, loaded on first use and kept for
    the server's lifetime (one server serves one case)."""
    with _models_lock:
        if not _face_models:
            from vidpipe.search.build import face_model_keys
            from vidpipe.search.faces import load_face_models
            from vidpipe.store.casedb import open_case_readonly

            _, conn = open_case_readonly(case_root)
            try:
                keys = face_model_keys(conn)
            finally:
                conn.close()
            _face_models.append(load_face_models(model_keys=keys))
        return _face_models[0]


def _load_scene_models() -> Any:
    """The scene embedder and the detector that masks people, loaded once per server process."""
    from vidpipe.search.scenes import load_scene_models

    with _models_lock:
        if not _scene_models:
            _scene_models.append(load_scene_models())
        return _scene_models[0]
