"""A pool of sandboxed worker processes with per-task wall-clock limits and a memory cap.

Unlike ``concurrent.futures``, one worker that crashes, hangs or runs out of memory costs one
result (``crash_signal:N``, ``timeout``, ``memory_limit``) and is replaced; the pool goes on.
Workers ignore SIGINT so that the parent decides how an interrupted run ends.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

# Thread pools inside numpy/OpenCV/torch would multiply the process count; one per worker.
_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                      "OPENCV_FOR_THREADS_NUM": "1"}
# Imported once in the fork server, so every worker (and every replacement after a crash)
# starts with them loaded instead of paying ~1 s of imports (imagehash pulls in scipy).
_PRELOAD = ["numpy", "PIL.Image", "imagehash", "pdqhash", "exifread", "pillow_heif", "vidpipe.pipeline.tasks",
            "vidpipe.pipeline.image_task", "vidpipe.extract.exif", "vidpipe.decode.image",
            "vidpipe.extract.hashers"]


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int = 2 * 1024**3  # address space a worker may add on top of its start-up size
    base_timeout_s: float = 60.0


@dataclass(frozen=True)
class TaskFailure:
    """A task that produced no result: the worker died, hung, or ran out of memory."""

    reason: str
    detail: str = ""


def _worker_main(conn: Connection, functions: dict[str, Callable[[Any], Any]], memory_bytes: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        limit = _current_vm_bytes() + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            kind, task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone (killed or finished): leave quietly
        try:
            conn.send(("ok", functions[kind](task)))
        except MemoryError:
            conn.send(("fail", TaskFailure("memory_limit")))
            return  # a worker that hit its cap may be fragmented; start fresh
        except Exception as exc:  # noqa: BLE001 - any bug in a task becomes one failed record
            conn.send(("fail", TaskFailure(f"worker_error:{type(exc).__name__}", str(exc)[:500])))


def _current_vm_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class _Slot:
    process: mp.process.BaseProcess
    conn: Connection
    job: tuple[Any, str, Any, float] | None = None  # (key, kind, task, deadline)


class QueuedPool:
    """The part of the pool interface every engine shares: a queue of ``(key, kind, task, timeout)``
    and slots whose ``job`` is the task in flight (subclasses fill both and dispatch)."""

    _queue: deque
    _slots: list
    _limits: SandboxLimits

    def submit(self, key: Any, kind: str, task: Any, timeout_s: float | None = None) -> None:
        self._queue.append((key, kind, task, timeout_s or self._limits.base_timeout_s))

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(1 for s in self._slots if s.job is not None)

    def drop_queued(self) -> int:
        """Forget tasks not yet started (used when a run is interrupted)."""
        n = len(self._queue)
        self._queue.clear()
        return n


class SandboxPool(QueuedPool):
    """Run ``functions[kind](task)`` in isolated processes; yield ``(key, result | TaskFailure)``."""

    def __init__(self, functions: dict[str, Callable[[Any], Any]], workers: int,
                 limits: SandboxLimits = SandboxLimits()) -> None:
        os.environ.update({k: v for k, v in _SINGLE_THREAD_ENV.items() if k not in os.environ})
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        self._functions = functions
        self._limits = limits
        self._queue: deque[tuple[Any, str, Any, float]] = deque()
        self._slots = [self._spawn() for _ in range(max(1, workers))]

    def _spawn(self) -> _Slot:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, self._functions, self._limits.memory_bytes),
                                    daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent)

    def _dispatch(self) -> None:
        for i, slot in enumerate(self._slots):
            if slot.job is None and self._queue:
                key, kind, task, timeout_s = self._queue.popleft()
                try:
                    slot.conn.send((kind, task))
                except (BrokenPipeError, OSError):
                    self._queue.appendleft((key, kind, task, timeout_s))
                    self._replace(i)
                    continue
                slot.job = (key, kind, task, time.monotonic() + timeout_s)

    def _replace(self, i: int, kill: bool = False) -> None:
        slot = self._slots[i]
        if kill and slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        slot.conn.close()
        self._slots[i] = self._spawn()

    def results(self, max_wait_s: float = 0.5) -> Iterator[tuple[Any, Any]]:
        """Dispatch and collect; yields whatever finished within ``max_wait_s``."""
        self._dispatch()
        busy = [s for s in self._slots if s.job is not None]
        if not busy:
            return
        now = time.monotonic()
        wait_s = max(0.0, min([max_wait_s] + [s.job[3] - now for s in busy]))
        handles = {}
        for s in busy:
            handles[s.conn] = s
            handles[s.process.sentinel] = s
        ready = wait(list(handles), timeout=wait_s)
        done: set[int] = set()
        position = {id(s): i for i, s in enumerate(self._slots)}
        for handle in ready:
            slot = handles[handle]
            i = position[id(slot)]
            # A slot's pipe and its process sentinel can both be ready: handle it once.
            if i in done or slot.job is None:
                continue
            done.add(i)
            key = slot.job[0]
            message = self._receive(slot)
            slot.job = None
            if message is None:
                slot.process.join(timeout=2)  # the pipe can close a moment before the exit status exists
                code = slot.process.exitcode
                self._replace(i, kill=True)
                yield key, TaskFailure(_death_reason(code))
                continue
            status, payload = message
            if status == "fail" and payload.reason == "memory_limit":
                self._replace(i)
            yield key, payload
        now = time.monotonic()
        for i, slot in enumerate(self._slots):
            if slot.job is not None and i not in done and now > slot.job[3]:
                key = slot.job[0]
                slot.job = None
                self._replace(i, kill=True)
                yield key, TaskFailure("timeout")

    @staticmethod
    def _receive(slot: _Slot) -> tuple[str, Any] | None:
        try:
            if slot.conn.poll():
                return slot.conn.recv()
        except (EOFError, OSError):
            return None
        return None

    def close(self) -> None:
        for slot in self._slots:
            try:
                slot.conn.close()
            except OSError:
                pass
        for slot in self._slots:
            slot.process.join(timeout=2)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=2)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker_lost"
    if exitcode < 0:
        return f"crash_signal:{-exitcode}"
    return f"worker_exit:{exitcode}"
