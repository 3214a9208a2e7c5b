"""The coder review page in a real headless browser (Debian's chromium, driven by Playwright).

The service runs under uvicorn on a free loopback port in a background thread,
with the session's pipeline; the browser pastes notes into ``/review`` and reads
what a coder would see. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

import notecoder
from notecoder import serve

from .conftest import SAMPLE

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TEXT = SAMPLE.read_text(encoding="utf-8")
NO_IMAGING = re.sub(r"IMAGING:.*?\n\n", "", TEXT, flags=re.S)
DESCRIPTION = "Other specified dorsopathies, thoracolumbar region"
KEY = "review-page-test-key"


def _serving(app):
    """``app`` under uvicorn on 127.0.0.1, on a port the OS picked: its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def base_url(nlp):
    yield from _serving(serve.create_app(nlp))


@pytest.fixture(scope="module")
def keyed_url(nlp):
    """The same service with an API key, as it must run bound beyond loopback."""
    yield from _serving(serve.create_app(nlp, serve.Settings(api_key=KEY)))


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"these tests need Debian's chromium at {CHROMIUM}: apt-get install chromium")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url):
    """A fresh page on /review that records every URL it asks for."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.requested = []  # type: ignore[attr-defined]
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(f"{base_url}/review")
    yield page
    context.close()


def mention_text(locator) -> str:
    """A highlighted mention's own text, without the label tags drawn inside it."""
    return locator.evaluate(
        "m => { const c = m.cloneNode(true);"
        " c.querySelectorAll('.tag, .ctx').forEach(t => t.remove()); return c.textContent; }"
    )


def code_note(page, text: str, setting: str = "outpatient") -> None:
    page.fill("#note", text)
    page.select_option("#setting", setting)
    page.click("#submit")
    page.wait_for_function(
        "() => document.getElementById('status').textContent.startsWith('Coded')"
    )


def test_pasted_note_shows_code_description_and_highlighted_evidence(page, base_url, nlp, tmp_path):
    code_note(page, TEXT)
    row = page.locator('tr.code-row[data-code="M53.85"]')
    assert row.count() == 1
    assert row.locator("td.code").inner_text() == "M53.85"
    assert DESCRIPTION in row.locator("td.description").inner_text()
    assert "%" in row.inner_text()  # confidence
    assert "No documentation gap found." in page.inner_text("#flags")

    # the evidence is highlighted in the note, by label, with the legend beside it
    (evidence,) = notecoder.suggest(TEXT, nlp=nlp)["codes"][0]["evidence"]
    condition = page.locator(f"#ent-{evidence['start']}-{evidence['end']}")
    assert condition.get_attribute("data-label") == "CONDITION"
    assert mention_text(condition) == "Thoracolumbar junction syndrome at T12-L1"
    assert page.locator("#legend input[type=checkbox]").count() == 5
    # "No leg symptoms": negated, struck through
    negated = page.locator("#note-view mark.negated", has_text="leg symptoms").first
    decoration = negated.locator(":scope > .txt").evaluate(
        "n => getComputedStyle(n).textDecorationLine"
    )
    assert "line-through" in decoration
    # an evidence link takes the coder to the mention
    page.locator("#codes a.ev").first.click()
    assert "flash" in (condition.get_attribute("class") or "")
    assert "request " in page.inner_text("#status")  # the request id, for support

    shot = tmp_path / "review.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    if os.environ.get("NOTECODER_SCREENSHOTS"):  # a folder to keep them in, for a human
        shutil.copy(shot, Path(os.environ["NOTECODER_SCREENSHOTS"]) / "review.png")
    # nothing but the service itself was asked for
    assert all(url.startswith(base_url) for url in page.requested), page.requested


def test_a_note_with_a_gap_shows_its_flag(page, nlp):
    expected = notecoder.suggest(NO_IMAGING, nlp=nlp)
    assert "IMAGING_MISSING" in {f["flag"] for f in expected["flags"]}
    code_note(page, NO_IMAGING)
    flag = page.locator('#flags .flag[data-flag="IMAGING_MISSING"]')
    assert flag.count() == 1
    assert "No imaging finding documented for the thoracolumbar region." in flag.inner_text()
    assert "M53.85" in flag.inner_text()
    if os.environ.get("NOTECODER_SCREENSHOTS"):
        page.screenshot(
            path=f"{os.environ['NOTECODER_SCREENSHOTS']}/review_flag.png", full_page=True
        )


def test_note_text_is_never_markup_and_astral_offsets_line_up(page):
    hostile = '😀👍 <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>\n'
    code_note(page, hostile + TEXT)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#note-view img, #note-view script").count() == 0
    assert "<img src=x" in page.inner_text("#note-view")
    # offsets are code points; emoji are two UTF-16 units each: the highlight must not drift
    conditions = page.locator('#note-view mark[data-label="CONDITION"]')
    texts = [mention_text(conditions.nth(i)) for i in range(conditions.count())]
    assert "Thoracolumbar junction syndrome" in texts, texts


def test_inpatient_setting_is_sent(page):
    code_note(page, "Assessment: possible discitis at L4-5.", setting="inpatient")
    codes = page.locator("tr.code-row").evaluate_all("rows => rows.map(r => r.dataset.code)")
    assert any(c.startswith("M46.4") for c in codes), codes


def test_a_saved_result_opens_with_its_highlights(page, nlp, tmp_path):
    result = notecoder.suggest(NO_IMAGING, note_id="saved-1", nlp=nlp)
    with_text = tmp_path / "saved.json"
    with_text.write_text(json.dumps({**result, "text": NO_IMAGING}), encoding="utf-8")
    page.set_input_files("#open", str(with_text))
    page.wait_for_selector('tr.code-row[data-code="M53.85"]')
    assert page.input_value("#note-id") == "saved-1"
    assert page.locator('#flags .flag[data-flag="IMAGING_MISSING"]').count() == 1
    assert page.locator("#note-view mark").count() > 5

    # a result without its text: the offsets do not fit an empty box, so say so
    page.fill("#note", "")
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(result), encoding="utf-8")
    page.set_input_files("#open", str(bare))
    page.wait_for_selector("#note-warning .error-banner")
    assert page.locator("#note-view mark").count() == 0
    assert page.locator('tr.code-row[data-code="M53.85"]').count() == 1

    # a batch response with several notes: a picker appears
    batch = tmp_path / "batch.json"
    other = notecoder.suggest(TEXT, note_id="n2", nlp=nlp)
    batch.write_text(
        json.dumps({"results": [{**result, "text": NO_IMAGING}, {**other, "text": TEXT}]}),
        encoding="utf-8",
    )
    page.set_input_files("#open", str(batch))
    page.wait_for_function("() => document.querySelectorAll('#pick option').length === 2")
    assert page.is_visible("#pick")
    page.select_option("#pick", "1")
    page.wait_for_function("() => document.getElementById('note-id').value === 'n2'")
    assert page.locator('#flags .flag[data-flag="IMAGING_MISSING"]').count() == 0


def test_a_refused_request_is_reported_not_swallowed(page):
    page.evaluate("document.getElementById('note').value = 'x'.repeat(1100000)")
    page.click("#submit")
    page.wait_for_function("() => document.getElementById('status').className === 'bad'")
    assert "413" in page.inner_text("#status")


def test_with_an_api_key_the_page_sends_the_key_it_is_given(browser, keyed_url):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{keyed_url}/review")  # the page itself needs no key
        page.fill("#note", TEXT)
        page.click("#submit")
        page.wait_for_function("() => document.getElementById('status').className === 'bad'")
        assert "401" in page.inner_text("#status") and "API key" in page.inner_text("#status")
        page.fill("#api-key", KEY)
        page.click("#submit")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('Coded')"
        )
        assert DESCRIPTION in page.inner_text("#codes")
        stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
        assert KEY not in stored and KEY not in page.url
    finally:
        context.close()
