"""The shared review queue and the rules of a decision (issue 12, items 4-8), through AppTest.

Each ``AppTest`` is its own browser session; what one session sends, another sees, because the
queue is in the case database. Search is answered by the contract-shaped fake of test_ui_support.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_ui_support import APP, IMAGES, SAMPLE, fake_search, login, serve_case, sha_of, texts

import ui.session
from ui import keys, queue
from ui.auth import User
from ui.review_rules import bulk_reject_below, decide
from vidpipe.store import audit

REVIEWER = User(3, "reviewer", "reviewer")


@pytest.fixture
def case(tmp_path, monkeypatch):
    def add_second_face(conn) -> None:
        # A second face (on the cat photo), so a face result can name a face other than the query's.
        # The same byte layout as build_case's face (float32 / numpy float64 is float64 under NEP 50).
        vec = np.zeros(512, (np.ones(512, np.float32) / np.sqrt(512)).dtype)
        vec[0] = 1.0  # far from the astronaut's face: another person
        conn.execute("INSERT INTO faces(sha256, frame_key, face_index, x1, y1, x2, y2, det_score, detector, "
                     "embedder, embedding, run_id) VALUES (?, '', 0, 10, 10, 90, 90, 0.97, 'det@0', 'emb@0', ?, ?)",
                     (sha_of(IMAGES[1]), vec.tobytes(), "r" * 32))

    return serve_case(tmp_path / "case", monkeypatch, add_second_face)


def search_with_second_face(case_dir, query, mode, top_k=20, **kw) -> dict:
    """The fake search, with the cat result (rank 3, below the threshold) on the cat's face (id 2)."""
    result = fake_search(case_dir, query, mode, top_k, **kw)
    result["results"][2]["face_id"] = 2
    return result


@pytest.fixture(autouse=True)
def searchable(monkeypatch):
    import vidpipe.search.api

    monkeypatch.setattr(vidpipe.search.api, "search", search_with_second_face)


def session(role: str) -> AppTest:
    """A new browser session, logged in as ``role``."""
    at = login(AppTest.from_file(APP, default_timeout=60).run(), role)
    assert not at.exception, at.exception
    return at


def plain(text: str) -> str:
    """Markdown-escaped UI text (ui.view.esc) back to what the user reads."""
    return re.sub(r"\\(.)", r"\1", text)


def by_key(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def search(at: AppTest, query_image: str = IMAGES[2]) -> AppTest:
    """Run a face search with ``query_image`` (the coffee photo by default: not one of the results)."""
    at.switch_page("views/search.py").run()
    at.selectbox[0].select("face")
    at.file_uploader[0].upload("query.jpg", (SAMPLE / query_image).read_bytes(), "image/jpeg")
    next(b for b in at.button if b.label == "Search").click()
    at.run()
    assert not at.exception, at.exception
    return at


def send_all_three(at: AppTest) -> None:
    """Send the two results above the threshold, then the one below by its own Queue button."""
    by_key(at, "send_above").click()
    at.run()
    assert "2 candidate(s) added to the review queue." in texts(at)
    next(b for b in at.button if b.label == "Queue").click()
    at.run()
    assert "1 candidate(s) added to the review queue." in texts(at)


def review(at: AppTest) -> AppTest:
    at.switch_page("views/review.py").run()
    assert not at.exception, at.exception
    return at


def current_score(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "· score **" in m.value).split("score **")[1].split("**")[0]


def reveal_and_decide(at: AppTest, button_key: str, reason: str) -> AppTest:
    if not by_key(at, "kb_reveal").disabled:
        by_key(at, "kb_reveal").click()
        at.run()
    at.text_area[0].input(reason)
    by_key(at, button_key).click()
    at.run()
    assert not at.exception, at.exception
    return at


def test_queue_is_shared_in_score_order_and_survives_a_restart(case, db):
    analyst = search(session("analyst"))
    send_all_three(analyst)
    rows = db.execute("SELECT score, sent_by, mode, threshold, query_sha256 FROM review_queue ORDER BY item_id")
    assert [tuple(r)[:4] for r in rows] == [(0.91, "analyst", "face", 0.55), (0.62, "analyst", "face", 0.55),
                                            (0.21, "analyst", "face", 0.55)]
    assert [json.loads(e["detail"])["items"] for e in db.execute(
        "SELECT detail FROM audit WHERE action='queue_add' ORDER BY seq")] == [[1, 2], [3]]

    reviewer = review(session("reviewer"))  # another browser session
    table = reviewer.dataframe[0].value
    assert list(table["score"]) == [0.91, 0.62, 0.21] and set(table["sent by"]) == {"analyst"}
    assert "Item 1 of 3" in texts(reviewer) and "Sent by **analyst**" in texts(reviewer)
    assert current_score(reviewer) == "0.9100"
    # Jump to item 2 and decide it: item 3 opens next, not item 1.
    reviewer.selectbox(key="review_jump_0").select(2).run()
    assert current_score(reviewer) == "0.6200"
    reveal_and_decide(reviewer, "kb_reject", "a different man")
    assert "Decision 1 recorded: rejected." in texts(reviewer)
    assert current_score(reviewer) == "0.2100" and "Item 2 of 2" in texts(reviewer)
    assert reviewer.text_area[0].value == ""  # a fresh reason box
    # Deciding the last item in order wraps round to the first one left.
    reveal_and_decide(reviewer, "kb_confirm", "same person")
    assert current_score(reviewer) == "0.9100"
    done = db.execute("SELECT item_id, state, done_by, decision_id FROM review_queue WHERE state='done' "
                      "ORDER BY item_id").fetchall()
    assert [tuple(r) for r in done] == [(2, "done", "reviewer", 1), (3, "done", "reviewer", 2)]
    decision = [json.loads(e["detail"]) for e in db.execute("SELECT detail FROM audit WHERE action='decision'")]
    assert [d["extra"]["queue_item_id"] for d in decision] == [2, 3]

    # A restart: a new process has no session and no cached connection; the queue is in the case.
    ui.session._local.__dict__.clear()
    again = review(session("reviewer"))
    assert "_vp_queue" not in again.session_state
    assert list(again.dataframe[0].value["score"]) == [0.91] and current_score(again) == "0.9100"


def test_two_reviewers_are_not_given_the_same_item_and_skip_moves_on(case, db):
    send_all_three(search(session("analyst")))
    first = review(session("reviewer"))
    second = review(session("examiner"))
    assert current_score(first) == "0.9100" and current_score(second) == "0.6200"
    assert "reviewer" in list(second.dataframe[0].value["open by"])
    by_key(first, "kb_skip").click()
    first.run()
    assert current_score(first) == "0.2100"  # item 1 skipped, item 2 held by the examiner
    assert queue.open_items(db, REVIEWER)[-1].cand.score == 0.91  # skipped: behind the rest
    by_key(first, "kb_next").click()
    first.run()
    assert current_score(first) == "0.9100"
    assert [r["action"] for r in db.execute("SELECT action FROM audit WHERE action LIKE 'queue_%' ORDER BY seq")
            ].count("queue_skip") == 1


def test_deciding_needs_both_pictures_revealed_by_that_reviewer(case, db):
    send_all_three(search(session("analyst")))
    reviewer = review(session("reviewer"))
    reviewer.text_area[0].input("looks the same")
    by_key(reviewer, "kb_confirm").click()
    reviewer.run()
    assert "reveal both pictures before deciding (query and candidate not revealed by you yet)" in plain(texts(reviewer))
    assert reviewer.text_area[0].value == "looks the same"
    # Only the candidate revealed: still refused, on the server, whatever the buttons show.
    next(b for b in reviewer.button if b.key.startswith("reveal_candidate_")).click()
    reviewer.run()
    assert decide(db, REVIEWER, 1, "confirmed", "same")[1].endswith("(query not revealed by you yet)")
    # Another user's reveals do not count for this reviewer.
    for sha in (sha_of(IMAGES[0]), sha_of(IMAGES[2])):
        audit.append(db, "examiner", "reveal", sha, {"thumb": sha})
    assert "query not revealed" in decide(db, REVIEWER, 1, "confirmed", "same")[1]
    assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
    # Unsure needs no looking; confirming after "Reveal both" (two logged reveals) is recorded.
    by_key(reviewer, "kb_reveal").click()
    reviewer.run()
    by_key(reviewer, "kb_confirm").click()
    reviewer.run()
    assert "Decision 1 recorded: confirmed." in texts(reviewer)
    assert current_score(reviewer) == "0.6200"  # the first decided, the second opens
    reveals = db.execute("SELECT target FROM audit WHERE action='reveal' AND actor='reviewer'").fetchall()
    assert {r[0] for r in reveals} == {sha_of(IMAGES[0]), sha_of(IMAGES[2])}


def test_a_contradicting_decision_needs_an_overrule_with_a_reason(case, db):
    analyst = search(session("analyst"))
    send_all_three(analyst)
    reviewer = review(session("reviewer"))
    reveal_and_decide(reviewer, "kb_confirm", "same scar")
    # The analyst sends the decided pair again (a second opinion); the search shows the decision.
    analyst = search(analyst)
    assert any("Decided before: #1 confirmed by reviewer" in plain(c.value) for c in analyst.caption)
    by_key(analyst, "send_above").click()
    analyst.run()
    examiner = review(session("examiner"))
    assert current_score(examiner) == "0.9100"
    assert any("Earlier decisions on this pair" in w.value and "#1 confirmed by reviewer" in plain(w.value)
               for w in examiner.warning)
    reveal_and_decide(examiner, "kb_reject", "the scar is on the other side")
    assert "this contradicts #1 confirmed by reviewer" in plain(texts(examiner))
    assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 1
    examiner.checkbox[0].check().run()
    examiner.text_input[0].input("mirror image: the photo was flipped").run()
    by_key(examiner, "kb_reject").click()
    examiner.run()
    assert "Decision 2 recorded: rejected." in texts(examiner)
    overrule = db.execute("SELECT decision_id, overruled_id, reviewer, reason FROM decision_overrules").fetchone()
    assert tuple(overrule) == (2, 1, "examiner", "mirror image: the photo was flipped")
    extra = json.loads(db.execute("SELECT detail FROM audit WHERE action='decision' ORDER BY seq DESC").fetchone()[0])
    assert extra["extra"]["overrules"] == [1] and extra["extra"]["overrule_reason"].startswith("mirror")
    assert audit.verify_chain(db) is None
    # The search result now lists both, the first marked as overruled.
    analyst = search(analyst)
    assert any("#1 confirmed by reviewer" in plain(c.value) and "(overruled by #2)" in plain(c.value)
               for c in analyst.caption)


def test_a_rejected_face_pair_becomes_a_cannot_link(case, db):
    # The query is the astronaut photo of the case: its face is face 1; the cat result is face 2.
    analyst = search(session("analyst"), IMAGES[0])
    next(b for b in analyst.button if b.label == "Queue" and sha_of(IMAGES[1]) in b.key).click()  # the cat
    analyst.run()
    assert db.execute("SELECT query_face_id, face_id FROM review_queue").fetchone()[:] == (1, 2)
    reviewer = review(session("reviewer"))
    reveal_and_decide(reviewer, "kb_reject", "a cat is not the astronaut")
    row = db.execute("SELECT face_a, face_b, kind, reviewer, reason FROM face_constraints").fetchone()
    assert tuple(row)[:4] == (1, 2, "cannot_link", "reviewer") and "decision 1" in row["reason"]
    assert db.execute("SELECT COUNT(*) FROM audit WHERE action='cannot_link'").fetchone()[0] == 1


def test_a_rejected_non_face_or_unknown_query_face_adds_no_constraint(case, db):
    analyst = search(session("analyst"))  # the coffee photo: no face of the case
    next(b for b in analyst.button if b.label == "Queue").click()
    analyst.run()
    reviewer = review(session("reviewer"))
    reveal_and_decide(reviewer, "kb_reject", "not the same")
    assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM face_constraints").fetchone()[0] == 0


def test_bulk_reject_of_the_results_below_the_threshold(case, db):
    reviewer = search(session("reviewer"))
    reviewer.text_input(key="bulk_reason").input("score far below the calibrated threshold")
    by_key(reviewer, "bulk_reject").click()
    reviewer.run()
    assert "1 result(s) rejected below the threshold." in texts(reviewer)
    rows = db.execute("SELECT score, decision, reason, reviewer FROM decisions").fetchall()
    assert [tuple(r) for r in rows] == [(0.21, "rejected", "score far below the calibrated threshold", "reviewer")]
    entry = json.loads(db.execute("SELECT detail FROM audit WHERE action='decision'").fetchone()[0])
    assert entry["extra"]["basis"] == "below_threshold"
    # A second bulk reject does not decide the same pair twice; an analyst may not bulk-reject.
    cands = queue_candidates(db)
    ids, skipped, error = bulk_reject_below(db, REVIEWER, cands, "again")
    assert (ids, error) == ([], None) and skipped[0].startswith("rank 3: already rejected")
    assert "may not" in bulk_reject_below(db, User(2, "analyst", "analyst"), cands, "x")[2]
    assert not [b for b in search(session("analyst")).button if b.key == "bulk_reject"]


def queue_candidates(db):
    from ui.decisions import candidates_from_search

    query = db.execute("SELECT target FROM audit WHERE action='search' ORDER BY seq DESC").fetchone()[0]
    return candidates_from_search(search_with_second_face(None, "q", "face"),
                                  {"sha256": query, "path": "q.jpg", "label": "JPEG", "kind": "image"})


def test_review_buttons_have_the_keys_the_shortcuts_click(case, db):
    send_all_three(search(session("analyst")))
    reviewer = review(session("reviewer"))
    present = {b.key for b in reviewer.button}
    assert set(keys.KEYMAP.values()) <= present
    snippet = keys.snippet()
    assert "window.parent.document" in snippet and '"c": "kb_confirm"' in snippet and "st-key-" in snippet
    assert "**c** confirm" in texts(reviewer)


def test_people_page_shows_blurred_faces_and_the_threshold_in_words(case, db):
    db.execute("INSERT INTO calibrations(kind, model_key, threshold, target, far, frr, n_genuine, n_impostor, "
               "created_utc) VALUES ('face', 'emb@0', 0.5, 'FAR=0.001', 0.001, 0.02, 300, 9000, "
               "'2026-11-29T00:00:00Z')")
    db.commit()
    at = session("reviewer").switch_page("views/people.py").run()
    assert not at.exception, at.exception
    # Two persons (one face each): a crop per person, and the chosen person's face again.
    assert len(at.image) == 3
    assert [b.label for b in at.main.button].count("Reveal") == 3
    assert not db.execute("SELECT COUNT(*) FROM audit WHERE action='reveal'").fetchone()[0]
    caption = plain(next(c.value for c in at.caption if c.value.startswith("Clustering")))
    assert "from this case's calibration" in caption and "300 same-person" in caption and "{" not in caption
    assert at.selectbox(key="not_this").value is None
    assert by_key(at, "do_not_this").disabled
    # Revealing one face is logged with its face id.
    next(b for b in at.main.button if b.label == "Reveal" and b.key.startswith("reveal_p1_")).click()
    at.run()
    detail = json.loads(db.execute("SELECT detail FROM audit WHERE action='reveal'").fetchone()[0])
    assert detail["face_id"] == 1


def two_face_search(case_dir, query, mode, top_k=20, **kw) -> dict:
    result = search_with_second_face(case_dir, query, mode, top_k, **kw)
    result["query"]["faces"].append({"box": [10.0, 10.0, 90.0, 90.0], "det_score": 0.9})
    result["results"][2]["query_face"] = 1
    return result


def test_multi_face_query_gives_each_face_a_colour_and_label(case, db, monkeypatch):
    import vidpipe.search.api

    monkeypatch.setattr(vidpipe.search.api, "search", two_face_search)
    at = search(session("analyst"))
    markdown = [m.value for m in at.markdown]
    assert "Query faces: :red[■ face A] · :blue[■ face B]" in markdown
    assert markdown.count("matched :red[■ face A]") == 2 and markdown.count("matched :blue[■ face B]") == 1
    assert "#3 · score 0.210 (below) · face B" in texts(at)


def test_face_boxes_are_drawn_in_their_query_face_colour(tmp_path):
    from PIL import Image

    from ui.thumbs import Thumb
    from ui.view import face_colour, render

    path = tmp_path / "t.jpg"
    Image.new("RGB", (100, 100), "white").save(path)
    out = tmp_path / "out.jpg"
    out.write_bytes(render(Thumb(path, 100, 100), revealed=True, boxes=[(20, 40, 80, 90)],
                          colours=[face_colour(1)[1]], labels=["face B"]))
    with Image.open(out) as img:
        r, g, b = img.convert("RGB").getpixel((50, 90))  # on the bottom edge of the box
    assert b > r + 60 and b > g  # blue (face B's colour), not red (face A's) nor white
    with Image.open(out) as img:
        assert img.convert("RGB").getpixel((22, 30))[2] > 150  # the label's tag above the box


def test_claims_lapse_so_a_closed_tab_does_not_hold_an_item(case, db):
    send_all_three(search(session("analyst")))
    review(session("reviewer"))
    db.execute("UPDATE review_queue SET claimed_utc='2020-01-01T00:00:00Z' WHERE claimed_by='reviewer'")
    db.commit()
    examiner = review(session("examiner"))
    assert current_score(examiner) == "0.9100"
