"""One decoded frame of a video at a presentation time (previews, geometric verification).

Keyframes are not stored as pixels (only their hashes, faces and scene vectors are), so a
reviewer's preview or a scene verification decodes the frame again: seek to the keyframe before
``time_s``, then decode forward to the first frame at or after it. Bounded: frames over the pixel
budget are refused and at most ``max_frames`` frames are decoded after the seek.
"""

from __future__ import annotations

import io

from PIL import Image

from vidpipe.decode.image import DEFAULT_MAX_PIXELS

MAX_FRAMES_AFTER_SEEK = 3000


def frame_at(data: bytes, time_s: float, max_frames: int = MAX_FRAMES_AFTER_SEEK) -> Image.Image:
    """The frame shown at ``time_s`` seconds (upright as decoded), as an RGB PIL image."""
    import av  # lazy: heavy

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        if time_s > 0 and stream.time_base:
            container.seek(int(time_s / stream.time_base), stream=stream, backward=True)
        for n, frame in enumerate(container.decode(stream)):
            if frame.width * frame.height > DEFAULT_MAX_PIXELS:
                raise ValueError("video frame exceeds the pixel budget")
            if frame.time is None or frame.time >= time_s - 1e-3 or n >= max_frames:
                return frame.to_image().convert("RGB")
    raise ValueError("no decodable frame at the requested time")
