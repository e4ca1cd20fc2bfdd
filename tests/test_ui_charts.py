"""Pictures in the review UI (issue 12, items 9-10): charts with the right data, an offline map,
bigger images in a dialog that stay blurred until revealed, and even grid rows.

Chart builders are tested on plain data (their Vega-Lite dict); the pages through AppTest, where
each chart arrives as a ``vega_lite_chart`` element whose datasets are Arrow tables.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from test_ui_support import APP, IMAGES, SAMPLE, fake_search, login, serve_case, sha_of, texts

from ui import charts
from ui.thumbs import THUMB_MAX_SIDE
from ui.view import TILE

ASTRONAUT_GPS = (-22.9068, -43.1729)  # what build_case stores for the astronaut


# -- helpers -------------------------------------------------------------------------------

def spec_of(chart) -> dict:
    return chart.to_dict()


def layers(spec: dict) -> list[dict]:
    return spec.get("layer") or [spec]


def rows_of(spec: dict, layer: dict, datasets: dict | None = None) -> list[dict]:
    """The data rows of one layer, from the spec's own datasets or Streamlit's Arrow datasets."""
    name = (layer.get("data") or spec.get("data") or {}).get("name")
    if datasets is not None and name in datasets:
        return datasets[name]
    return spec["datasets"][name]


def keys_in(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in keys_in(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in keys_in(v)}
    return set()


def page_charts(at: AppTest) -> list[tuple[dict, dict]]:
    """(spec, {dataset name: rows}) of every chart on an AppTest page."""
    out = []
    for element in at.get("vega_lite_chart"):
        spec = json.loads(element.proto.spec)
        data = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pylist() for d in element.proto.datasets}
        out.append((spec, data))
    return out


def chart_titled(at: AppTest, prefix: str) -> tuple[dict, dict]:
    found = [(s, d) for s, d in page_charts(at) if str(s.get("title", "")).startswith(prefix)]
    assert len(found) == 1, [s.get("title") for s, _ in page_charts(at)]
    return found[0]


def mark(layer: dict) -> str:
    m = layer["mark"]
    return m if isinstance(m, str) else m["type"]


# -- chart builders on plain data ----------------------------------------------------------

def test_score_histogram_has_the_scores_and_the_threshold_rule():
    spec = spec_of(charts.score_histogram_chart([0.91, 0.62, None, 0.21], 0.55))
    bars, rule, label = layers(spec)
    assert mark(bars) == "bar" and mark(rule) == "rule" and mark(label) == "text"
    assert sorted(r["score"] for r in rows_of(spec, bars)) == [0.21, 0.62, 0.91]
    assert {r["score"]: r["side"] for r in rows_of(spec, bars)} == {0.21: "below", 0.62: "above", 0.91: "above"}
    assert rows_of(spec, rule) == [{"threshold": 0.55, "label": "threshold 0.550"}]
    assert rule["encoding"]["x"]["field"] == "threshold"
    assert bars["encoding"]["x"]["bin"]["extent"] == [0.21, 0.91]


def test_score_histogram_without_threshold_or_scores():
    spec = spec_of(charts.score_histogram_chart([0.4, 0.4], None))
    assert mark(spec) == "bar" and {r["side"] for r in rows_of(spec, spec)} == {"no threshold"}
    assert spec["encoding"]["x"]["bin"]["extent"] == [pytest.approx(0.35), pytest.approx(0.45)]
    for empty in ([], [None], [float("nan")]):
        result = charts.score_histogram_chart(empty, 0.5)
        assert isinstance(result, charts.NoData) and "No scores" in result.message


def test_roc_chart_draws_the_curve_and_the_operating_point():
    detail = {"grid": [{"threshold": 0.2, "far": 0.5, "frr": 0.0}, {"threshold": 0.6, "far": 0.0, "frr": 0.3}],
              "at_far": [{"target_far": 0.01, "threshold": 0.45, "far": 0.01, "frr": 0.1}]}
    points = charts.roc_points(detail)
    assert len(points) == 3
    spec = spec_of(charts.roc_chart(points, {"threshold": 0.45, "far": 0.01, "frr": 0.1}))
    curve, dot, label = layers(spec)
    rows = rows_of(spec, curve)
    assert [(r["far_shown"], r["tar"]) for r in rows] == [(charts.FAR_FLOOR, 0.7), (0.01, 0.9), (0.5, 1.0)]
    assert rows[0]["far_text"].startswith("0 (drawn at")  # FAR 0 cannot sit on a log axis: said so
    (op,) = rows_of(spec, dot)
    assert (op["far_shown"], op["tar"], op["threshold"]) == (0.01, pytest.approx(0.9), 0.45)
    assert dot["mark"]["shape"] == "diamond" and curve["encoding"]["x"]["scale"]["type"] == "log"
    assert isinstance(charts.roc_chart(charts.roc_points(None), None), charts.NoData)
    assert isinstance(charts.roc_chart([], {"far": 0.1, "frr": 0.1}), charts.NoData)


def test_exif_dates_parse_and_bad_ones_are_left_out():
    assert charts.exif_datetime("2021:07:04 10:20:30").isoformat() == "2021-07-04T10:20:30"
    assert charts.exif_datetime("2021-07-04T10:20:30").day == 4
    for bad in (None, "", "0000:00:00 00:00:00", "2021:02:30 10:00:00", "yesterday"):
        assert charts.exif_datetime(bad) is None


def test_timeline_counts_items_and_picks_the_unit_from_the_span():
    spec = spec_of(charts.timeline_chart(["2021:07:04 10:20:30", "2021:07:04 11:00:00", "bad", None]))
    assert sorted(r["taken"] for r in rows_of(spec, spec)) == ["2021-07-04T10:20:30", "2021-07-04T11:00:00"]
    assert spec["encoding"]["x"]["timeUnit"] == "yearmonthdatehours" and "(2 items)" in spec["title"]
    grouped = spec_of(charts.timeline_chart(["2020:01:01 00:00:00", "2021:06:01 00:00:00"], [3, 4]))
    assert grouped["encoding"]["x"]["timeUnit"] == "yearmonth" and "(7 items)" in grouped["title"]
    assert [r["items"] for r in rows_of(grouped, grouped)] == [3, 4]
    days = spec_of(charts.timeline_chart(["2020:01:01 00:00:00", "2020:03:01 00:00:00"]))
    assert days["encoding"]["x"]["timeUnit"] == "yearmonthdate"
    assert charts.timeline_chart([]) == charts.NoData("No EXIF capture dates in this case.")
    assert isinstance(charts.timeline_chart(["nope"]), charts.NoData)


def test_camera_counts_and_chart():
    exifs = [{"make": "Canon", "model": "Canon EOS 5D", "serial": "123"},
             {"make": "Canon ", "model": "Canon  EOS 5D", "serial": "123"},
             {"make": "Canon", "model": "Canon EOS 5D", "serial": None},
             {"make": "Apple", "model": "iPhone 12"}, {"make": None}, None]
    counts = charts.camera_counts(exifs)
    assert counts == [{"make": "Canon", "model": "Canon EOS 5D", "serial": "123", "items": 2},
                      {"make": "Apple", "model": "iPhone 12", "serial": "", "items": 1},
                      {"make": "Canon", "model": "Canon EOS 5D", "serial": "", "items": 1}]
    assert charts.camera_counts(exifs[:1], [5])[0]["items"] == 5
    spec = spec_of(charts.camera_chart(counts))
    rows = rows_of(spec, spec)
    assert {(r["camera"], r["serial"], r["items"]) for r in rows} == {
        ("Canon EOS 5D", "123", 2), ("Apple iPhone 12", "(no serial)", 1), ("Canon EOS 5D", "(no serial)", 1)}
    assert isinstance(charts.camera_chart(charts.camera_counts([None, {}])), charts.NoData)


def test_gps_map_has_the_points_an_outline_and_no_url():
    spec = spec_of(charts.gps_map_chart([{"lat": ASTRONAUT_GPS[0], "lon": ASTRONAUT_GPS[1], "label": "a"},
                                         {"lat": 91, "lon": 0}, {"lat": None, "lon": 1}, {"lat": "x", "lon": 2}]))
    outline, points = layers(spec)
    assert mark(outline) == "line" and mark(points) == "circle"
    assert rows_of(spec, points) == [{"lat": ASTRONAUT_GPS[0], "lon": ASTRONAUT_GPS[1], "label": "a"}]
    (x0, x1), (y0, y1) = outline["encoding"]["x"]["scale"]["domain"], outline["encoding"]["y"]["scale"]["domain"]
    assert x0 < ASTRONAUT_GPS[1] < x1 and y0 < ASTRONAUT_GPS[0] < y1 and y1 - y0 >= charts.MAP_MIN_SPAN_DEG
    coast = rows_of(spec, outline)
    assert len(coast) > 20 and any(x0 <= r["lon"] <= x1 and y0 <= r["lat"] <= y1 for r in coast)
    assert "url" not in keys_in(spec)
    assert charts.gps_map_chart([]) == charts.NoData("No GPS positions in this case.")
    assert isinstance(charts.gps_map_chart([{"lat": 200, "lon": 0}]), charts.NoData)


def test_map_extent_spans_far_apart_points_and_stays_on_the_globe():
    (x0, x1), (y0, y1) = charts.map_extent([{"lat": 60.0, "lon": -170.0}, {"lat": -50.0, "lon": 170.0}])
    assert -180 <= x0 <= -170 and 170 <= x1 <= 180 and -90 <= y0 <= -50 and 60 <= y1 <= 90


def test_bundled_outline_is_small_plausible_and_licensed():
    lines = charts.outline_lines()
    assert len(lines) > 500 and sum(len(line) for line in lines) > 5000
    assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for line in lines for lon, lat in line)
    assert all(abs(a[0] - b[0]) <= 180 for line in lines for a, b in zip(line, line[1:], strict=False))
    assert charts.OUTLINE_FILE.stat().st_size < 150_000
    note = (charts.OUTLINE_FILE.parent / "LICENSES.md").read_text()
    assert "Natural Earth" in note and "public domain" in note and "ISC" in note


# -- pages -----------------------------------------------------------------------------------

@pytest.fixture
def case(tmp_path, monkeypatch):
    stamps = {IMAGES[1]: ("2024:05:01 09:15:00", "Nikon", "D750", "3001"),
              IMAGES[2]: ("2024:05:03 18:40:00", "Nikon", "D750", "3001"),
              IMAGES[3]: ("2024:05:03 19:00:00", "Apple", "iPhone 12", None)}

    def add_exif(conn) -> None:
        for rel, (stamp, make, model, serial) in stamps.items():
            exif = {"make": make, "model": model, "serial": serial, "datetime_original": stamp,
                    "gps": {"lat": 48.8584, "lon": 2.2945, "alt": None} if rel == IMAGES[3] else None}
            conn.execute("UPDATE media SET exif=? WHERE sha256=?", (json.dumps(exif), sha_of(rel)))

    return serve_case(tmp_path / "case", monkeypatch, add_exif)


@pytest.fixture
def pictures(monkeypatch) -> dict[str, bytes]:
    """The bytes of every image the pages hand to Streamlit, by media file id."""
    stored: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        stored[file_id] = path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return stored


def picture(stored: dict[str, bytes], image) -> Image.Image:
    (url,) = image.value
    return Image.open(io.BytesIO(stored[Path(url).stem])).convert("RGB")


def colour_share(img: Image.Image | np.ndarray) -> float:
    """Share of pixels with visible colour (the sample photos: 65-99 %; a blurred picture: ~0)."""
    a = np.asarray(img).astype(int)
    return float(((np.abs(a[..., 0] - a[..., 1]) + np.abs(a[..., 1] - a[..., 2])) > 12).mean())


def is_grey(img: Image.Image) -> bool:
    return colour_share(img) < 0.15  # room-point lines and dots are coloured, but few pixels


def logged_in(role: str) -> AppTest:
    at = login(AppTest.from_file(APP, default_timeout=60).run(), role)
    assert not at.exception, at.exception
    return at


def searched(at: AppTest, monkeypatch, search=fake_search, query: str = IMAGES[0]) -> AppTest:
    import vidpipe.search.api

    monkeypatch.setattr(vidpipe.search.api, "search", search)
    at.switch_page("views/search.py").run()
    at.selectbox[0].select("scene" if search is not fake_search else "face")
    at.file_uploader[0].upload("query.jpg", (SAMPLE / query).read_bytes(), "image/jpeg")
    next(b for b in at.button if b.label == "Search").click()
    at.run()
    assert not at.exception, at.exception
    return at


def dialog(at: AppTest):
    """The open dialog block, or None."""
    def walk(node):
        if getattr(node, "type", None) == "dialog":
            return node
        for child in getattr(node, "children", {}).values():
            found = walk(child)
            if found is not None:
                return found
        return None
    return walk(at._tree)


def test_search_page_shows_the_score_histogram_with_the_threshold(case, monkeypatch):
    at = searched(logged_in("analyst"), monkeypatch)
    spec, data = chart_titled(at, "Scores of the 3 results")
    bars, rule, _ = layers(spec)
    assert sorted(r["score"] for r in rows_of(spec, bars, data)) == [0.21, 0.62, 0.91]
    assert [r["threshold"] for r in rows_of(spec, rule, data)] == [0.55]
    assert "url" not in keys_in(spec)


def test_overview_shows_timeline_cameras_and_the_offline_map(case):
    at = logged_in("examiner")  # the overview is the first page
    assert "Case overview" in [t.value for t in at.title]
    spec, data = chart_titled(at, "EXIF capture dates (3 items)")
    assert sorted(r["taken"] for r in rows_of(spec, spec, data)) == [
        "2024-05-01T09:00:00", "2024-05-03T18:00:00", "2024-05-03T19:00:00"]  # grouped per hour in SQL
    spec, data = chart_titled(at, "Cameras and body serials")
    assert {(r["camera"], r["serial"], r["items"]) for r in rows_of(spec, spec, data)} == {
        ("Nikon D750", "3001", 2), ("Apple iPhone 12", "(no serial)", 1), ("Canon", "(no serial)", 1)}
    spec, data = chart_titled(at, "GPS positions (2)")
    outline, points = layers(spec)
    assert {(r["lat"], r["lon"]) for r in rows_of(spec, points, data)} == {ASTRONAUT_GPS, (48.8584, 2.2945)}
    assert len(rows_of(spec, outline, data)) > 1000  # Rio and Paris: most of the Atlantic's shores
    assert "url" not in keys_in(spec)
    assert "GPS positions" in spec["title"] and "Natural Earth" in spec["title"]


def test_overview_of_a_case_without_exif_says_so(case, db):
    db.execute("UPDATE media SET exif=NULL")
    db.commit()
    at = logged_in("examiner")
    assert not at.exception, at.exception
    assert not at.get("vega_lite_chart")
    infos = [i.value for i in at.info]
    assert "No EXIF capture dates in this case." in infos and "No GPS positions in this case." in infos
    assert "No camera make, model or serial in the EXIF of this case." in infos


def test_media_detail_puts_the_item_on_the_offline_map(case):
    at = logged_in("analyst").switch_page("views/media.py").run()
    at.text_input[0].input(sha_of(IMAGES[0])).run()
    assert not at.exception, at.exception
    spec, data = chart_titled(at, "GPS positions (1)")
    assert [(r["lat"], r["lon"]) for r in rows_of(spec, layers(spec)[1], data)] == [ASTRONAUT_GPS]
    assert "url" not in keys_in(spec)


def test_calibration_page_shows_the_roc_with_the_chosen_point(case, db):
    at = logged_in("reviewer").switch_page("views/calibration.py").run()
    assert "No calibration in this case yet" in texts(at) and not at.get("vega_lite_chart")
    detail = {"grid": [{"threshold": t, "far": f, "frr": r} for t, f, r in
                       ((0.2, 0.6, 0.0), (0.4, 0.05, 0.02), (0.6, 0.0, 0.2))],
              "at_far": [{"target_far": 0.001, "threshold": 0.52, "far": 0.001, "frr": 0.08}],
              "auc": 0.98, "eer": 0.04, "eer_threshold": 0.41, "protocol": "largest face per photo"}
    db.execute("INSERT INTO calibrations(kind, model_key, threshold, target, far, frr, n_genuine, n_impostor, labels, "
               "detail, created_utc, active) VALUES ('face', 'emb@0', 0.52, 'FAR=0.001', 0.001, 0.08, 40, 900, ?, ?, "
               "'2026-12-01T00:00:00Z', 1)", (json.dumps({"path": "/l.csv", "sha256": "ab", "photos": 30}),
                                              json.dumps(detail)))
    db.commit()
    at.run()
    assert not at.exception, at.exception
    spec, data = chart_titled(at, "ROC of the calibration")
    curve, dot, _ = layers(spec)
    assert len(rows_of(spec, curve, data)) == 4
    (op,) = rows_of(spec, dot, data)
    assert (op["threshold"], op["far"], op["tar"]) == (0.52, 0.001, pytest.approx(0.92))
    page = texts(at)
    assert "AUC 0.9800" in page and "0.100% of the different-person pairs" in page
    assert [m.value for m in at.metric][:3] == ["0.5200", "0.001", "0.08"]


def test_zoom_dialog_is_bigger_blurred_until_revealed_and_the_reveal_is_logged(case, db, monkeypatch, pictures):
    at = searched(logged_in("reviewer"), monkeypatch)
    assert dialog(at) is None
    first = fake_search(None, "q", "face")["results"][0]["media"]["sha256"]
    zoom = next(b for b in at.button if b.key.startswith(f"zoom_r1q0_{first}"))
    zoom.click().run()
    box = dialog(at)
    assert box is not None and not at.exception, at.exception
    (img_el,) = box.image
    big = picture(pictures, img_el)
    assert max(big.size) > THUMB_MAX_SIDE and is_grey(big)  # 512 px astronaut, blurred greyscale
    assert not db.execute("SELECT COUNT(*) FROM audit WHERE action='reveal'").fetchone()[0]

    next(b for b in box.button if b.label == "Reveal").click().run()
    assert not at.exception, at.exception
    entry = db.execute("SELECT * FROM audit WHERE action='reveal' ORDER BY seq DESC").fetchone()
    assert entry["actor"] == "reviewer" and entry["target"] == first
    assert json.loads(entry["detail"])["view"] == "zoom"
    box = dialog(at)  # still open, now in colour
    assert box is not None and not is_grey(picture(pictures, box.image[0]))
    assert not [b for b in box.button if b.label == "Reveal"]
    assert not any(b.key.startswith(f"reveal_r1q0_{first}") for b in at.button)  # the grid cell too
    next(b for b in box.button if b.label == "Close").click().run()
    assert dialog(at) is None


def test_an_analyst_without_reveal_rights_gets_no_reveal_in_the_dialog(case, monkeypatch, pictures):
    from ui.auth import can

    at = searched(logged_in("analyst"), monkeypatch)
    next(b for b in at.button if b.key.startswith("zoom_r1q0_")).click().run()
    box = dialog(at)
    assert is_grey(picture(pictures, box.image[0]))
    assert bool([b for b in box.button if b.label == "Reveal"]) == can("analyst", "reveal")


def test_results_grid_tiles_are_one_size(case, monkeypatch, pictures):
    at = searched(logged_in("reviewer"), monkeypatch)
    grid = [picture(pictures, i).size for i in at.image if any(c.startswith("#") for c in i.captions)]
    assert len(grid) == 3 and set(grid) == {TILE}  # a square photo and a 16:9 video frame alike


def fake_scene_search(case_dir, query, mode, top_k=20, **_kw) -> dict:
    result = fake_search(case_dir, query, mode, top_k)
    for r in result["results"]:
        r.update({"query_face": None, "box": None, "cosine": r["score"], "inliers": None, "matches": []})
    result["results"][0].update({"inliers": 30, "matches": [[10.0 * i, 20.0 + i, 12.0 * i, 25.0 + i]
                                                            for i in range(30)]})
    result["query"] = {"path": str(query), "mode": "scene", "faces": [], "masked": []}
    return result


def test_room_points_open_bigger_each_side_blurred_until_revealed(case, db, monkeypatch, pictures):
    # The query is another photo than the result: a thumbnail's reveal key is its content hash.
    at = searched(logged_in("reviewer"), monkeypatch, fake_scene_search, query=IMAGES[3])
    next(b for b in at.button if b.label == "Zoom room points").click().run()
    box = dialog(at)
    assert box is not None and not at.exception, at.exception
    pair = picture(pictures, box.image[0])
    assert pair.width > 2 * THUMB_MAX_SIDE and is_grey(pair)
    assert sorted(b.label for b in box.button) == ["Close", "Reveal query", "Reveal result"]
    next(b for b in box.button if b.label == "Reveal result").click().run()
    entry = db.execute("SELECT * FROM audit WHERE action='reveal' ORDER BY seq DESC").fetchone()
    assert entry["target"] == sha_of(IMAGES[0]) and json.loads(entry["detail"])["view"] == "zoom"
    pair = np.asarray(picture(pictures, dialog(at).image[0]))
    left, right = pair[:, : pair.shape[1] // 2 - 10], pair[:, pair.shape[1] // 2 + 10:]
    assert colour_share(left) < 0.15 and colour_share(right) > 0.4  # only the result is revealed


def test_review_page_offers_zoom_on_both_pictures(case, db, monkeypatch):
    at = searched(logged_in("reviewer"), monkeypatch)
    next(b for b in at.button if b.label.startswith("Send the 2 results")).click()
    at.run()
    at.switch_page("views/review.py").run()
    assert not at.exception, at.exception
    zooms = [b.key for b in at.button if b.key and b.key.startswith("zoom_")]
    assert len(zooms) == 2 and zooms[0].startswith("zoom_query_") and zooms[1].startswith("zoom_candidate_")
    next(b for b in at.button if b.key == zooms[1]).click().run()
    assert dialog(at) is not None and not at.exception
