"""Two thresholds instead of one: "same room" on the global room score and "same hotel" on the
region (Chamfer) score, each set at a false-accept rate.

Why two: one threshold on one score either accepts other rooms of the same hotel as "the room"
(today's false accepts are mostly those) or misses the hotel when the room is not in the gallery.
A result is reported as the room only above the room threshold; between, it can still be reported
as "same hotel" when its region score clears the hotel threshold; the two claims are counted
separately (a hotel claim on another room of the right hotel is correct, on another hotel it is a
false accept).

Label-free calibration (`label_free_threshold`): on a case's own photos nearly every pair is two
different places, so the score that only the top `rate` of all pairs reach accepts at most about
`rate` of the different-place pairs; with labels (the rendered set) the bench uses the negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def label_free_threshold(scores: np.ndarray, rate: float) -> float:
    """The smallest score reached by at most `rate` of the off-diagonal pairs of an (n, n) matrix
    (non-finite entries, e.g. a -inf diagonal, ignored). 1.0 when there is no pair."""
    v = scores[np.isfinite(scores)]
    if v.size == 0:
        return 1.0
    v = np.sort(v)[::-1]
    allowed = int(np.floor(rate * v.size))
    if allowed >= v.size:
        return float(v[-1])
    return float(np.nextafter(np.float32(v[allowed]), np.float32(np.inf)))


@dataclass(frozen=True)
class TwoLevelPolicy:
    """Room threshold on the global score, hotel threshold on the region score."""

    room_threshold: float
    hotel_threshold: float

    def decide(self, room_score: float, region_score: float) -> str | None:
        """"room", "hotel" or None (no claim) for one result."""
        if room_score >= self.room_threshold:
            return "room"
        if region_score >= self.hotel_threshold:
            return "hotel"
        return None

    @classmethod
    def calibrate(cls, room_scores: np.ndarray, region_scores: np.ndarray, room_rate: float,
                  hotel_rate: float) -> TwoLevelPolicy:
        """Both thresholds from the case's own (n, n) score matrices, without labels."""
        return cls(label_free_threshold(room_scores, room_rate), label_free_threshold(region_scores, hotel_rate))
