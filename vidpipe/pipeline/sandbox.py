"""A pool of sandboxed worker processes: per-task time limits, a memory cap, and a boundary
around code that parses hostile bytes.

Unlike ``concurrent.futures``, one worker that crashes, hangs or runs out of memory costs one
result (``crash_signal:N``, ``timeout``, ``memory_limit``) and is replaced; the pool goes on.
Workers ignore SIGINT so that the parent decides how an interrupted run ends.

Each worker is also confined, so that a decoder bug exploited by a crafted file gains little:

- ``RLIMIT_AS`` (memory), ``RLIMIT_CPU`` (soft limit raised per task from its timeout; hard limit
  per worker, which is recycled before it would be reached), ``RLIMIT_NOFILE`` (a few dozen
  descriptors), ``RLIMIT_FSIZE`` 0 (decoders never write files; SIGXFSZ is ignored so a write
  fails with EFBIG instead of killing the worker), no core dumps;
- ``PR_SET_NO_NEW_PRIVS`` (no privilege gain through execve), and when running as root every
  capability but ``CAP_DAC_READ_SEARCH`` (to read evidence owned by others) and ``CAP_FOWNER``
  (``O_NOATIME`` on files of other owners: reading must not change their access time) is
  dropped, so the limits above cannot be raised again;
- no network: a fresh, empty network namespace (``unshare(CLONE_NEWNET)``, or with a user
  namespace where root is not available); where neither is permitted the worker keeps the host's
  network and says so;
- ``PR_SET_PDEATHSIG(SIGKILL)``: a worker dies with the fork server, which exits with the parent,
  so nothing keeps decoding after the parent is killed;
- recycled after ``max_tasks_per_worker`` tasks (a fresh address space and fresh limits);
- results come back in a typed format (:mod:`vidpipe.pipeline.wire`), never unpickled.

What each worker actually got is sent to the parent when it starts (``SandboxPool.protections``)
and recorded in the ingest run's summary (``sandbox``).
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from vidpipe.pipeline import wire

# Thread pools inside numpy/OpenCV/torch would multiply the process count; one per worker.
_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                      "OPENCV_FOR_THREADS_NUM": "1"}
# Imported once in the fork server, so every worker (and every replacement after a crash)
# starts with them loaded instead of paying ~1 s of imports (imagehash pulls in scipy).
_PRELOAD = ["numpy", "PIL.Image", "imagehash", "pdqhash", "exifread", "pillow_heif", "vidpipe.pipeline.tasks",
            "vidpipe.pipeline.image_task", "vidpipe.extract.exif", "vidpipe.decode.image",
            "vidpipe.extract.hashers", "vidpipe.pipeline.wire"]

# Linux constants (prctl.h, sched.h, capability.h).
_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_GET_NO_NEW_PRIVS = 39
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000
_CAP_DAC_READ_SEARCH = 2
_CAP_FOWNER = 3
_KEEP_CAPS = (1 << _CAP_DAC_READ_SEARCH) | (1 << _CAP_FOWNER)
_CAP_LAST = 63
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int = 2 * 1024**3  # address space a worker may add on top of its start-up size
    base_timeout_s: float = 60.0
    max_open_files: int = 64         # descriptors a worker may hold (it needs ~10)
    max_file_bytes: int = 0          # RLIMIT_FSIZE: decoders write nothing
    max_tasks_per_worker: int = 200  # then the worker is replaced by a fresh one
    cpu_budget_s: float = 3600.0     # hard RLIMIT_CPU of one worker over its life
    isolate_network: bool = True


@dataclass(frozen=True)
class TaskFailure:
    """A task that produced no result: the worker died, hung, or ran out of memory."""

    reason: str
    detail: str = ""


def cpu_allowance_s(timeout_s: float) -> int:
    """CPU seconds a task may use: its wall-clock timeout twice over (a decoder may run a helper
    thread) plus start-up slack. The wall clock, enforced by the parent, normally ends it first."""
    return int(math.ceil(2 * timeout_s + 5))


# ------------------------------------------------------------------------------------- the worker
def _worker_main(conn: Connection, functions: dict[str, Callable[[Any], Any]], limits: SandboxLimits,
                 cpu_hard_s: int) -> None:
    protections = confine(limits, cpu_hard_s)
    _send(conn, ("hello", protections))
    while True:
        try:
            kind, task, cpu_s = conn.recv()  # from the parent, which is trusted: pickle is fine here
        except (EOFError, OSError):
            return  # the parent is gone (killed or finished): leave quietly
        _allow_cpu(cpu_s)
        try:
            message: tuple[str, Any] = ("ok", functions[kind](task))
        except MemoryError:
            _send(conn, ("fail", TaskFailure("memory_limit")))
            return  # a worker that hit its cap may be fragmented; start fresh
        except Exception as exc:  # noqa: BLE001 - any bug in a task becomes one failed record
            message = ("fail", TaskFailure(f"worker_error:{type(exc).__name__}", str(exc)[:500]))
        if not _send(conn, message):
            return


def _send(conn: Connection, message: tuple[str, Any]) -> bool:
    """Encode and send; an unencodable result becomes a failure. False when the worker must end."""
    try:
        try:
            blob = wire.encode(message)
        except wire.WireError as exc:
            blob = wire.encode(("fail", TaskFailure("worker_error:WireError", str(exc)[:500])))
        conn.send_bytes(blob)
        return True
    except MemoryError:
        try:
            conn.send_bytes(wire.encode(("fail", TaskFailure("memory_limit"))))
        except (MemoryError, OSError):
            pass
        return False
    except OSError:
        return False


def confine(limits: SandboxLimits, cpu_hard_s: int | None = None) -> dict[str, Any]:
    """Confine the calling process (a fresh worker) and say what took effect on this host."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails (EFBIG), no kill
    sys.dont_write_bytecode = True
    libc = _libc()
    out: dict[str, Any] = {}
    out["die_with_parent"] = libc is not None and libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if out["die_with_parent"] and os.getppid() == 1:
        os._exit(0)  # the parent died before the death signal was armed
    _release_liveness_pipe()
    out["network"] = _isolate_network(libc) if limits.isolate_network else "host"
    out["capabilities"] = _drop_capabilities(libc)
    out["no_new_privs"] = libc is not None and libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    rlimits: dict[str, int | None] = {}
    rlimits["nofile"] = _lower(resource.RLIMIT_NOFILE, limits.max_open_files)
    rlimits["fsize"] = _lower(resource.RLIMIT_FSIZE, limits.max_file_bytes)
    rlimits["cpu_s"] = _lower(resource.RLIMIT_CPU, int(cpu_hard_s or limits.cpu_budget_s))
    rlimits["as_bytes"] = (_lower(resource.RLIMIT_AS, _current_vm_bytes() + limits.memory_bytes)
                           if limits.memory_bytes > 0 else None)
    out["rlimits"] = rlimits
    return out


def _release_liveness_pipe() -> None:
    """Close this worker's copy of the pipe by which the fork server sees its client die.

    multiprocessing hands every forkserver child the write end of that pipe; while any worker
    holds it, the fork server never sees the parent's death and stays, and so (PDEATHSIG is tied
    to the fork server) do the workers, decoding on for as long as their task lasts."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None


def _lower(which: int, value: int) -> int | None:
    """Set soft = hard = min(value, current hard); the value set, or None when refused."""
    _, hard = resource.getrlimit(which)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        return None
    return value


def _allow_cpu(cpu_s: float | None) -> None:
    """Raise the soft CPU limit to what this task may use (never past the worker's hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or not cpu_s:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    want = min(hard, int(math.ceil(usage.ru_utime + usage.ru_stime + cpu_s)))
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (want, hard))
    except (ValueError, OSError):
        pass


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _isolate_network(libc) -> str:
    """A new, empty network namespace (no interfaces, loopback down): "netns", "userns+netns" where
    only an unprivileged user namespace is allowed, or "host" where neither is permitted."""
    if libc is None:
        return "host"
    if libc.unshare(_CLONE_NEWNET) == 0:
        return "netns"
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        return "userns+netns"
    return "host"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc) -> str:
    """Keep only CAP_DAC_READ_SEARCH (reading evidence owned by other users) and CAP_FOWNER
    (opening it O_NOATIME); "dropped", "none" (the process had none) or "kept" (capset refused)."""
    if libc is None:
        return "kept"
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        return "kept"
    if not any(d.effective or d.permitted for d in data):
        return "none"
    for cap in range(_CAP_LAST + 1):  # the bounding set: nothing can come back through execve
        if not (1 << cap) & _KEEP_CAPS:
            libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
    new = (_CapData * 2)()
    new[0].effective = new[0].permitted = data[0].permitted & _KEEP_CAPS
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    return "dropped" if libc.capset(ctypes.byref(header), new) == 0 else "kept"


def _current_vm_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# ------------------------------------------------------------------------------------- the parent
@dataclass
class _Slot:
    process: mp.process.BaseProcess
    conn: Connection
    cpu_hard_s: int
    job: tuple[Any, str, Any, float] | None = None  # (key, kind, task, deadline)
    tasks: int = 0             # tasks sent to this worker
    cpu_granted_s: int = 0     # sum of their CPU allowances (stays below cpu_hard_s)
    retired: bool = False      # killed by abort(); replaced before its next task


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

    def abort(self) -> int:
        """Forget queued tasks and end the ones in flight now, without results (SIGTERM);
        returns how many were in flight."""
        self._queue.clear()
        n = 0
        for i, slot in enumerate(self._slots):
            if slot.job is not None:
                slot.job = None
                self._replace(i)
                n += 1
        return n

    def _replace(self, i: int) -> None:  # pragma: no cover - every engine defines it
        raise NotImplementedError


class SandboxPool(QueuedPool):
    """Run ``functions[kind](task)`` in confined processes; yield ``(key, result | TaskFailure)``."""

    def __init__(self, functions: dict[str, Callable[[Any], Any]], workers: int,
                 limits: SandboxLimits = SandboxLimits()) -> None:
        os.environ.update({k: v for k, v in _SINGLE_THREAD_ENV.items() if k not in os.environ})
        self._ctx = mp.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)
        self._functions = functions
        self._limits = limits
        # A result can hardly be larger than the worker's memory; a longer message is refused.
        self._max_result_bytes = max(256 * 1024**2, limits.memory_bytes) if limits.memory_bytes > 0 else None
        self._protections: dict[str, Any] | None = None
        self._queue: deque[tuple[Any, str, Any, float]] = deque()
        self._slots = [self._spawn() for _ in range(max(1, workers))]

    @property
    def protections(self) -> dict[str, Any]:
        """What confined the workers on this host (as the last worker to start reported it)."""
        if self._protections is None:
            for slot in self._slots:
                if slot.job is None and not slot.retired and slot.conn.poll(2):
                    self._receive(slot)
                    break
        return dict(self._protections or {})

    def _spawn(self, cpu_hard_s: int | None = None) -> _Slot:
        cpu_hard_s = int(cpu_hard_s or self._limits.cpu_budget_s)
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, self._functions, self._limits, cpu_hard_s),
                                    daemon=True)
        process.start()
        child.close()
        return _Slot(process, parent, cpu_hard_s)

    def _dispatch(self) -> None:
        for i, slot in enumerate(self._slots):
            if slot.job is None and self._queue:
                key, kind, task, timeout_s = self._queue.popleft()
                cpu_s = cpu_allowance_s(timeout_s)
                if (slot.retired or slot.tasks >= self._limits.max_tasks_per_worker
                        or slot.cpu_granted_s + cpu_s > slot.cpu_hard_s):
                    self._replace(i, kill=True, cpu_hard_s=max(int(self._limits.cpu_budget_s), cpu_s))
                    slot = self._slots[i]
                try:
                    slot.conn.send((kind, task, cpu_s))
                except (BrokenPipeError, OSError):
                    self._queue.appendleft((key, kind, task, timeout_s))
                    self._replace(i)
                    continue
                slot.tasks += 1
                slot.cpu_granted_s += cpu_s
                slot.job = (key, kind, task, time.monotonic() + timeout_s)

    def _replace(self, i: int, kill: bool = False, cpu_hard_s: int | None = None) -> None:
        slot = self._slots[i]
        if kill and slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        slot.conn.close()
        self._slots[i] = self._spawn(cpu_hard_s)

    def abort(self) -> int:
        """Kill the workers with a task in flight (no waiting, no new processes: the parent is
        stopping); forget the queue. Killed slots are replaced if the pool is used again."""
        self._queue.clear()
        n = 0
        for slot in self._slots:
            if slot.job is not None:
                slot.job = None
                slot.retired = True
                if slot.process.is_alive():
                    slot.process.kill()
                n += 1
        return n

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
            message = self._receive(slot)
            if message is _NOTHING and handle != slot.process.sentinel:
                continue  # only the worker's start-up report was there
            done.add(i)
            key = slot.job[0]
            slot.job = None
            if message is _NOTHING or message is _DEAD:
                slot.process.join(timeout=2)  # the pipe can close a moment before the exit status exists
                code = slot.process.exitcode
                self._replace(i, kill=True)
                yield key, _death(code)
                continue
            if isinstance(message, TaskFailure):  # the worker broke the protocol: never trust it again
                self._replace(i, kill=True)
                yield key, message
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

    def _receive(self, slot: _Slot) -> Any:
        """The worker's next answer: ("ok"|"fail", payload), _NOTHING (nothing but a start-up
        report), _DEAD (the pipe closed), or a TaskFailure when the bytes are not a valid answer."""
        try:
            while slot.conn.poll():
                raw = slot.conn.recv_bytes(self._max_result_bytes)
                try:
                    message = wire.decode(raw)
                except wire.WireError as exc:
                    return TaskFailure("worker_protocol_error", str(exc)[:500])
                finally:
                    del raw
                if isinstance(message, tuple) and len(message) == 2 and message[0] == "hello":
                    if isinstance(message[1], dict):
                        self._protections = message[1]
                    continue
                if (isinstance(message, tuple) and len(message) == 2
                        and (message[0] == "ok" or (message[0] == "fail" and isinstance(message[1], TaskFailure)))):
                    return message
                return TaskFailure("worker_protocol_error", "unexpected message")
        except EOFError:
            return _DEAD
        except OSError as exc:
            if "bad message length" in str(exc):
                return TaskFailure("worker_protocol_error", "result larger than the worker's memory cap")
            return _DEAD
        return _NOTHING

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


_NOTHING = object()
_DEAD = object()


def _death(exitcode: int | None) -> TaskFailure:
    if exitcode is None:
        return TaskFailure("worker_lost")
    if exitcode == -signal.SIGXCPU:
        return TaskFailure("timeout", "cpu_limit")
    if exitcode < 0:
        return TaskFailure(f"crash_signal:{-exitcode}")
    return TaskFailure(f"worker_exit:{exitcode}")

