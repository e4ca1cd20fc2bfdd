"""The search API shared by `vidpipe search` and the UI: one function, the contract's JSON object.

`search` opens the case read-only, checks the query file and hands it to its mode:

- ``face``: `vidpipe.search.faces` (every face of the query, each searched on its own);
- ``scene``: `vidpipe.search.scenes` (masked room vectors, geometric verification of the best
  candidates, place names of labelled reference photos);
- ``near-dup``: `vidpipe.search.near_dup` (dihedral PDQ, pHash fallback, video keyframes);
- ``video``: `vidpipe.search.video` (TMK level-1 beside Meta's vPDQ rule).

Beyond the contract's keys the object carries: per result ``above_threshold`` (and ``face_id``,
``det_score`` in face mode; ``distance``, ``signal``, ``distances`` in near-dup mode),
``threshold_source`` (calibration id or default, measured FAR/FRR, target), ``indexes`` (which
index answered: kind, exact or approximate, vectors, loaded/built/rebuilt) and, when relevant,
``warnings``.

Search reads the evidence database and the query only; it writes nothing but index files. The query
itself is parsed only in a sandboxed worker (`vidpipe.search.query_prep`).
"""

from __future__ import annotations

import os
from pathlib import Path

from vidpipe import filetype
from vidpipe.errors import UsageError
from vidpipe.search import DEFAULT_TOP_K, MODES
from vidpipe.search.build import face_model_keys
from vidpipe.search.faces import FaceModels, load_face_models, search_faces
from vidpipe.search.near_dup import search_near_dup
from vidpipe.search.scenes import load_scene_models, search_scenes
from vidpipe.search.video import search_video
from vidpipe.store.casedb import open_case_readonly

QUERY_MAX_BYTES = 512 * 1024 * 1024  # a query is one photo; anything larger is a mistake, not a query


def read_query(path: Path) -> tuple[str, bytes, object]:
    """(absolute path, bytes, sniffed FileType) of a query file."""
    qpath, real, file_type = query_file(path)
    data = Path(real).read_bytes()
    return qpath, data, filetype.sniff(data[:4096])


def query_file(path: Path) -> tuple[str, str, object]:
    """(absolute path, resolved path, sniffed FileType) of a query file; only its first bytes are
    read here: the query is decoded in the sandbox (vidpipe.search.query_prep)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"query file not found: {path}")
    if p.stat().st_size > QUERY_MAX_BYTES:
        raise UsageError(f"query file is larger than {QUERY_MAX_BYTES} bytes: {path}")
    with open(p, "rb") as fh:
        head = fh.read(4096)
    return os.path.abspath(p), os.path.realpath(p), filetype.sniff(head)


def search(case_dir: Path, query: Path, mode: str, top_k: int = DEFAULT_TOP_K, *,
           models: FaceModels | None = None, scene_models=None, rerank: bool = True) -> dict:
    """Run one query against a case; return the contract's ``search --json`` object.

    ``models`` / ``scene_models`` let a long-lived caller (the UI, tests) reuse loaded models;
    ``rerank`` False skips the geometric verification of scene candidates (global score only).
    """
    if mode not in MODES:
        raise UsageError(f"unknown search mode {mode!r}; choose from {', '.join(MODES)}")
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    paths, conn = open_case_readonly(Path(case_dir))
    try:
        qpath, data, file_type = query_file(Path(query))  # ``data``: the resolved path, decoded in the sandbox
        if mode == "face":
            return search_faces(paths, conn, qpath, data, file_type, top_k,
                                models or load_face_models(model_keys=face_model_keys(conn)))
        if mode == "scene":
            return search_scenes(paths, conn, qpath, data, file_type, top_k, scene_models or load_scene_models(),
                                 rerank=rerank)
        if mode == "video":
            return search_video(conn, qpath, data, file_type, top_k)
        return search_near_dup(paths, conn, qpath, data, file_type, top_k)
    finally:
        conn.close()
