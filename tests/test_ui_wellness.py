"""Wellness (issue 12, item 11): blur strength per user, re-blur after a set time, break reminders."""

from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_ui_support import APP, IMAGES, SAMPLE, login, serve_case, sha_of, texts

from ui import session, view
from ui.auth import Prefs, load_prefs, save_prefs
from ui.thumbs import Thumb


@pytest.fixture
def case(tmp_path, monkeypatch):
    root = serve_case(tmp_path / "case", monkeypatch)
    with session._registry_lock:
        session._failures.clear()
    return root


@pytest.fixture
def db(case):
    conn = sqlite3.connect(case / "case.sqlite", isolation_level=None)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


@pytest.fixture
def blur_used(monkeypatch):
    """Every blur strength view.render is asked for (None = the default)."""
    seen: list[float | None] = []
    render = view.render

    def spy(*args, **kwargs):
        if not kwargs.get("revealed"):
            seen.append(kwargs.get("blur_share"))
        return render(*args, **kwargs)

    monkeypatch.setattr(view, "render", spy)
    return seen


def user_id(db, name: str) -> int:
    return db.execute("SELECT user_id FROM users WHERE name=?", (name,)).fetchone()[0]


def media_page(name: str) -> AppTest:
    at = login(AppTest.from_file(APP, default_timeout=60).run(), name).switch_page("views/media.py").run()
    return at.text_input[0].input(sha_of(IMAGES[0])).run()


def reveal_buttons(at: AppTest) -> list:
    return [b for b in at.main.button if b.label == "Reveal"]


def test_default_blur_hides_the_face_and_stronger_blur_hides_more(tmp_path):
    src = tmp_path / "t.jpg"
    with Image.open(SAMPLE / IMAGES[0]) as im:
        im.convert("RGB").resize((320, 320)).save(src, "JPEG")
    thumb = Thumb(src, 512, 512)

    def detail(blur: float) -> float:  # high-frequency energy left in the picture
        a = np.asarray(Image.open(io.BytesIO(view.render(thumb, revealed=False, blur_share=blur))).convert("L"), float)
        return float(np.abs(np.diff(a, axis=1)).mean())

    assert Prefs().blur_share == view.BLUR_SHARE == 0.05  # measured: see ui/auth.py Prefs
    assert detail(0.03) > detail(0.05) > detail(0.12)
    default = np.asarray(Image.open(io.BytesIO(view.render(thumb, revealed=False))))
    assert np.array_equal(default, np.asarray(Image.open(io.BytesIO(view.render(thumb, revealed=False,
                                                                                    blur_share=0.05)))))


def test_blur_strength_is_saved_per_user_and_applied(case, db, blur_used):
    at = login(AppTest.from_file(APP, default_timeout=60).run(), "reviewer").switch_page("views/settings.py").run()
    at.select_slider(key="pref_blur").set_value(0.12)
    next(b for b in at.button if b.label == "Save").click()
    at.run()
    assert "Saved." in texts(at)
    assert load_prefs(db, user_id(db, "reviewer")).blur_share == 0.12
    assert load_prefs(db, user_id(db, "analyst")) == Prefs()  # other users keep theirs
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action='prefs_change'").fetchone()[0] == 1
    blur_used.clear()
    media_page("reviewer")
    assert blur_used == [0.12]
    blur_used.clear()
    media_page("analyst")
    assert blur_used == [0.05]
    assert "between" in save_prefs(db, user_id(db, "analyst"), Prefs(blur_share=0.01))  # too light to hide a face


def test_a_revealed_image_blurs_again_after_the_users_time(case, db, clock):
    save_prefs(db, user_id(db, "analyst"), Prefs(reveal_s=30))
    at = media_page("analyst")
    reveal_buttons(at)[0].click()
    at.run()
    assert not reveal_buttons(at)  # shown clear
    clock.advance(20)
    at.run()
    assert not reveal_buttons(at)  # still within 30 s
    clock.advance(11)
    at.run()
    assert len(reveal_buttons(at)) == 1  # blurred again
    reveals = db.execute("SELECT COUNT(*) FROM audit WHERE action='reveal'").fetchone()[0]
    reveal_buttons(at)[0].click()
    at.run()
    assert not reveal_buttons(at)
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action='reveal'").fetchone()[0] == reveals + 1


def test_default_reveal_time_is_60_s(case, db, clock):
    at = media_page("examiner")
    reveal_buttons(at)[0].click()
    at.run()
    clock.advance(59)
    assert not reveal_buttons(at.run())
    clock.advance(2)
    assert len(reveal_buttons(at.run())) == 1


def test_break_reminder_follows_the_users_settings(case, db, clock, monkeypatch):
    monkeypatch.setenv(session.IDLE_ENV, str(3600))  # 21 minutes without a click is not idle here
    save_prefs(db, user_id(db, "analyst"), Prefs(break_every=1, break_minutes=0))
    at = media_page("analyst")
    assert "Consider a short break" not in texts(at)
    reveal_buttons(at)[0].click()
    at.run()
    assert "revealed 1 images" in " ".join(w.value for w in at.sidebar.warning)
    # Time-based: every 20 minutes, "I took a break" restarts the count.
    save_prefs(db, user_id(db, "examiner"), Prefs(break_every=0, break_minutes=20))
    at = media_page("examiner")
    assert not at.sidebar.warning
    clock.advance(21 * 60)
    at.run()
    assert "over 20 minutes" in " ".join(w.value for w in at.sidebar.warning)
    at.sidebar.button(key="break_taken").click().run()
    assert not at.sidebar.warning
