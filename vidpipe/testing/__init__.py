"""Test kit: generated media for vidpipe's tests and benches (as perception ships ``perception.testing``).

Nothing under ``vidpipe/`` proper imports this package (tests/test_testing_kit.py checks it): it is
for ``tests/`` and ``bench/`` only, and it never reads evidence or downloads anything.
"""

from __future__ import annotations

from vidpipe.testing.videos import make_checkerboard_video

__all__ = ["make_checkerboard_video"]
