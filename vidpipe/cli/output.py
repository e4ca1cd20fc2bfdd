"""Output helpers: one JSON object on stdout with --json; everything else on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=True, default=str) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    print(message, file=sys.stderr)
