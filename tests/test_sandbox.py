"""The sandbox turns hangs, crashes, memory blow-ups and bugs into one failed result each."""

from __future__ import annotations

import time

import sandbox_targets as t

from vidpipe.pipeline.sandbox import SandboxLimits, SandboxPool, TaskFailure

FUNCTIONS = {"echo": t.echo, "hang": t.hang, "segfault": t.segfault, "hog": t.hog, "boom": t.boom}


def run_all(pool: SandboxPool) -> dict:
    out = {}
    deadline = time.monotonic() + 120
    while pool.pending and time.monotonic() < deadline:
        for key, result in pool.results():
            out[key] = result
    return out


def test_failures_are_isolated_and_the_pool_goes_on() -> None:
    limits = SandboxLimits(memory_bytes=256 * 1024**2, base_timeout_s=30)
    with SandboxPool(FUNCTIONS, workers=2, limits=limits) as pool:
        pool.submit("hang", "hang", 60, timeout_s=1.5)
        pool.submit("segv", "segfault", None)
        pool.submit("hog", "hog", 2048)
        pool.submit("boom", "boom", None)
        for i in range(10):
            pool.submit(("ok", i), "echo", i)
        results = run_all(pool)
    assert results["hang"] == TaskFailure("timeout")
    assert results["segv"] == TaskFailure("crash_signal:11")
    assert results["hog"] == TaskFailure("memory_limit")
    assert isinstance(results["boom"], TaskFailure) and results["boom"].reason == "worker_error:ValueError"
    assert [results[("ok", i)] for i in range(10)] == list(range(10))


def test_drop_queued_keeps_in_flight_work() -> None:
    with SandboxPool(FUNCTIONS, workers=1) as pool:
        pool.submit("slow", "hang", 0.5)
        for i in range(5):
            pool.submit(i, "echo", i)
        first = list(pool.results(max_wait_s=0.1))  # dispatches "slow"
        dropped = pool.drop_queued()
        results = dict(first) | run_all(pool)
    assert dropped == 5
    assert results == {"slow": "woke"}


def test_a_crash_seen_through_both_handles_costs_one_result() -> None:
    # The pipe closes and the process sentinel fires for the same dead worker in one wait().
    with SandboxPool(FUNCTIONS, workers=2) as pool:
        for i in range(6):
            pool.submit(("segv", i), "segfault", None)
        pool.submit("after", "echo", 42)
        results = run_all(pool)
    assert all(results[("segv", i)] == TaskFailure("crash_signal:11") for i in range(6))
    assert results["after"] == 42
