"""Execution engines: which pool runs the runner's worker tasks.

The runner has one code path; only the pool behind it changes. ``local`` is the sandboxed
process pool on this machine; ``ray`` runs the same tasks, in the same sandbox, on Ray actors
anywhere in a cluster (:mod:`vidpipe.pipeline.ray_pool`). Both yield ``(key, result |
TaskFailure)`` to the single writer in the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from vidpipe.errors import UsageError
from vidpipe.pipeline.sandbox import SandboxLimits, SandboxPool

ENGINES = ("local", "ray")


class WorkerPool(Protocol):
    """What the runner needs from a pool (see :class:`SandboxPool`): ``drop_queued`` when a run is
    interrupted (SIGINT: finish what is in flight), ``abort`` when it must stop now (SIGTERM: end the
    tasks in flight without results)."""

    def submit(self, key: Any, kind: str, task: Any, timeout_s: float | None = None) -> None: ...

    def results(self, max_wait_s: float = 0.5) -> Iterator[tuple[Any, Any]]: ...

    @property
    def pending(self) -> int: ...

    def drop_queued(self) -> int: ...

    def abort(self) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> WorkerPool: ...

    def __exit__(self, *exc: object) -> None: ...


def check_engine(engine: str) -> None:
    """Fail early (before a case is opened) when the engine cannot run here: exit 2 or 3."""
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        from vidpipe.pipeline.ray_pool import import_ray

        import_ray()


def make_pool(engine: str, functions: dict[str, Callable[[Any], Any]], workers: int,
              limits: SandboxLimits | None = None, ray_address: str | None = None,
              ray_insecure: bool = False, pixels_by_ref: bool = False) -> WorkerPool:
    """The pool for ``engine``; ``workers`` is the number of tasks in flight at once.
    ``ray_insecure``: join ``ray_address`` without token authentication (``--ray-insecure``).
    ``pixels_by_ref`` (ray): model-stage inputs come back as ObjectRefs, for a model stage in Ray actors."""
    if engine == "local":
        if ray_address:
            raise UsageError("--ray-address needs --engine ray")
        return SandboxPool(functions, workers, limits or SandboxLimits())
    if engine == "ray":
        from vidpipe.pipeline.ray_pool import RayPool

        return RayPool(functions, workers, limits, address=ray_address, insecure=ray_insecure,
                       pixels_by_ref=pixels_by_ref)
    raise UsageError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
