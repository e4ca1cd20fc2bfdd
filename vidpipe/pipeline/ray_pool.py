"""A Ray-backed pool with the :class:`~vidpipe.pipeline.sandbox.SandboxPool` interface.

Each worker slot is one Ray actor (``num_cpus=1``), placed by Ray anywhere in the cluster. The
actor runs its tasks in a one-process :class:`SandboxPool` on its own node, so a task that hangs,
crashes its decoder or exceeds the memory cap costs exactly the result the local engine gives
(``timeout``, ``crash_signal:N``, ``memory_limit``, ``worker_error:…``), measured from the moment
the task starts, and the actor itself lives on. Ray's own task timeouts and memory handling are
weaker (no per-task deadline; the memory monitor kills by node pressure, not by a per-task cap),
which is why the sandbox travels to the node rather than being replaced by Ray options.

What Ray adds on top, and how it ends: an actor that dies (node lost, killed by Ray's memory
monitor, ``ray.kill``) costs its one in-flight task as ``worker_lost`` and is replaced; a task
whose actor does not answer ``BACKSTOP_GRACE_S`` after the sandbox's own deadline is killed with
its actor and ends as ``timeout``.

The queue, the dispatch and every result stay in the driver, so the single database writer sees
the same ``(key, result)`` stream as with the local pool, in whatever order tasks finish.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpipe.errors import MissingDependencyError, UsageError, VidpipeError
from vidpipe.pipeline.sandbox import QueuedPool, SandboxLimits, SandboxPool, TaskFailure

RAY_INSTALL_HINT = ("--engine ray needs the 'ray' package: .venv/bin/pip install ray==2.60.0 "
                    "(or use --engine local)")
BACKSTOP_GRACE_S = 30.0    # the node's sandbox enforces the deadline; the driver only backs it up
STARTUP_TIMEOUT_S = 300.0  # no actor ready by then: the cluster cannot run us (no CPUs, no vidpipe)
MAX_START_FAILURES = 3     # actor start-ups that may fail per slot before the run stops

# Ray's one phone-home is its usage-stats report; it must be off before ``import ray``.
_OFFLINE_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0"}


def import_ray():
    """Import ray with usage statistics off; a missing package is exit 3 with the fix."""
    for key, value in _OFFLINE_ENV.items():
        os.environ[key] = value
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(RAY_INSTALL_HINT) from exc
    return ray


class _NodeWorker:
    """The Ray actor: one sandboxed process on its node, one task at a time.

    ``pixels_by_ref``: the model stage runs in Ray actors (``RayModelStage``), so the decoded
    images a result carries for it are put into this node's object store and the result carries
    their ObjectRefs: the pixels go from this node to the model actor's without passing through
    the driver. This actor owns those objects; if it is replaced (a task's timeout or crash), the
    images it decoded and the model stage has not read yet end ``face_error:pixels_lost``."""

    def __init__(self, functions: dict[str, Callable[[Any], Any]], limits: SandboxLimits,
                 pixels_by_ref: bool = False) -> None:
        self._pool = SandboxPool(functions, 1, limits)
        self._pixels_by_ref = pixels_by_ref

    def where(self) -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def run(self, kind: str, task: Any, timeout_s: float) -> Any:
        self._pool.submit(None, kind, task, timeout_s)
        while True:
            for _, result in self._pool.results(max_wait_s=1.0):
                if self._pixels_by_ref:
                    import ray

                    pixels_to_store(result, ray.put)
                return result

    def close(self) -> None:
        self._pool.close()


def pixels_to_store(result: Any, put: Callable[[Any], Any]) -> int:
    """Replace the pixels of every model-stage input a worker result carries (``FaceInput``; in a
    content result, a hash result's content, or an archive pass's members) by ``put(pixels)``;
    returns how many were replaced."""
    from vidpipe.pipeline.face_stage import FaceInput
    from vidpipe.pipeline.tasks import ContentResult, HashResult

    if isinstance(result, FaceInput):
        result.pixels = put(result.pixels)
        return 1
    content = result.content if isinstance(result, HashResult) else result
    if not isinstance(content, ContentResult):
        return 0
    n = 0
    for item in content.face_inputs:
        item.pixels = put(item.pixels)
        n += 1
    for member in content.members or ():
        if member.hashed is not None:
            n += pixels_to_store(member.hashed, put)
    return n


@dataclass
class _Slot:
    actor: Any
    ready_ref: Any | None                  # pending until the actor has started
    job: tuple[Any, Any, float] | None = None  # (key, object ref, backstop deadline)
    where: dict[str, Any] | None = None        # host and pid, once started


def code_roots(functions: dict[str, Callable[[Any], Any]]) -> list[str]:
    """Directories that make ``vidpipe`` and the task functions' modules importable on a worker."""
    roots: list[str] = []
    for name in ["vidpipe", *sorted({f.__module__ for f in functions.values()})]:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not path:
            continue
        root = Path(path).resolve().parent
        up = name.count(".") + (1 if Path(path).name == "__init__.py" else 0)
        for _ in range(up):
            root = root.parent
        if str(root) not in roots:
            roots.append(str(root))
    return roots


class RayPool(QueuedPool):
    """Run ``functions[kind](task)`` on Ray actors; yield ``(key, result | TaskFailure)``.

    ``address`` joins an existing cluster (``ray start --head``); without it a private local Ray
    instance with ``workers`` CPUs is started and shut down with the pool. When Ray is already
    initialised in this process (tests), that connection is used and left open.
    """

    def __init__(self, functions: dict[str, Callable[[Any], Any]], workers: int,
                 limits: SandboxLimits | None = None, address: str | None = None, insecure: bool = False,
                 pixels_by_ref: bool = False) -> None:
        self._ray = ray = import_ray()
        self._pixels_by_ref = pixels_by_ref  # see _NodeWorker
        self._owns_ray = connect_ray(ray, address, workers, insecure)
        self._functions, self._limits = functions, limits or SandboxLimits()
        pythonpath = os.pathsep.join(code_roots(functions) + [p for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p])
        # Tasks reach the workers by reference (module + name): the actors must import what the
        # driver imports. Nothing is uploaded: the paths must exist on every node (shared storage).
        self._actor_class = ray.remote(_NodeWorker).options(
            num_cpus=1, max_restarts=0, max_task_retries=0, max_concurrency=1,
            scheduling_strategy="SPREAD" if address else "DEFAULT",
            runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
        self._queue: deque[tuple[Any, str, Any, float]] = deque()
        self._start_failures = 0
        self._max_start_failures = MAX_START_FAILURES * max(1, workers)
        self._started_at = time.monotonic()
        self._any_ready = False
        self.nodes: dict[str, int] = {}  # host -> actors started there (for the run's record)
        self._slots = [self._spawn() for _ in range(max(1, workers))]

    # -- the rest of the pool interface (submit, pending, drop_queued: QueuedPool) -------------

    def results(self, max_wait_s: float = 0.5) -> Iterator[tuple[Any, Any]]:
        """Dispatch and collect; yields whatever finished within ``max_wait_s``."""
        ray = self._ray
        self._dispatch()
        waiting = {}
        for i, slot in enumerate(self._slots):
            if slot.ready_ref is not None:
                waiting[slot.ready_ref] = (i, "ready")
            elif slot.job is not None:
                waiting[slot.job[1]] = (i, "job")
        if not waiting:
            return
        now = time.monotonic()
        deadlines = [s.job[2] - now for s in self._slots if s.job is not None]
        wait_s = max(0.0, min([max_wait_s, *deadlines]))
        refs = list(waiting)
        ready, rest = ray.wait(refs, num_returns=1, timeout=wait_s)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        finished: set[int] = set()
        for ref in ready:
            i, what = waiting[ref]
            if what == "ready":
                self._on_ready(i)
                continue
            finished.add(i)
            key = self._slots[i].job[0]
            self._slots[i].job = None
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as exc:
                self._replace(i)
                yield key, TaskFailure("worker_lost", _short(exc))
                continue
            except ray.exceptions.RayError as exc:  # object lost, system error: the task ends here
                self._replace(i)
                yield key, TaskFailure(f"worker_error:{type(exc).__name__}", _short(exc))
                continue
            yield key, result
        now = time.monotonic()
        for i, slot in enumerate(self._slots):
            if slot.job is not None and i not in finished and now > slot.job[2]:
                key = slot.job[0]
                slot.job = None
                self._replace(i)
                yield key, TaskFailure("timeout", "no answer from the Ray actor")
        self._check_startup()

    def close(self) -> None:
        for slot in self._slots:
            try:
                self._ray.kill(slot.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead, or the cluster is gone
                pass
        self._slots = []
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Engine facts for provenance: Ray version, cluster resources, where actors started."""
        resources = self._ray.cluster_resources()
        return {"engine": "ray", "ray_version": self._ray.__version__, "slots": len(self._slots),
                "cluster_cpus": resources.get("CPU", 0), "cluster_gpus": resources.get("GPU", 0),
                "nodes": dict(self.nodes)}

    def _spawn(self) -> _Slot:
        actor = self._actor_class.remote(self._functions, self._limits, self._pixels_by_ref)
        return _Slot(actor, actor.where.remote())

    def _replace(self, i: int) -> None:
        try:
            self._ray.kill(self._slots[i].actor, no_restart=True)
        except Exception:  # noqa: BLE001 - it is already dead
            pass
        self._slots[i] = self._spawn()

    def _on_ready(self, i: int) -> None:
        slot = self._slots[i]
        try:
            where = self._ray.get(slot.ready_ref)
        except self._ray.exceptions.RayError as exc:
            self._start_failures += 1
            if self._start_failures >= self._max_start_failures:
                raise VidpipeError(f"Ray workers fail to start ({self._start_failures} tries); is vidpipe "
                                   f"importable at the same path on every node? last error: {_short(exc)}") from exc
            self._replace(i)
            return
        slot.ready_ref, slot.where = None, where
        self._any_ready = True
        self.nodes[where["host"]] = self.nodes.get(where["host"], 0) + 1

    def _dispatch(self) -> None:
        for slot in self._slots:
            if slot.ready_ref is None and slot.job is None and self._queue:
                key, kind, task, timeout_s = self._queue.popleft()
                ref = slot.actor.run.remote(kind, task, timeout_s)
                slot.job = (key, ref, time.monotonic() + timeout_s + BACKSTOP_GRACE_S)

    def _check_startup(self) -> None:
        if (not self._any_ready and self._queue
                and time.monotonic() - self._started_at > STARTUP_TIMEOUT_S):
            raise VidpipeError(f"no Ray worker started within {STARTUP_TIMEOUT_S:.0f} s: does the cluster have "
                               "free CPUs (ray status)?")


def ray_auth_problem(env: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """Why this process would talk to a Ray cluster without token authentication, or None.

    Ray (>= 2.52) authenticates every control-plane call with a shared token when
    ``RAY_AUTH_MODE=token``; the token comes from ``RAY_AUTH_TOKEN``, else the file named by
    ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. With the mode unset, a driver that finds a
    token turns authentication on by itself (``ray/_private/authentication``); ``disabled`` (or no
    token at all) means anyone who can reach the cluster can run code on it, next to the evidence.
    Only this side's configuration can be checked before connecting: the cluster's nodes must be
    started with ``RAY_AUTH_MODE=token`` too (docs/ray_cluster.md)."""
    env = dict(os.environ) if env is None else env
    mode = env.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":  # set at all, even empty, it is Ray's answer
        return f"RAY_AUTH_MODE={mode!r} turns Ray's token authentication off"
    if (env.get("RAY_AUTH_TOKEN") or "").strip():
        return None
    path = env.get("RAY_AUTH_TOKEN_PATH")
    token_file = Path(path) if path else (home or Path.home()) / ".ray" / "auth_token"
    try:
        if token_file.read_text(encoding="utf-8").strip():
            return None
    except OSError:
        pass
    return (f"no Ray authentication token (RAY_AUTH_TOKEN, or a token in "
            f"{'RAY_AUTH_TOKEN_PATH=' + path if path else token_file})")


def check_ray_auth(address: str | None, insecure: bool = False) -> None:
    """Refuse to join the cluster at ``address`` without token authentication (exit 2), unless
    ``insecure`` (``--ray-insecure``). A private local instance (no address) is not checked."""
    if not address or insecure:
        return
    problem = ray_auth_problem()
    if problem:
        raise UsageError(f"refusing to join the Ray cluster at {address}: {problem}. Start the cluster and "
                         "this command with RAY_AUTH_MODE=token and the cluster's token (see "
                         "docs/ray_cluster.md), or pass --ray-insecure on an isolated network")


def connect_ray(ray, address: str | None, workers: int, insecure: bool = False) -> bool:
    """Join ``address`` or start a private local instance; False when this process already was
    connected (then the caller must leave the connection open). Joining a cluster needs token
    authentication configured unless ``insecure`` (:func:`check_ray_auth`)."""
    import logging

    if ray.is_initialized():
        return False
    check_ray_auth(address, insecure)
    common = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
    if address:
        # An existing cluster: its resources are what `ray start` gave it.
        common.pop("include_dashboard")
        ray.init(address=address, **common)
    else:
        # GPUs are detected by Ray itself (none here means none offered to actors).
        ray.init(num_cpus=workers, **common)
    return True


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]
