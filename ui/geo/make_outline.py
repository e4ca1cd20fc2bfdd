"""Regenerate ``world_110m.json``, the bundled world outline of the offline GPS map (run by hand).

Input: ``countries-110m.json`` from the npm package ``world-atlas`` 2.0.2 (Natural Earth 4.1.0
admin-0 countries at 1:110m, public domain, as TopoJSON; the package is ISC-licensed), e.g.
``npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz`` then
``python -m ui.geo.make_outline package/countries-110m.json``.

Output: every TopoJSON arc (coastlines and borders, each drawn once) as a flat list
``[lon, lat, lon, lat, ...]`` rounded to 0.1 degree (about 11 km, finer than the 1:110m source
needs), split where a line would jump across the antimeridian. Nothing here runs in the UI.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("world_110m.json")
DIGITS = 1


def decode_arcs(topo: dict) -> list[list[tuple[float, float]]]:
    """The arcs of a quantised TopoJSON topology as lists of (lon, lat)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    lines = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:  # delta-encoded
            x, y = x + dx, y + dy
            points.append((round(x * sx + tx, DIGITS), round(y * sy + ty, DIGITS)))
        lines.append(points)
    return lines


def clean(lines: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
    """Drop repeated points, split at antimeridian jumps, keep lines of two points or more."""
    out = []
    for line in lines:
        part: list[tuple[float, float]] = []
        for p in line:
            if part and p == part[-1]:
                continue
            if part and abs(p[0] - part[-1][0]) > 180:
                out.append(part)
                part = []
            part.append(p)
        out.append(part)
    return [p for p in out if len(p) >= 2]


def main(src: str) -> int:
    raw = Path(src).read_bytes()
    lines = clean(decode_arcs(json.loads(raw)))
    doc = {"source": "world-atlas 2.0.2 countries-110m.json (Natural Earth 4.1.0, public domain)",
           "source_sha256": hashlib.sha256(raw).hexdigest(), "digits": DIGITS,
           "lines": [[v for p in line for v in p] for line in lines]}
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(lines)} lines, {sum(len(x) for x in lines)} points, {OUT.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
