"""Cryptographic digests (MD5, SHA-1, SHA-256) in one pass over a stream."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Digests:
    md5: str
    sha1: str
    sha256: str
    size: int
    head: bytes  # the first bytes, for type sniffing


def digest_stream(stream: BinaryIO, head_bytes: int = 4096, keep_bytes: int = 0) -> tuple[Digests, bytes | None]:
    """Hash a stream in one read; also return its content when it is at most ``keep_bytes`` long."""
    md5, sha1, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False), hashlib.sha256()
    head = b""
    size = 0
    kept: list[bytes] | None = [] if keep_bytes else None
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        if len(head) < head_bytes:
            head += chunk[: head_bytes - len(head)]
        md5.update(chunk)
        sha1.update(chunk)
        sha256.update(chunk)
        size += len(chunk)
        if kept is not None:
            if size <= keep_bytes:
                kept.append(chunk)
            else:
                kept = None
    digests = Digests(md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest(), size, head)
    return digests, (b"".join(kept) if kept is not None else None)
