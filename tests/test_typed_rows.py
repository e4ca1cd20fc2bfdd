"""Typed video rows and task keys (issue #14): named records instead of positional tuples."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vidpipe.pipeline import wire
from vidpipe.pipeline.task_keys import ContentKey, FaceInputKey, HashKey, VideoProbeKey
from vidpipe.pipeline.tasks import ContentResult
from vidpipe.store.video_rows import KeyframeRow, VpdqRow


def _video_result(**rows) -> ContentResult:
    return ContentResult("ab" * 32, "ok", None, "video", 64, 48, **rows)


def test_video_rows_cross_the_codec_by_name() -> None:
    result = _video_result(keyframes=[KeyframeRow(0.5, 15, 0, "shot_start", "f" * 64, 90, "0" * 16)],
                           vpdq=[VpdqRow(0, 100, "e" * 64, 0.0), VpdqRow(1, 80, "d" * 64, 0.033)])
    back = wire.decode(wire.encode(result))
    assert back.keyframes == result.keyframes and back.vpdq == result.vpdq
    assert back.detail == {}  # the rows no longer ride in the stored detail JSON


@pytest.mark.parametrize("bad", [
    KeyframeRow("0.5", 15, 0, "shot_start", "f" * 64, 90, "0" * 16),   # time as text
    KeyframeRow(0.5, 15, 0, "shot_start", "f" * 64, 90.5, "0" * 16),   # quality not an int
    KeyframeRow(0.5, True, 0, "shot_start", "f" * 64, 90, "0" * 16),   # a bool is not a frame index
    VpdqRow(0, 100, b"\xee" * 32, 0.0),                                 # hash as bytes
])
def test_a_worker_cannot_send_rows_of_the_wrong_types(bad) -> None:
    # A compromised decoder's rows would go into SQL as they are: the parent checks the types.
    with pytest.raises(wire.WireError):
        wire.decode(wire.encode(_video_result(keyframes=[bad] if isinstance(bad, KeyframeRow) else None,
                                              vpdq=[bad] if isinstance(bad, VpdqRow) else None)))


def test_numpy_scalars_in_rows_arrive_as_python_numbers() -> None:
    row = KeyframeRow(np.float32(1.5), np.int64(45), np.int32(1), "interval", "a" * 64, np.int64(70), "b" * 16)
    back = wire.decode(wire.encode(_video_result(keyframes=[row])))
    assert type(back.keyframes[0].time_s) is float and type(back.keyframes[0].frame_index) is int


def test_task_keys_are_named_and_carry_their_kind() -> None:
    content = ContentKey("ab" * 32, 1, 0, b"ref")
    keys = [HashKey(7, None), content, VideoProbeKey(content, None, 10), FaceInputKey("ab" * 32)]
    assert [k.kind for k in keys] == ["hash", "content", "video_probe", "face_input"]
    from vidpipe.pipeline.runner import WORKER_FUNCTIONS

    assert {k.kind for k in keys} == set(WORKER_FUNCTIONS)  # every key kind names a worker function
    with pytest.raises(dataclasses.FrozenInstanceError):
        content.depth = 2  # type: ignore[misc]
