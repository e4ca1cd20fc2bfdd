"""Exports of decisions: CSV, JSON, self-contained HTML, Project VIC-style JSON; each one audited."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

import pytest
from streamlit.testing.v1 import AppTest
from test_ui_support import APP, IMAGES, SAMPLE, VIDEO, build_case, fake_search, login, sha_of

from ui.auth import User
from ui.decisions import candidates_from_search, record_decision
from ui.exports import VICS_CONTEXT, build_export
from ui.search_backend import save_query
from vidpipe.store import audit

EXAMINER = User(1, "examiner", "examiner")


@pytest.fixture
def decided(tmp_path):
    root = tmp_path / "case"
    conn = build_case(root)
    query, _ = save_query(root, (SAMPLE / IMAGES[0]).read_bytes(), "face")
    cands = candidates_from_search(fake_search(root, query.path, "face"), query.as_dict("face"))
    reviewer = User(3, "reviewer", "reviewer")
    assert record_decision(conn, reviewer, cands[0], "confirmed", "same <b>scar</b> & mole")[1] is None
    assert record_decision(conn, reviewer, cands[1], "unsure", "frame too dark")[1] is None
    assert record_decision(conn, EXAMINER, cands[2], "rejected", "a cat")[1] is None
    return root, conn, query


def test_csv_and_json_carry_both_sides(decided):
    root, conn, query = decided
    data, name, error = build_export(conn, root, "csv", EXAMINER)
    assert error is None and name.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [r["decision"] for r in rows] == ["confirmed", "unsure", "rejected"]
    first = rows[0]
    assert first["reviewer"] == "reviewer" and first["score"] == "0.91" and first["threshold"] == "0.55"
    assert first["query_sha256"] == query.sha256 and first["query_path"] == str(query.path)
    assert first["media_sha256"] == sha_of(IMAGES[0]) and first["media_paths"] == str(SAMPLE / IMAGES[0])
    assert first["media_md5"] == hashlib.md5((SAMPLE / IMAGES[0]).read_bytes()).hexdigest()
    assert rows[1]["video_time_s"] == "2.0" and rows[1]["media_sha256"] == sha_of(VIDEO)

    data, _, _ = build_export(conn, root, "json", EXAMINER)
    doc = json.loads(data)
    assert doc["exported_by"] == "examiner" and len(doc["decisions"]) == 3
    assert doc["decisions"][0]["candidate"]["sha1"] == hashlib.sha1((SAMPLE / IMAGES[0]).read_bytes()).hexdigest()
    # The export names the chain head it was made at, and its own audit entry follows that head.
    entry = conn.execute("SELECT * FROM audit WHERE action='export' ORDER BY seq DESC").fetchone()
    assert doc["audit_head"]["seq"] == entry["seq"] - 1
    assert json.loads(entry["detail"])["sha256"] == hashlib.sha256(data).hexdigest()
    assert audit.verify_chain(conn) is None


def test_html_report_is_self_contained_and_escaped(decided):
    root, conn, query = decided
    jpeg = (SAMPLE / IMAGES[1]).read_bytes()
    data, name, _ = build_export(conn, root, "html", EXAMINER, images={1: (jpeg, None)})
    html = data.decode()
    assert name.endswith(".html")
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", html)  # nothing to fetch
    assert html.count("data:image/jpeg;base64,") == 1
    assert "same &lt;b&gt;scar&lt;/b&gt; &amp; mole" in html and "<b>scar</b>" not in html
    for text in (query.sha256, sha_of(IMAGES[0]), str(SAMPLE / IMAGES[0]), "0.9100 / 0.5500 (above)", "reviewer"):
        assert text in html


def test_vics_export(decided):
    root, conn, _ = decided
    data, name, _ = build_export(conn, root, "vics", EXAMINER)
    doc = json.loads(data)
    assert doc["@odata.context"] == VICS_CONTEXT and name.startswith("decisions-vics-")
    media = doc["value"][0]["Media"]
    assert len(media) == 3 and all(m["Category"] is None for m in media)
    astronaut = next(m for m in media if m["SHA256"] == sha_of(IMAGES[0]))
    assert astronaut["MD5"] == hashlib.md5((SAMPLE / IMAGES[0]).read_bytes()).hexdigest().upper()
    assert astronaut["Tags"] == ["vidpipe:confirmed"] and "reviewer: confirmed (face match" in astronaut["Comments"]
    assert astronaut["MediaFiles"] == [{"FileName": "astronaut.jpg", "FilePath": str(SAMPLE / "photos")}]


def test_export_needs_the_export_role(decided):
    root, conn, _ = decided
    n = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    data, _, error = build_export(conn, root, "csv", User(3, "reviewer", "reviewer"))
    assert data is None and "may not export" in error
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == n


def test_exports_page(decided, monkeypatch):
    root, conn, _ = decided
    monkeypatch.setenv("VIDPIPE_UI_CASE", str(root))
    at = login(AppTest.from_file(APP, default_timeout=60).run(), "examiner")
    at.switch_page("views/exports.py").run()
    assert any(m.value.startswith("3 decision(s) in this case.") for m in at.markdown)
    at.radio[0].set_value("html").run()
    at.checkbox[0].check().run()
    next(b for b in at.button if b.label == "Prepare export").click().run()
    assert not at.exception, at.exception
    assert at.get("download_button")[0].proto.label.startswith("Download decisions-")
    entry = conn.execute("SELECT * FROM audit WHERE action='export' ORDER BY seq DESC").fetchone()
    assert entry["actor"] == "examiner" and entry["target"] == "html" and json.loads(entry["detail"])["images"]
