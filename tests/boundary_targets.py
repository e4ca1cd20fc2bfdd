"""Module-level task functions for the sandbox boundary tests (workers import them by name).

Each one does something a decoder exploited by a crafted file might try."""

from __future__ import annotations

import os
import socket
import stat
import struct


def connect(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return "connected"


def write_file(path: str) -> int:
    with open(path, "wb") as fh:
        fh.write(b"x" * 4096)
        fh.flush()
    return os.path.getsize(path)


def open_many(n: int) -> int:
    fds = []
    try:
        for _ in range(n):
            fds.append(os.open("/dev/null", os.O_RDONLY))
        return len(fds)
    finally:
        for fd in fds:
            os.close(fd)


def status_line(name: str) -> str:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def pid(_) -> int:
    return os.getpid()


def forge_pickle(marker: str) -> str:
    """Write a pickle that would run code in the parent straight onto the result channel (as code
    injected into a worker could), then return normally."""
    import pickle

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps(("ok", Exploit()))
    for fd in range(3, 64):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, struct.pack("!i", len(payload)) + payload)  # multiprocessing's framing
                break
        except OSError:
            continue
    return "sent"


def spin(seconds: float) -> str:
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return "spun"


def open_fds(_) -> list[str]:
    return sorted(os.listdir("/proc/self/fd"), key=int)


def cpu_limit(_) -> tuple[int, int]:
    """(soft, hard) RLIMIT_CPU and CPU seconds used so far, as the worker sees them."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    return soft, hard


def read_evidence(path: str) -> int:
    """Read a file the way ingest reads evidence (read-only, O_NOATIME where permitted)."""
    from vidpipe.sources.opener import open_file_readonly

    with open_file_readonly(os.fsencode(path)) as fh:
        return len(fh.read())
