"""Limits that keep one hostile archive from costing more than one record."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on archive expansion. Defaults are generous for real seizures, fatal for bombs."""

    max_depth: int = 3                       # archive inside archive inside archive
    max_members: int = 100_000               # per archive
    max_member_bytes: int = 4 * 1024**3      # one member, uncompressed
    max_total_bytes: int = 64 * 1024**3      # all members of one archive, uncompressed (declared)
    # Deflate cannot exceed ~1032:1; real photos and videos compress < 2:1. A member above this
    # ratio and above `ratio_floor_bytes` is a bomb, not evidence (cf. 42.zip, Fifield's overlapping bombs).
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 16 * 1024**2
    max_inmemory_bytes: int = 512 * 1024**2  # nested archives are opened from memory
