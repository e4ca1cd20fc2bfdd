"""End to end in headless Chromium: a shared review queue worked by two people, decisions anchored.

Issue 12's evidence, on a real ``vidpipe ui`` server and a real browser (driven over the DevTools
protocol, as in tests/test_ui_e2e.py):

1. browser session A logs in as an analyst, runs a near-duplicate search and sends four results to
   the case's review queue, deliberately in *ascending* score order;
2. browser session B (another browser context: its own cookies, its own Streamlit session) logs in
   as a reviewer, gets the queue in score order with the sender's name, and decides with single
   keys sent as real key events (``Input.dispatchKeyEvent``): ``c`` typed into the reason box is
   text, ``c`` before revealing is refused, ``v`` reveals both, ``c`` confirms, ``n`` moves on,
   ``r`` rejects; after each decision the item after it opens (not item 1);
3. the server is stopped and started again: the reviewer is back on their item with the rest of
   the queue, and the analyst's new search shows the decisions on their pairs;
4. ``vidpipe audit keygen`` (key outside the case) and ``vidpipe audit checkpoint``: ``verify
   --expect-head`` passes; a decision edited with sqlite3 (append-only triggers dropped first)
   and, on a fresh copy, a chain cut short at its end both make it exit 1.

Near-duplicate mode is used because it needs no model weights and answers in a second.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from test_ui_e2e import Page, _needs_chromium, new_context_page, screenshot  # noqa: F401 (autouse fixture)
from test_ui_server import Server
from test_ui_support import SAMPLE, cli, cli_json

from vidpipe.store import audit

# Long, not in the common list, no pattern, not the user name: passes ui/passwords.py.
PASSWORDS = {"ana": "violet tractor harbour 1987", "rev": "quiet heron under lamplight"}
QUERY = "rocket.jpg"


# ---- browser helpers ---------------------------------------------------------------------------

def _mouse_click(page: Page, js_element: str, what: str) -> None:
    """A real mouse click (press and release) at the centre of the element ``js_element`` yields."""
    rect = page.js(f"""(() => {{ const e = ({js_element}); if (!e) return null; e.scrollIntoView({{block: "center"}});
        const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
    assert rect, f"{what} not on the page:\n{page.text()[-2000:]}"
    for kind in ("mousePressed", "mouseReleased"):
        page.send("Input.dispatchMouseEvent", type=kind, x=rect[0], y=rect[1], button="left", clickCount=1)


def _choose(page: Page, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label``, as a user would: open its list
    with the mouse, click the option (Streamlit >= 1.5x draws it as a react-aria combobox)."""
    box = f"document.querySelector('[data-testid=\"stSelectbox\"] input[aria-label={json.dumps(label)}]')"
    page.wait_for(f'[data-testid="stSelectbox"] input[aria-label={json.dumps(label)}]')  # widgets load lazily
    _mouse_click(page, f"({box}) && ({box}).parentElement.querySelector('button[aria-haspopup=\"listbox\"]')",
                 f"selectbox {label!r}")
    page.wait_for('[role="option"]')
    _mouse_click(page, f"[...document.querySelectorAll('[role=\"option\"]')]"
                       f".find(o => o.innerText.trim() === {json.dumps(option)})", f"option {option!r}")
    deadline = time.time() + 20
    while time.time() < deadline and page.js(f"({box}).value") != option:
        time.sleep(0.2)
    assert page.js(f"({box}).value") == option, f"{option!r} was not selected in {label!r}"


def _options(page: Page, label: str) -> list[str]:
    """The options of the selectbox labelled ``label``, in the order shown (opened, read, closed)."""
    box = f"document.querySelector('[data-testid=\"stSelectbox\"] input[aria-label={json.dumps(label)}]')"
    page.wait_for(f'[data-testid="stSelectbox"] input[aria-label={json.dumps(label)}]')
    _mouse_click(page, f"({box}) && ({box}).parentElement.querySelector('button[aria-haspopup=\"listbox\"]')",
                 f"selectbox {label!r}")
    page.wait_for('[role="option"]')
    shown = page.js("[...document.querySelectorAll('[role=\"option\"]')].map(o => o.innerText.trim())")
    _press(page, "Escape")
    return shown


def _result_column(name: str) -> str:
    """JS for the search-grid column that shows file ``name`` (the smallest column holding its caption)."""
    return (f"[...document.querySelectorAll('[data-testid=\"stColumn\"]')]"
            f".filter(c => [...c.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
            f".some(p => p.innerText.trim() === {json.dumps(name)}))"
            f".sort((a, b) => a.querySelectorAll('*').length - b.querySelectorAll('*').length)[0]")


def _column_text(page: Page, name: str) -> str:
    return page.js(f"(() => {{ const c = {_result_column(name)}; return c ? c.innerText : ''; }})()") or ""


def _press(page: Page, key: str) -> None:
    """One real key press (keyDown with its text, keyUp), as the keyboard would send it."""
    special = {"Backspace": 8, "Escape": 27}
    vk = special.get(key) or ord(key.upper())
    code = key if key in special else f"Key{key.upper()}"
    common = {"key": key, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
    text = {} if key in special else {"text": key, "unmodifiedText": key}
    page.send("Input.dispatchKeyEvent", type="keyDown", **text, **common)
    page.send("Input.dispatchKeyEvent", type="keyUp", **common)


def _press_outside_fields(page: Page, key: str) -> None:
    """Press ``key`` with the focus on the page itself (keys typed into a text field must not decide)."""
    deadline = time.time() + 30
    while time.time() < deadline and not page.js("typeof document.__vpKeys === 'function'"):
        time.sleep(0.2)
    assert page.js("typeof document.__vpKeys === 'function'"), "the key listener (ui/keys.py) was not installed"
    page.js("document.activeElement && document.activeElement.blur()")
    _press(page, key)


def _login(page: Page, url: str, name: str) -> None:
    page.log_in(url, name, PASSWORDS[name])
    page.wait_text("Case overview")


def _search(page: Page, query: Path) -> None:
    page.click("a", "Search")
    page.wait_for('input[type="file"]')
    _choose(page, "Mode", "near-dup")
    root = page.send("DOM.getDocument", depth=-1)["root"]["nodeId"]
    node = page.send("DOM.querySelector", nodeId=root, selector='input[type="file"]')["nodeId"]
    page.events.clear()  # the upload's response below is this one's, not an earlier search's
    page.send("DOM.setFileInputFiles", files=[str(query)], nodeId=node)
    assert page.wait_response("/_stcore/upload_file/") in (200, 204)
    submit = "[...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Search')"
    deadline = time.time() + 30  # the form's button stays disabled until the upload is done
    while time.time() < deadline and not page.js(f"(() => {{ const b = {submit}; return !!b && !b.disabled; }})()"):
        time.sleep(0.2)
    page.click("button", "Search")
    page.wait_text("Threshold:", timeout=120)


def _reviewer_decides(page: Page, key: str, reason: str, decision_id: int, decision: str) -> None:
    """Reveal both with ``v``, give the reason, decide with ``key``; wait for the flash."""
    shown = page.js("document.body.innerText.match(/Images revealed this session\\s*(\\d+)/)")
    before = int(shown[1]) if shown else 0
    _press_outside_fields(page, "v")
    page.wait_text("Images revealed this session")
    deadline = time.time() + 30
    while time.time() < deadline:
        now = page.js("document.body.innerText.match(/Images revealed this session\\s*(\\d+)/)")
        if now and int(now[1]) > before:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"'v' revealed nothing:\n{page.text()[-2000:]}")
    page.wait_for("textarea")
    page.type_into("textarea", reason)
    page.js("document.activeElement.blur()")  # a text area's value reaches the server on blur
    time.sleep(1)
    _press_outside_fields(page, key)
    page.wait_text(f"Decision {decision_id} recorded: {decision}.")


def _open_file_is(page: Page, name: str, position: str) -> None:
    """The review page shows ``name`` as the open candidate, at ``position`` ("Item 1 of 3")."""
    page.wait_text(position)
    page.wait_text(name)


# ---- the CLI side --------------------------------------------------------------------------------

def _verify(case: Path, *extra: str) -> tuple[int, dict]:
    proc = cli("verify", "--case", str(case), "--json", "--workers", "2", *extra)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def _attacker(db: Path) -> sqlite3.Connection:
    """sqlite3 as someone with write access to the case would use it: the append-only triggers dropped."""
    conn = sqlite3.connect(db, isolation_level=None)
    for trigger in audit.APPEND_ONLY_TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    return conn


def _picked(case: Path, query: Path) -> list[dict]:
    """Four above-threshold results of distinct scores (not the query's own bytes), best first."""
    result = cli_json("search", "--case", str(case), "--query", str(query), "--mode", "near-dup", "--top-k", "20",
                      "--json")
    out, scores = [], set()
    for r in result["results"]:
        if r["above_threshold"] and r["score"] < 1.0 and round(r["score"], 4) not in scores:
            scores.add(round(r["score"], 4))
            out.append({"name": Path(r["media"]["path"]).name, "sha256": r["media"]["sha256"], "score": r["score"]})
    assert len(out) >= 4, result
    return sorted(out, key=lambda r: -r["score"])[:4]


def test_queue_two_sessions_keys_restart_and_anchor(tmp_path, chromium_port):
    pytest.importorskip("vidpipe.search.api", reason="vidpipe.search.api (the search API) is not installed")
    started = time.time()
    case, evidence = tmp_path / "case", tmp_path / "evidence"
    shutil.copytree(SAMPLE / "near_dups", evidence)
    ingest = cli_json("ingest", str(evidence), "--case", str(case), "--no-faces", "--no-scenes", "--workers", "2",
                      "--json", "--no-progress")
    assert ingest["status"] == "completed" and ingest["images"] >= 5, ingest
    for name, role in (("ana", "analyst"), ("rev", "reviewer")):
        proc = cli("user", "add", name, "--role", role, "--case", str(case), "--password-stdin",
                   input_text=PASSWORDS[name] + "\n")
        assert proc.returncode == 0, proc.stderr[-2000:]
    query = tmp_path / QUERY
    shutil.copyfile(SAMPLE / "near_dups" / QUERY, query)
    picked = _picked(case, query)
    send_order = sorted(picked, key=lambda r: r["score"])  # lowest first: a first-in-first-out queue would fail

    server = Server(case, tmp_path / "netlog")
    page_a = page_b = browser_a = browser_b = None
    failure = None
    try:
        # Two browser contexts of the session's one Chromium: two people, two cookie jars.
        browser_a, page_a = new_context_page(chromium_port)
        browser_b, page_b = new_context_page(chromium_port)
        for page in (page_a, page_b):
            page.enable()

        # --- A: the analyst searches and sends four results, lowest score first -------------------
        _login(page_a, server.url, "ana")
        assert "Review queue" not in page_a.js(
            "[...document.querySelectorAll('a')].map(a => a.innerText).join('|')")  # analysts do not decide
        _search(page_a, query)
        for item in send_order:
            page_a.wait_text(item["name"])
            found = page_a.js(f"""(() => {{ const c = {_result_column(item["name"])}; if (!c) return false;
                const b = [...c.querySelectorAll('button')].find(b => b.innerText.trim() === 'Queue');
                if (!b) return false; b.click(); return true; }})()""")
            assert found, f"no Queue button for {item['name']}:\n{page_a.text()[-2000:]}"
            deadline = time.time() + 30
            while time.time() < deadline and "in the queue" not in _column_text(page_a, item["name"]):
                time.sleep(0.3)
            assert "in the queue" in _column_text(page_a, item["name"]), page_a.text()[-2000:]
        screenshot(page_a, tmp_path, "queue_sent")

        # --- B: the reviewer, in another browser context, works the queue in score order ----------
        _login(page_b, server.url, "rev")
        page_b.click("a", "Review queue")
        _open_file_is(page_b, picked[0]["name"], "Item 1 of 4")
        page_b.wait_text("Sent by ana")
        page_b.wait_text("4 open item(s), highest score first")
        queue_shown = _options(page_b, "Open another item")  # "1. score 0.99 · rocket_q25.jpg · sent by ana"
        assert [next((p["name"] for p in picked if f" · {p['name']} · " in o), o) for o in queue_shown] == \
            [p["name"] for p in picked], queue_shown
        assert all(o.endswith("sent by ana") for o in queue_shown), queue_shown
        # A key typed into the reason box is text, not a decision.
        page_b.wait_for("textarea")
        assert page_b.js("(() => { const t = document.querySelector('textarea'); t.focus(); "
                         "return document.activeElement === t; })()")
        _press(page_b, "c")
        time.sleep(1)
        assert page_b.js("document.querySelector('textarea').value") == "c"
        assert "recorded" not in page_b.text()
        _press(page_b, "Backspace")
        page_b.js("document.activeElement.blur()")
        time.sleep(1)
        # 'c' before both pictures were revealed is refused on the server.
        _press_outside_fields(page_b, "c")
        page_b.wait_text("reveal both pictures before deciding")
        screenshot(page_b, tmp_path, "review_blurred")

        _reviewer_decides(page_b, "c", "same launch, same smoke plume; only the JPEG quality differs", 1, "confirmed")
        _open_file_is(page_b, picked[1]["name"], "Item 1 of 3")  # the next in score order opens by itself
        screenshot(page_b, tmp_path, "review_next")
        _press_outside_fields(page_b, "n")  # leave it for later
        _open_file_is(page_b, picked[2]["name"], "Item 2 of 3")
        _reviewer_decides(page_b, "r", "test rejection: checking that a reject is kept across a restart", 2,
                          "rejected")
        _open_file_is(page_b, picked[3]["name"], "Item 2 of 2")  # the item after it, not item 1

        # --- restart the server: the queue and the decisions are in the case database --------------
        server.stop()
        server = Server(case, tmp_path / "netlog")
        _login(page_b, server.url, "rev")
        page_b.click("a", "Review queue")
        _open_file_is(page_b, picked[3]["name"], "Item 2 of 2")  # the reviewer is back where they were
        page_b.wait_text("Sent by ana")
        queue_shown = _options(page_b, "Open another item")
        assert [next((p["name"] for p in picked if f" · {p['name']} · " in o), o) for o in queue_shown] == \
            [picked[1]["name"], picked[3]["name"]], queue_shown
        screenshot(page_b, tmp_path, "review_after_restart")
        _login(page_a, server.url, "ana")
        _search(page_a, query)
        for item, expected in ((picked[0], "#1 confirmed by rev"), (picked[1], "in the queue"),
                               (picked[2], "#2 rejected by rev"), (picked[3], "in the queue")):
            deadline = time.time() + 30
            while time.time() < deadline and expected not in _column_text(page_a, item["name"]):
                time.sleep(0.3)
            assert expected in _column_text(page_a, item["name"]), (item, _column_text(page_a, item["name"]))
        page_a.js(f"({_result_column(picked[0]['name'])}).scrollIntoView()")
        screenshot(page_a, tmp_path, "search_after_restart")
    except Exception as exc:  # noqa: BLE001 - re-raised below with the server's log
        failure = exc
        for name, page in (("failed_a", page_a), ("failed_b", page_b)):
            try:
                screenshot(page, tmp_path, name)
            except Exception:  # noqa: BLE001 - a picture of the failure is a bonus, never a second error
                pass
    finally:
        for page in (page_a, page_b, browser_a, browser_b):
            if page:
                page.close()
        server_log = server.stop()
    if failure is not None:
        raise AssertionError(f"{failure}\n--- server log ---\n{server_log[-4000:]}") from failure

    conn = sqlite3.connect(case / "case.sqlite")
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM decisions ORDER BY decision_id")]
    assert [(r["decision"], r["reviewer"], r["media_sha256"]) for r in rows] == [
        ("confirmed", "rev", picked[0]["sha256"]), ("rejected", "rev", picked[2]["sha256"])]
    queue = {r["media_sha256"]: dict(r) for r in conn.execute("SELECT * FROM review_queue")}
    assert {r["sent_by"] for r in queue.values()} == {"ana"} and len(queue) == 4
    assert [(queue[p["sha256"]]["state"], queue[p["sha256"]]["decision_id"]) for p in picked] == [
        ("done", 1), ("open", None), ("done", 2), ("open", None)]
    revealed = {r[0] for r in conn.execute("SELECT target FROM audit WHERE actor='rev' AND action='reveal'")}
    query_sha = hashlib.sha256(query.read_bytes()).hexdigest()
    assert {query_sha, picked[0]["sha256"], picked[2]["sha256"]} <= revealed  # both sides seen before deciding
    conn.close()

    # --- anchor the head, then tamper ----------------------------------------------------------------
    key, anchor = tmp_path / "keys" / "case.key", tmp_path / "anchors" / "checkpoint.json"
    assert cli("audit", "keygen", "--key", str(key), "--case", str(case), "--json").returncode == 0
    proc = cli("audit", "checkpoint", "--case", str(case), "--key", str(key), "--out", str(anchor), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rc, out = _verify(case, "--expect-head", str(anchor), "--public-key", f"{key}.pub")
    assert rc == 0 and out["checks"]["audit_anchor"]["ok"], json.dumps(out["checks"], indent=1)[-3000:]
    truncated = tmp_path / "case_truncated"
    shutil.copytree(case, truncated)

    conn = _attacker(case / "case.sqlite")
    conn.execute("UPDATE decisions SET decision='rejected' WHERE decision_id=1")  # was confirmed
    conn.close()
    rc, out = _verify(case, "--no-rehash", "--expect-head", str(anchor))
    bindings = out["checks"]["decision_bindings"]
    assert rc == 1 and not out["ok"] and not bindings["ok"], out["checks"]
    assert {p["decision_id"] for p in bindings["problems"]} == {1}, bindings["problems"]
    assert any("decision 1" in p["problem"] or "rejected" in p["problem"] for p in bindings["problems"])

    # A chain cut short after its last decision: nothing inside the case shows it, the anchor does.
    conn = _attacker(truncated / "case.sqlite")
    last_decision = conn.execute("SELECT max(audit_seq) FROM decisions").fetchone()[0]
    head = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    assert head - last_decision >= 2  # logins, searches, reveals and the checkpoint came after it
    conn.execute("DELETE FROM audit WHERE seq > ?", (last_decision,))
    conn.close()
    rc, out = _verify(truncated, "--no-rehash")
    assert out["checks"]["audit_chain"]["ok"] and out["checks"]["decision_bindings"]["ok"], out["checks"]
    rc, out = _verify(truncated, "--no-rehash", "--expect-head", str(anchor))
    problems = out["checks"]["audit_anchor"]["problems"]
    assert rc == 1 and not out["ok"] and any("shorter than the anchor" in p for p in problems), problems
    print(f"end-to-end review test took {time.time() - started:.1f} s")
