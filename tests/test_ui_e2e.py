"""End to end in a real headless Chromium: log in, search with a face photo, confirm a candidate.

The browser is driven over the Chrome DevTools Protocol with the `websockets` package (a
Streamlit dependency), so no Selenium, chromedriver or Playwright is needed: only Debian's
`chromium` package (`/usr/bin/chromium`, or the binary named by $VIDPIPE_CHROMIUM). The test also
records every request the browser makes and checks that none leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from test_ui_server import Server
from test_ui_support import PASSWORD, REPO, SAMPLE, cli, cli_json

from vidpipe.store import audit

CHROMIUM = os.environ.get("VIDPIPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
                  "--no-first-run", "--no-default-browser-check", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps", "--disable-domain-reliability",
                  "--window-size=1400,1100", "--remote-debugging-port=0", "--remote-allow-origins=*"]

def require_chromium() -> None:
    """Skip without a browser locally; under CI=true a missing browser is a failure (make setup installs it)."""
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set VIDPIPE_CHROMIUM)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    require_chromium()


class Page:
    """A minimal CDP client for one page target: commands, events, and a few DOM helpers."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._connection = connect(ws_url, max_size=64 * 1024 * 1024)
        self.ws = self._connection.__enter__()
        self.events: list[dict] = []
        self._id = 0

    def send(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def text(self) -> str:
        return self.js("document.body ? document.body.innerText : ''") or ""

    def wait_text(self, needle: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in " ".join(self.text().split()):  # innerText line breaks vary; compare words
                return
            time.sleep(0.3)
        raise AssertionError(f"{needle!r} did not appear; page shows:\n{self.text()[-3000:]}")

    def wait_for(self, selector: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(f"document.querySelector({json.dumps(selector)}) !== null"):
                return
            time.sleep(0.3)
        raise AssertionError(f"{selector!r} did not appear; page shows:\n{self.text()[-3000:]}")

    def wait_response(self, url_part: str, timeout: float = 60) -> int:
        """Wait for the browser to receive a response whose URL contains ``url_part``; its status."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in self.events:
                if e.get("method") == "Network.responseReceived" and url_part in e["params"]["response"]["url"]:
                    return e["params"]["response"]["status"]
            self.js("0")  # collects the events that arrived meanwhile
            time.sleep(0.2)
        raise AssertionError(f"no response for {url_part!r}")

    def click(self, tag: str, label: str, prefix: bool = False) -> None:
        test = "t.startsWith(label)" if prefix else "t === label"
        found = self.js(f"""(() => {{ const label = {json.dumps(label)};
            const el = [...document.querySelectorAll({json.dumps(tag)})].find(e => {{
                const t = e.innerText.trim(); return {test}; }});
            if (!el) return false; el.scrollIntoView(); el.click(); return true; }})()""")
        assert found, f"no {tag} {label!r} on the page:\n{self.text()[-2000:]}"

    def type_into(self, selector: str, text: str) -> None:
        assert self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                       "if (!e) return false; e.focus(); return true; })()"), selector
        self.send("Input.insertText", text=text)

    def enable(self) -> None:
        """Turn on the CDP domains the helpers above listen to."""
        for domain in ("Page", "Runtime", "Network", "DOM"):
            self.send(f"{domain}.enable")

    def log_in(self, url: str, name: str, password: str) -> None:
        """Open the app at ``url`` and submit the login form (the caller waits for what follows)."""
        self.send("Page.navigate", url=url + "/")
        self.wait_for('input[aria-label="User name"]')
        self.type_into('input[aria-label="User name"]', name)
        self.type_into('input[type="password"]', password)
        self.click("button", "Log in")

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def _start_chromium(profile: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.time() + 30
    while time.time() < deadline and not port_file.exists():
        time.sleep(0.2)
    assert port_file.exists(), "Chromium did not open its DevTools port"
    return proc, int(port_file.read_text().split()[0])


def _page_ws(port: int) -> str:
    targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


def new_context_page(port: int) -> tuple[Page, Page]:
    """A page in a new browser context (its own cookies and storage) of the browser at ``port``, and the
    browser-level connection that owns the context: closing that connection disposes of the context,
    so tests sharing one browser (conftest's ``chromium_port``) never see each other's sessions."""
    version = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=10).read())
    browser = Page(version["webSocketDebuggerUrl"])
    context = browser.send("Target.createBrowserContext", disposeOnDetach=True)["browserContextId"]
    target = browser.send("Target.createTarget", url="about:blank", browserContextId=context,
                          width=1400, height=1100)["targetId"]
    return browser, Page(f"ws://127.0.0.1:{port}/devtools/page/{target}")


def screenshot(page: Page, tmp_path: Path, name: str) -> bytes:
    """A PNG of the page, kept in tmp_path and, when $VIDPIPE_E2E_SCREENSHOTS names a folder, there."""
    time.sleep(0.5)  # let images finish loading
    shot = base64.b64decode(page.send("Page.captureScreenshot", format="png")["data"])
    (tmp_path / f"{name}.png").write_bytes(shot)
    if os.environ.get("VIDPIPE_E2E_SCREENSHOTS"):
        folder = Path(os.environ["VIDPIPE_E2E_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(shot)
    return shot


def test_login_search_confirm_in_chromium(tmp_path, chromium_port):
    pytest.importorskip("vidpipe.search.api", reason="vidpipe.search.api (the search API) is not installed")
    case, evidence = tmp_path / "case", tmp_path / "evidence"
    shutil.copytree(SAMPLE / "photos", evidence)
    ingest = cli_json("ingest", str(evidence), "--case", str(case), "--workers", "2", "--json", "--no-progress")
    if ingest["faces"] == 0:
        pytest.skip("the face models found no face (face weights missing?)")
    assert cli("user", "add", "rita", "--role", "reviewer", "--case", str(case), "--password-stdin",
               input_text=PASSWORD + "\n").returncode == 0
    query = tmp_path / "portrait.jpg"  # another photo of the astronaut, kept inside the sample archive
    query.write_bytes(zipfile.ZipFile(SAMPLE / "misc" / "archive.zip").read("portrait.jpg"))

    server = Server(case, tmp_path / "netlog")
    page = context = failure = None
    try:
        context, page = new_context_page(chromium_port)
        page.enable()
        page.log_in(server.url, "rita", PASSWORD)
        page.wait_text("Case overview")
        chrome = page.js("""['stAppDeployButton', 'stMainMenu', 'stToolbar'].map(id => {
            const e = document.querySelector(`[data-testid="${id}"]`); return e ? e.offsetParent !== null : false; })""")
        assert chrome == [False, False, False]  # Deploy button, app menu and toolbar are not shown

        page.click("a", "Search")
        page.wait_for('input[type="file"]')
        root = page.send("DOM.getDocument", depth=-1)["root"]["nodeId"]
        node = page.send("DOM.querySelector", nodeId=root, selector='input[type="file"]')["nodeId"]
        page.send("DOM.setFileInputFiles", files=[str(query)], nodeId=node)
        assert page.wait_response("/_stcore/upload_file/") in (200, 204)  # uploaded with its XSRF token
        page.click("button", "Search")
        page.wait_text("Threshold:", timeout=180)
        page.wait_text("astronaut.jpg")
        page.wait_text("(✔ above)")  # the image caption: rank, score, above the threshold
        screenshot(page, tmp_path, "search")
        page.click("button", "Reveal")
        page.wait_text("Images revealed this session 1")
        page.click("button", "Send the", prefix=True)
        page.wait_text("1 candidate(s) added to the review queue.")
        page.click("a", "Review queue")
        page.wait_for("textarea")
        page.wait_text("score")
        screenshot(page, tmp_path, "review")
        page.click("button", "Reveal both")  # deciding needs both pictures seen (logged)
        page.wait_text("Images revealed this session 3")
        page.type_into("textarea", "same face: hairline, eyebrows, ear shape")
        page.js("document.activeElement.blur()")  # the reason reaches the server on blur
        time.sleep(1)
        page.click("button", "Confirm — same")
        page.wait_text("Decision 1 recorded: confirmed.")
        shot = screenshot(page, tmp_path, "decided")
        assert shot.startswith(b"\x89PNG") and len(shot) > 20_000
        urls = [e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"]
        urls += [e["params"]["url"] for e in page.events if e.get("method") == "Network.webSocketCreated"]
    except Exception as exc:  # noqa: BLE001 - re-raised below with the server's log
        failure = exc
    finally:
        for connection in (page, context):
            if connection:
                connection.close()
        server_log = server.stop()
    if failure is not None:
        raise AssertionError(f"{failure}\n--- server log ---\n{server_log[-4000:]}") from failure

    allowed = (server.url + "/", server.url.replace("http", "ws") + "/", "data:", "blob:", "about:")
    assert urls and all(u.startswith(allowed) for u in urls), [u for u in urls if not u.startswith(allowed)]
    assert not (tmp_path / "netlog").exists(), (tmp_path / "netlog").read_text()
    conn = sqlite3.connect(case / "case.sqlite")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM decisions").fetchone()
    assert row is not None, server_log[-3000:]
    assert (row["decision"], row["reviewer"], row["mode"]) == ("confirmed", "rita", "face")
    assert row["score"] >= row["threshold"] and row["reason"].startswith("same face")
    actions = [r[0] for r in conn.execute("SELECT action FROM audit WHERE actor='rita' ORDER BY seq")]
    if actions[-1:] == ["logout"]:  # the browser closed before the server: its session ends, audited
        actions.pop()
    assert actions == ["login", "search", "reveal", "queue_add", "queue_claim", "reveal", "reveal", "decision"]
    assert audit.verify_chain(conn) is None
    with pytest.raises(sqlite3.DatabaseError):  # the trail is append-only
        conn.execute("UPDATE audit SET detail='{}' WHERE action='search'")
    for trigger in audit.APPEND_ONLY_TRIGGERS:  # as an attacker with write access would
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("UPDATE audit SET detail='{}' WHERE action='search'")
    assert audit.verify_chain(conn) == conn.execute("SELECT seq FROM audit WHERE action='search'").fetchone()[0]
    assert REPO.exists()
