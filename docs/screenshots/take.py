"""Retake the README's screenshots of the review UI's charts in headless Chromium (run by hand).

    .venv/bin/vidpipe ingest sample_media --case /tmp/shots_case
    .venv/bin/vidpipe calibrate faces --case /tmp/shots_case --labels ../shared/data/faces/labels.csv
    .venv/bin/python docs/screenshots/take.py /tmp/shots_case

Adds a reviewer "shots" to the case when missing, starts ``vidpipe ui`` on it, logs in, and saves
PNGs beside this file. It drives the browser with the end-to-end test's DevTools client
(tests/test_ui_e2e.py), so the same Chromium that test needs is all it needs.
"""

from __future__ import annotations

import base64
import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from PIL import Image  # noqa: E402
from test_ui_e2e import Page, _page_ws, _start_chromium  # noqa: E402
from test_ui_server import Server  # noqa: E402
from test_ui_support import PASSWORD, SAMPLE, cli  # noqa: E402

USER = "shots"


def shot(page: Page, name: str, heading: str | None = None, settle_s: float = 2.5) -> None:
    """Scroll ``heading`` to the top (when given), wait for the charts to draw, save a small PNG."""
    if heading is not None:
        page.js(f"""(() => {{ const h = [...document.querySelectorAll('h1,h2,h3')]
            .find(e => e.innerText.trim().startsWith({heading!r})); if (h) h.scrollIntoView(); }})()""")
    time.sleep(settle_s)
    png = base64.b64decode(page.send("Page.captureScreenshot", format="png")["data"])
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.quantize(colors=128)  # charts and a blurred picture: 128 colours keep them under 300 KB
    img.save(HERE / f"{name}.png", optimize=True)
    print(f"{name}.png: {(HERE / f'{name}.png').stat().st_size // 1024} KB")


def main(case: Path) -> int:
    cli("user", "add", USER, "--role", "reviewer", "--case", str(case), "--password-stdin",
        input_text=PASSWORD + "\n")  # fails harmlessly when the user exists
    work = Path(tempfile.mkdtemp(prefix="vidpipe-shots-"))
    query = work / "portrait.jpg"  # another photo of the astronaut, kept inside the sample archive
    query.write_bytes(zipfile.ZipFile(SAMPLE / "misc" / "archive.zip").read("portrait.jpg"))
    server = Server(case, work / "netlog")
    browser, port = _start_chromium(work / "profile")
    try:
        page = Page(_page_ws(port))
        page.enable()
        page.log_in(server.url, USER, PASSWORD)
        page.wait_text("Capture dates")
        shot(page, "overview_timeline_cameras", "Capture dates")
        shot(page, "overview_map", "Places")

        page.click("a", "Calibration")
        page.wait_text("ROC")
        shot(page, "calibration_roc")

        page.click("a", "Search")
        page.wait_for('input[type="file"]')
        root = page.send("DOM.getDocument", depth=-1)["root"]["nodeId"]
        node = page.send("DOM.querySelector", nodeId=root, selector='input[type="file"]')["nodeId"]
        page.send("DOM.setFileInputFiles", files=[str(query)], nodeId=node)
        page.wait_response("/_stcore/upload_file/")
        page.click("button", "Search")
        page.wait_text("Threshold:", timeout=180)
        shot(page, "search_histogram_grid", settle_s=4)
        # The third Zoom button (the second result: the best is the query photo itself, in the archive).
        # Its text is the icon's name, then "Zoom".
        assert page.js("""(() => { const b = [...document.querySelectorAll('button')]
            .filter(e => e.innerText.trim().endsWith('Zoom') && e.offsetParent !== null)
            .filter((e, i, all) => i === 0 || !all[i - 1].contains(e))[2]; if (b) b.click(); return !!b; })()""")
        page.wait_text("Bigger picture")
        shot(page, "zoom_dialog_blurred", settle_s=4)
        page.close()
    finally:
        browser.terminate()
        browser.wait(timeout=15)
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
