"""Module-level task functions for the sandbox tests (workers import them by name)."""

from __future__ import annotations

import os
import signal
import time


def echo(x):
    return x


def hang(seconds):
    time.sleep(seconds)
    return "woke"


def segfault(_):
    os.kill(os.getpid(), signal.SIGSEGV)


def hog(megabytes):
    blocks = [bytearray(1024 * 1024) for _ in range(megabytes)]
    return len(blocks)


def boom(_):
    raise ValueError("bad input")
