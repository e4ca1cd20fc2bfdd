"""Pictures a reviewer looks at rather than reads: score histogram, ROC curve, date timeline,
camera breakdown and an offline GPS map, as Altair (Vega-Lite) charts that Streamlit ships.

Every builder takes plain data and returns either an Altair chart or ``NoData`` (a message to
show instead), so an empty case or a search without scores shows a sentence, not an exception.
All data travels inline with the chart; no mark loads anything by URL, and the map draws a
bundled country outline (ui/geo/) instead of fetching tiles.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

OUTLINE_FILE = Path(__file__).with_name("geo") / "world_110m.json"
THRESHOLD_COLOUR = "#d62728"
ABOVE_COLOUR, BELOW_COLOUR = "#1f77b4", "#aec7e8"
FAR_FLOOR = 1e-5       # where a measured FAR of 0 is drawn on the log axis (labelled as such)
MAP_MIN_SPAN_DEG = 6.0  # the smallest latitude span shown: one city still shows its coastline
MAP_WIDTH, MAP_HEIGHT = 760, 420
HISTOGRAM_HEIGHT, TIMELINE_HEIGHT, ROC_HEIGHT = 150, 180, 260  # plot areas, in pixels
# Fit the width to the page, keep the height as given (Streamlit's default "fit" squeezes title,
# axes and legend into the height, and collapses a band scale); the map keeps both ("pad").
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")
AS_GIVEN = alt.AutoSizeParams(type="pad", contains="padding")
COUNT_AXIS = alt.Axis(tickMinStep=1, format="d")  # counts: whole numbers only
MAX_CAMERAS = 25       # bars in the camera breakdown; the table below it lists all
_DATE = re.compile(r"(\d{4})[:\-/.](\d{2})[:\-/.](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


@dataclass(frozen=True)
class NoData:
    """What to say instead of a chart when there is nothing to draw."""

    message: str


Chart = alt.TopLevelMixin


def show(chart: Chart | NoData, *, width: str = "stretch") -> None:
    """Draw ``chart`` in the page, or its no-data message as an info box."""
    if isinstance(chart, NoData):
        st.info(chart.message)
    else:
        st.altair_chart(chart, width=width)


# -- search scores ---------------------------------------------------------------------------

def score_histogram_chart(scores: Iterable[float | None], threshold: float | None) -> Chart | NoData:
    """Histogram of result scores with the threshold as a vertical rule (above/below coloured)."""
    values = [float(s) for s in scores if s is not None and math.isfinite(float(s))]
    if not values:
        return NoData("No scores to chart: the search returned no scored results.")
    ends = values + ([float(threshold)] if threshold is not None else [])
    lo, hi = min(ends), max(ends)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    side = ["no threshold" if threshold is None else ("above" if v >= threshold else "below") for v in values]
    shown = [k for k in ("above", "below", "no threshold") if k in side]  # the legend names only what is drawn
    colours = {"above": ABOVE_COLOUR, "below": BELOW_COLOUR, "no threshold": "#7f7f7f"}
    bars = alt.Chart(pd.DataFrame({"score": values, "side": side})).mark_bar().encode(
        x=alt.X("score:Q", bin=alt.Bin(maxbins=30, extent=[lo, hi]), title="score"),
        y=alt.Y("count():Q", title="results", axis=COUNT_AXIS),
        color=alt.Color("side:N", title="", scale=alt.Scale(domain=shown, range=[colours[k] for k in shown])),
        tooltip=[alt.Tooltip("count():Q", title="results")])
    chart = bars
    if threshold is not None:
        rule_data = pd.DataFrame({"threshold": [float(threshold)], "label": [f"threshold {threshold:.3f}"]})
        rule = alt.Chart(rule_data).mark_rule(color=THRESHOLD_COLOUR, strokeWidth=2, strokeDash=[6, 3]).encode(
            x="threshold:Q")
        text = alt.Chart(rule_data).mark_text(align="left", dx=4, dy=-4, color=THRESHOLD_COLOUR).encode(
            x="threshold:Q", y=alt.value(8), text="label:N")
        chart = bars + rule + text
    return chart.properties(height=HISTOGRAM_HEIGHT, autosize=FIT_WIDTH, title=f"Scores of the {len(values)} results")


def score_histogram(scores: Iterable[float | None], threshold: float | None) -> None:
    """The search page's histogram, in one call."""
    show(score_histogram_chart(scores, threshold))


# -- calibration -----------------------------------------------------------------------------

def roc_points(detail: Mapping | None) -> list[dict]:
    """(threshold, far, frr) points from a calibration's stored detail (vidpipe/search/calibrate.py)."""
    if not detail:
        return []
    points = [*(detail.get("grid") or []), *(detail.get("at_far") or [])]
    return [{"threshold": float(p["threshold"]), "far": float(p["far"]), "frr": float(p["frr"])} for p in points
            if p.get("far") is not None and p.get("frr") is not None and p.get("threshold") is not None
            and math.isfinite(float(p["frr"]))]


def roc_chart(points: Sequence[Mapping], operating: Mapping | None = None) -> Chart | NoData:
    """ROC curve: true-match rate (1 - FRR) against false-match rate on a log axis, with the
    chosen operating point. A FAR of 0 is drawn at ``FAR_FLOOR`` and says so in its tooltip."""
    rows = [_roc_row(p) for p in points]
    if not rows:
        return NoData("No ROC points stored for this calibration (it was made without a labelled set).")
    rows.sort(key=lambda r: (r["far_shown"], r["tar"]))
    x = alt.X("far_shown:Q", scale=alt.Scale(type="log", domain=[FAR_FLOOR, 1]),
              title="false-match rate (FAR, log)")
    y = alt.Y("tar:Q", scale=alt.Scale(domain=[0, 1]), title="true-match rate (1 − FRR)")
    tips = [alt.Tooltip("threshold:Q", format=".4f"), alt.Tooltip("far_text:N", title="FAR"),
            alt.Tooltip("frr:Q", format=".4f", title="FRR")]
    curve = alt.Chart(pd.DataFrame(rows)).mark_line(point=True, color=ABOVE_COLOUR).encode(x=x, y=y, tooltip=tips)
    chart = curve
    if operating is not None and operating.get("far") is not None and operating.get("frr") is not None:
        op = _roc_row(operating)
        op["label"] = f"chosen: threshold {op['threshold']:.3f}"
        op_data = pd.DataFrame([op])
        dot = alt.Chart(op_data).mark_point(shape="diamond", size=220, filled=True, color=THRESHOLD_COLOUR).encode(
            x=x, y=y, tooltip=tips)
        label = alt.Chart(op_data).mark_text(align="left", dx=10, dy=14, color=THRESHOLD_COLOUR).encode(
            x=x, y=y, text="label:N")
        chart = curve + dot + label
    return chart.properties(height=ROC_HEIGHT, autosize=FIT_WIDTH, title="ROC of the calibration (operating point in red)")


def _roc_row(p: Mapping) -> dict:
    far, frr = float(p["far"]), float(p["frr"])
    return {"threshold": float(p.get("threshold") or 0.0), "far": far, "frr": frr, "tar": 1.0 - frr,
            "far_shown": max(far, FAR_FLOOR), "far_text": f"{far:g}" if far > 0 else f"0 (drawn at {FAR_FLOOR:g})"}


# -- EXIF: dates and cameras ---------------------------------------------------------------

def exif_datetime(stamp: str | None) -> datetime | None:
    """The camera's local capture time from an EXIF DateTimeOriginal text, or None."""
    m = _DATE.match(stamp or "")
    if not m:
        return None
    try:
        return datetime(*(int(g) for g in m.groups()))
    except ValueError:  # 2021:02:30 and the like
        return None


def timeline_chart(stamps: Iterable[str | None], counts: Iterable[int] | None = None) -> Chart | NoData:
    """Items per day (per hour for a short case, per month for a long one) by EXIF capture time.

    ``counts`` (one per stamp) lets a caller pass stamps already grouped, e.g. per hour in SQL.
    """
    pairs = [(exif_datetime(s), int(n)) for s, n in zip(stamps, itertools.repeat(1) if counts is None else counts, strict=False)]
    pairs = [(t, n) for t, n in pairs if t is not None and n > 0]
    if not pairs:
        return NoData("No EXIF capture dates in this case.")
    times = [t for t, _ in pairs]
    span_days = (max(times) - min(times)).total_seconds() / 86400
    unit, step = (("yearmonthdatehours", "hour") if span_days <= 2 else
                  ("yearmonthdate", "day") if span_days <= 400 else ("yearmonth", "month"))
    # Local camera time as text without a zone: Vega-Lite parses and bins it as the same wall clock.
    data = pd.DataFrame({"taken": [t.isoformat() for t in times], "items": [n for _, n in pairs]})
    chart = alt.Chart(data).mark_bar(color=ABOVE_COLOUR).encode(
        x=alt.X(f"{unit}(taken):T", title=f"capture time (camera clock, per {step})"),
        y=alt.Y("sum(items):Q", title="items", axis=COUNT_AXIS),
        tooltip=[alt.Tooltip(f"{unit}(taken):T", title=step), alt.Tooltip("sum(items):Q", title="items")])
    total = sum(n for _, n in pairs)
    return chart.properties(height=TIMELINE_HEIGHT, autosize=FIT_WIDTH, title=f"EXIF capture dates ({total} items)")


def camera_counts(exifs: Iterable[Mapping | None], weights: Iterable[int] | None = None) -> list[dict]:
    """Items per (make, model, serial), most first; items without any of the three are left out.

    ``weights`` (one per EXIF) lets a caller pass rows already grouped, e.g. in SQL.
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    for exif, n in zip(exifs, itertools.repeat(1) if weights is None else weights, strict=False):
        exif = exif or {}
        make, model, serial = (" ".join(str(exif.get(k) or "").split()) for k in ("make", "model", "serial"))
        if make or model or serial:
            counts[(make, model, serial)] += int(n)
    return [{"make": mk, "model": md, "serial": sn, "items": n}
            for (mk, md, sn), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def camera_chart(counts: Sequence[Mapping]) -> Chart | NoData:
    """Horizontal bars: items per camera (make and model), split by body serial."""
    if not counts:
        return NoData("No camera make, model or serial in the EXIF of this case.")
    rows = [{"camera": _camera_name(c), "serial": c.get("serial") or "(no serial)", "items": int(c["items"])}
            for c in counts]
    totals = Counter()
    for r in rows:
        totals[r["camera"]] += r["items"]
    keep = {name for name, _ in totals.most_common(MAX_CAMERAS)}
    rows = [r for r in rows if r["camera"] in keep]
    chart = alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
        y=alt.Y("camera:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
        x=alt.X("sum(items):Q", title="items", axis=COUNT_AXIS),
        color=alt.Color("serial:N", title="serial"),
        tooltip=["camera:N", "serial:N", alt.Tooltip("sum(items):Q", title="items")])
    return chart.properties(autosize=FIT_WIDTH, title="Cameras and body serials")  # a bar per row: no height


def _camera_name(c: Mapping) -> str:
    make, model = c.get("make") or "", c.get("model") or ""
    if make and model.lower().startswith(make.lower()):  # "Canon" + "Canon EOS 5D"
        make = ""
    return " ".join(p for p in (make, model) if p) or "(unknown camera)"


# -- GPS map ---------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def outline_lines() -> tuple[tuple[tuple[float, float], ...], ...]:
    """The bundled world outline as lines of (lon, lat) (static data, the same for every case)."""
    doc = json.loads(OUTLINE_FILE.read_text())
    return tuple(tuple(zip(flat[0::2], flat[1::2], strict=True)) for flat in doc["lines"])


def valid_points(points: Iterable[Mapping]) -> list[dict]:
    """Points with a finite latitude in [-90, 90] and longitude in [-180, 180]."""
    out = []
    for p in points:
        try:
            lat, lon = float(p["lat"]), float(p["lon"])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180:
            out.append({**p, "lat": lat, "lon": lon})
    return out


def map_extent(points: Sequence[Mapping]) -> tuple[tuple[float, float], tuple[float, float]]:
    """((lon_min, lon_max), (lat_min, lat_max)) around the points, padded, at the map's aspect."""
    lats, lons = [p["lat"] for p in points], [p["lon"] for p in points]
    mid_lat, mid_lon = (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2
    # Equirectangular: a degree of longitude is cos(latitude) as long as one of latitude.
    shrink = max(0.2, math.cos(math.radians(mid_lat)))
    lat_span = max(MAP_MIN_SPAN_DEG, 1.3 * (max(lats) - min(lats)), 1.3 * (max(lons) - min(lons)) * shrink
                   * MAP_HEIGHT / MAP_WIDTH)
    lon_span = lat_span * MAP_WIDTH / MAP_HEIGHT / shrink
    lat_span, lon_span = min(lat_span, 180.0), min(lon_span, 360.0)
    lon0 = min(max(mid_lon - lon_span / 2, -180.0), 180.0 - lon_span)
    lat0 = min(max(mid_lat - lat_span / 2, -90.0), 90.0 - lat_span)
    return (lon0, lon0 + lon_span), (lat0, lat0 + lat_span)


def gps_map_chart(points: Iterable[Mapping]) -> Chart | NoData:
    """GPS positions as a scatter on longitude/latitude over the bundled country outline.

    ``points`` rows have ``lat``, ``lon`` and optionally ``label``. Only outline lines that touch
    the shown extent travel with the chart.
    """
    pts = valid_points(points)
    if not pts:
        return NoData("No GPS positions in this case.")
    (x0, x1), (y0, y1) = map_extent(pts)
    outline = [{"line": i, "order": j, "lon": lon, "lat": lat}
               for i, line in enumerate(outline_lines())
               if _touches(line, (x0, x1), (y0, y1))
               for j, (lon, lat) in enumerate(line)]
    x = alt.X("lon:Q", scale=alt.Scale(domain=[x0, x1], nice=False, zero=False), title="longitude")
    y = alt.Y("lat:Q", scale=alt.Scale(domain=[y0, y1], nice=False, zero=False), title="latitude")
    layers = []
    if outline:
        layers.append(alt.Chart(pd.DataFrame(outline)).mark_line(color="#8c8c8c", strokeWidth=0.8, clip=True)
                      .encode(x=x, y=y, detail="line:N", order="order:Q"))
    data = pd.DataFrame([{"lat": p["lat"], "lon": p["lon"], "label": str(p.get("label") or "")} for p in pts])
    layers.append(alt.Chart(data).mark_circle(size=70, color=THRESHOLD_COLOUR, opacity=0.75, clip=True).encode(
        x=x, y=y, tooltip=["label:N", alt.Tooltip("lat:Q", format=".5f"), alt.Tooltip("lon:Q", format=".5f")]))
    return alt.layer(*layers).properties(width=MAP_WIDTH, height=MAP_HEIGHT, autosize=AS_GIVEN,
                                         title=f"GPS positions ({len(pts)}), offline outline (Natural Earth)")


def _touches(line: Sequence[tuple[float, float]], xs: tuple[float, float], ys: tuple[float, float]) -> bool:
    """Whether a segment's bounding box meets the extent (a long segment may cross it vertex-free)."""
    return any(min(ax, bx) <= xs[1] and max(ax, bx) >= xs[0] and min(ay, by) <= ys[1] and max(ay, by) >= ys[0]
               for (ax, ay), (bx, by) in zip(line, line[1:], strict=False))
