"""Typed rows a video's content result carries to the writer: one per stored keyframe and one
per vPDQ frame hash.

They used to travel as positional tuples inside ``ContentResult.detail`` (``_keyframe_rows``,
``_vpdq_rows``) and were popped out again by the writer; a field added in one place and not the
other shifted every column silently. As named dataclasses they cross the sandbox's result codec
(:mod:`vidpipe.pipeline.wire`, which rebuilds them field by field and checks the field types)
and the writer inserts them by name. This module imports nothing from vidpipe: the worker side
(pipeline) and the writer (store) both depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyframeRow:
    """One keyframe of a video, as stored in the ``frames`` table."""

    time_s: float
    frame_index: int
    shot_id: int
    reason: str          # why it was kept: "shot_start" (after a cut) or "interval"
    pdq: str             # PDQ hash, hex
    pdq_quality: int
    phash: str           # perceptual hash, hex


@dataclass(frozen=True)
class VpdqRow:
    """One frame of a video's vPDQ signature, as stored in the ``vpdq`` table."""

    frame_number: int
    quality: int
    pdq: str
    time_s: float


_FIELD_TYPES = {
    KeyframeRow: {"time_s": (int, float), "frame_index": (int,), "shot_id": (int,), "reason": (str,),
                  "pdq": (str,), "pdq_quality": (int,), "phash": (str,)},
    VpdqRow: {"frame_number": (int,), "quality": (int,), "pdq": (str,), "time_s": (int, float)},
}


def row_type_problem(row: KeyframeRow | VpdqRow) -> str | None:
    """What is wrong with a row's field types (a hostile worker's result), or None.

    The rows go straight into SQL columns; SQLite would store a string in an integer column
    without complaint, so the receiving side checks the types here."""
    for name, types in _FIELD_TYPES[type(row)].items():
        value = getattr(row, name)
        if isinstance(value, bool) or not isinstance(value, types):
            return f"{type(row).__name__}.{name} must be {'/'.join(t.__name__ for t in types)}"
    return None
