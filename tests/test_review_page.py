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

from .conftest import NO_IMAGING, SAMPLE_TEXT

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
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
    code_note(page, SAMPLE_TEXT)
    row = page.locator('tr.code-row[data-code="M53.85"]')
    assert row.count() == 1
    assert row.locator("td.code").inner_text() == "M53.85"
    assert DESCRIPTION in row.locator("td.description").inner_text()
    assert "%" in row.inner_text()  # confidence
    assert "No documentation gap found." in page.inner_text("#flags")

    # the evidence is highlighted in the note, by label, with the legend beside it
    (evidence,) = notecoder.suggest(SAMPLE_TEXT, nlp=nlp)["codes"][0]["evidence"]
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
    (message,) = [f["message"] for f in expected["flags"] if f["flag"] == "IMAGING_MISSING"]
    assert message in flag.inner_text()
    assert "M53.85" in flag.inner_text()
    if os.environ.get("NOTECODER_SCREENSHOTS"):
        page.screenshot(
            path=f"{os.environ['NOTECODER_SCREENSHOTS']}/review_flag.png", full_page=True
        )


def test_note_text_is_never_markup_and_astral_offsets_line_up(page):
    hostile = '😀👍 <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>\n'
    code_note(page, hostile + SAMPLE_TEXT)
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
    other = notecoder.suggest(SAMPLE_TEXT, note_id="n2", nlp=nlp)
    batch.write_text(
        json.dumps({"results": [{**result, "text": NO_IMAGING}, {**other, "text": SAMPLE_TEXT}]}),
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
        page.fill("#note", SAMPLE_TEXT)
        page.click("#submit")
        page.wait_for_function("() => document.getElementById('status').className === 'bad'")
        assert "401" in page.inner_text("#status") and "API key" in page.inner_text("#status")
        page.fill("#api-key", KEY)
        page.click("#submit")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('Coded')"
        )
        assert DESCRIPTION in page.inner_text("#codes")
        # the code search needs the key too, and the page sends it
        page.fill("#add-code", "M53.8")
        page.wait_for_selector('#add-code-list li[data-code="M53.85"]')
        stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
        assert KEY not in stored and KEY not in page.url
    finally:
        context.close()


# --- review feeds back: decide, add, copy a query, export, evaluate the export ----------------

#: The sample without its imaging, with more problems in its assessment: several codes in
#: several regions (MULTI_REGION, a coding flag) and IMAGING_MISSING (a query flag).
REVIEWED = NO_IMAGING.replace(
    "1. Thoracolumbar junction syndrome at T12-L1.",
    "1. Thoracolumbar junction syndrome at T12-L1.\n"
    "2. Cervical radiculopathy at C5-6.\n"
    "3. Lumbar radiculopathy at L4-5.",
)
CODE_IN_TEXT = re.compile(r"\b[A-Z][0-9][0-9A-Z]\.[0-9A-Z]{1,4}\b")


def shot(page, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot in tmp_path (and in $NOTECODER_SCREENSHOTS, if set)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("NOTECODER_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["NOTECODER_SCREENSHOTS"]) / name)
    return path


def pick_option(page, field: str, code: str) -> None:
    """Choose ``code`` in the open suggestion list of ``field`` with the arrow keys and Enter."""
    options = page.locator(f"#{field}-list li")
    codes = options.evaluate_all("items => items.map(li => li.dataset.code)")
    assert code in codes, codes
    for _ in range(codes.index(code) + 1):
        page.keyboard.press("ArrowDown")
    selected = page.locator(f"#{field}-list li[aria-selected=true]")
    assert selected.get_attribute("data-code") == code
    assert page.get_attribute(f"#{field}", "aria-activedescendant") == selected.get_attribute("id")
    page.keyboard.press("Enter")


def service_result(base_url: str, text: str, note_id: str) -> dict:
    """What the service answers for the note: the predictions the review is scored against."""
    import urllib.request

    body = json.dumps({"note_id": note_id, "text": text}).encode()
    request = urllib.request.Request(
        f"{base_url}/v1/suggest", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def evaluate_json(capsys, gold: Path, pred: Path) -> dict:
    """``notecoder evaluate GOLD --pred PRED --json``, through the command's own entry point."""
    from notecoder.cli import main

    capsys.readouterr()
    assert main(["evaluate", str(gold), "--pred", str(pred), "--json", "--bootstrap", "0"]) == 0
    return json.loads(capsys.readouterr().out)


def by_name(rows: list[dict], key: str) -> dict[str, tuple[int, int, int]]:
    return {r[key]: (r["tp"], r["fp"], r["fn"]) for r in rows if not r[key].startswith("(")}


def test_review_export_evaluate_loop(browser, base_url, nlp, tmp_path, capsys):
    expected = notecoder.suggest(REVIEWED, note_id="rv-1", nlp=nlp)
    suggested = [c["code"] for c in expected["codes"]]
    flags = expected["flags"]
    assert len(suggested) >= 3, suggested
    query_flags = [i for i, f in enumerate(flags) if f.get("kind") == "query" and f.get("query")]
    coding_flags = [i for i, f in enumerate(flags) if f.get("kind") == "coding"]
    assert query_flags and coding_flags, [(f["flag"], f.get("kind")) for f in flags]

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    try:
        page = context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{base_url}/review")
        page.fill("#note-id", "rv-1")
        code_note(page, REVIEWED)
        shots = [shot(page, tmp_path, "review_1_coded.png")]

        # nothing decided: no export, and the page says what is left
        assert page.is_disabled("#export")
        left = page.inner_text("#review-status")
        assert f"{len(suggested)} codes and {len(flags)} flags still to decide" in left, left

        rows = page.locator("tr.code-row")
        assert rows.evaluate_all("rs => rs.map(r => r.dataset.code)") == suggested
        accepted, rejected, edited = suggested[0], suggested[1], suggested[2]
        # accept with the keyboard: focus the button, press Space
        rows.nth(0).locator("button.choice.accept").focus()
        page.keyboard.press("Space")
        assert rows.nth(0).locator("button.choice.accept").get_attribute("aria-pressed") == "true"
        assert "decided-accept" in rows.nth(0).get_attribute("class")
        rows.nth(1).locator("button.choice.reject").click()
        for row in suggested[3:]:
            page.locator(f'tr.code-row[data-code="{row}"] button.choice.accept').click()

        # edit: replace the third code by another of its category, typed and picked by keyboard
        rows.nth(2).locator("button.choice.edit").click()
        edit_field = "edit-code-2"
        assert page.evaluate("document.activeElement.id") == edit_field
        category = edited.split(".")[0] + "." + edited.split(".")[1][:1]
        page.keyboard.type(category)
        page.wait_for_selector(f"#{edit_field}-list li")
        siblings = page.locator(f"#{edit_field}-list li").evaluate_all(
            "items => items.map(li => li.dataset.code)"
        )
        replacement = next(c for c in siblings if c != edited and c not in suggested)
        assert page.get_attribute(f"#{edit_field}", "aria-expanded") == "true"
        pick_option(page, edit_field, replacement)
        assert "decided-edit" in rows.nth(2).get_attribute("class")
        assert f"replaced by {replacement}" in rows.nth(2).inner_text()

        # add a missed code: suggestions with descriptions as the coder types words
        page.click("#add-code")
        page.keyboard.type("radiculopathy thoracic")
        page.wait_for_selector("#add-code-list li")
        listed = page.inner_text("#add-code-list")
        assert "M51.14" in listed
        assert "Intervertebral disc disorders with radiculopathy, thoracic region" in listed
        shots.append(shot(page, tmp_path, "review_2_suggestions.png"))
        pick_option(page, "add-code", "M51.14")
        page.wait_for_selector('#added li[data-code="M51.14"]')
        assert page.input_value("#add-code") == ""

        # codes that are not billable codes of the list are refused, with the reason
        for typed, reason in (
            ("M51.1", "is not a billable code"),
            ("Q99.999", "is not a billable FY2026 ICD-10-CM code"),
            (accepted, "already suggested"),
            ("M51.14", "already added"),
        ):
            page.fill("#add-code", typed)
            page.keyboard.press("Enter")
            page.wait_for_function(
                "r => document.getElementById('add-code-msg').textContent.includes(r)", arg=reason
            )
        assert page.locator("#added li").count() == 1
        page.fill("#add-code", "")

        # flags: accept the query flags, reject the coding ones; copy a query draft first
        for i in query_flags:
            flag = page.locator(f'#flags .flag[data-index="{i}"]')
            query = flags[i]["query"]
            draft = flag.locator(".query")
            assert query["question"] in draft.inner_text()
            for option in query["options"]:
                assert option in draft.inner_text()
            flag.locator("button.copy-query").click()
            page.wait_for_function(
                "() => document.getElementById('status').textContent.includes('copied')"
            )
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied == page.input_value("#clipboard")
            assert query["question"] in copied
            for option in query["options"]:
                assert f"[ ] {option}" in copied
            for indicator in query["indicators"]:
                assert f'"{indicator["text"]}"' in copied
            assert not CODE_IN_TEXT.search(copied), copied  # a compliant query names no code
            flag.locator("button.choice.accept").click()
        for i in coding_flags:
            page.locator(f'#flags .flag[data-index="{i}"] button.choice.reject').click()
        for i, _ in enumerate(flags):
            if i not in query_flags and i not in coding_flags:
                page.locator(f'#flags .flag[data-index="{i}"] button.choice.accept').click()
        assert not page.is_disabled("#export")
        shots.append(shot(page, tmp_path, "review_3_decided.png"))

        # export: a download of one gold line, shown on the page too
        with page.expect_download() as download:
            page.click("#export")
        reviews = tmp_path / "reviews"
        reviews.mkdir()
        saved = reviews / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == "rv-1.gold.jsonl"
        shots.append(shot(page, tmp_path, "review_4_exported.png"))
        (line,) = saved.read_text(encoding="utf-8").splitlines()
        assert page.input_value("#export-line") == line
        page.click("#copy-export")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('copied')"
        )
        assert page.evaluate("navigator.clipboard.readText()") == line
        assert all(url.startswith(base_url) for url in requested), requested
    finally:
        context.close()

    for path in shots:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, path

    gold = json.loads(line)
    accepted_codes = [accepted, *suggested[3:]]
    assert gold["id"] == "rv-1" and gold["text"] == REVIEWED and gold["setting"] == "outpatient"
    assert gold["codes"] == [*accepted_codes, replacement, "M51.14"]
    kept = [flags[i]["flag"] for i in range(len(flags)) if i not in coding_flags]
    assert gold["flags"] == list(dict.fromkeys(kept))
    assert "entities" not in gold  # the mentions were not reviewed
    review = gold["review"]
    assert review["suggested_codes"] == suggested
    assert review["rejected_codes"] == [rejected]
    assert review["edited_codes"] == [{"from": edited, "to": replacement}]
    assert review["added_codes"] == ["M51.14"]
    assert [f["flag"] for f in review["rejected_flags"]] == [flags[i]["flag"] for i in coding_flags]

    # notecoder evaluate reads the export as gold, against what the service predicted
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps(service_result(base_url, REVIEWED, "rv-1")) + "\n", encoding="utf-8")
    for source in (saved, reviews):  # the file, and a folder of exports
        report = evaluate_json(capsys, source, pred)
        assert report["problems"] == [] and report["missing_predictions"] == []
        codes = by_name(report["codes"], "code")
        for code in accepted_codes:
            assert codes[code] == (1, 0, 0), code
        assert codes[rejected] == (0, 1, 0)  # rejected: a false positive of the service
        assert codes[edited] == (0, 1, 0)  # edited away: a false positive ...
        assert codes[replacement] == (0, 0, 1)  # ... and its replacement a false negative
        assert codes["M51.14"] == (0, 0, 1)  # added: missed by the service
        micro = next(r for r in report["codes"] if r["code"] == "(micro)")
        assert (micro["tp"], micro["fp"], micro["fn"]) == (len(accepted_codes), 2, 2)
        flag_rows = by_name(report["flags"], "flag")
        for i in coding_flags:
            assert flag_rows[flags[i]["flag"]] == (0, 1, 0)
        for name in kept:
            assert flag_rows[name] == (1, 0, 0)
        omitted = "no span annotations in the gold: span, attribute and region scores omitted"
        assert omitted in report["omitted"]
        errors = {(e["note_id"], e["type"], e["level"], e["item"]) for e in report["errors"]}
        assert ("rv-1", "FP", "code", rejected) in errors
        assert ("rv-1", "FN", "code", "M51.14") in errors


def test_export_waits_for_every_decision_and_goes_stale_on_a_change(page, nlp):
    expected = notecoder.suggest(NO_IMAGING, nlp=nlp)
    assert [c["code"] for c in expected["codes"]] == ["M53.85"]
    assert [f["flag"] for f in expected["flags"]] == ["IMAGING_MISSING"]
    code_note(page, NO_IMAGING)
    assert page.is_disabled("#export")
    assert "1 code and 1 flag still to decide" in page.inner_text("#review-status")
    page.click('tr.code-row[data-code="M53.85"] button.choice.accept')
    assert page.is_disabled("#export")
    assert "1 flag still to decide" in page.inner_text("#review-status")
    page.click('#flags .flag[data-flag="IMAGING_MISSING"] button.choice.reject')
    assert "Every code and flag decided" in page.inner_text("#review-status")
    with page.expect_download() as download:
        page.click("#export")
    line = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    # no id given: a stable one made from the text
    assert re.fullmatch(r"note-[0-9a-f]{8}", line["id"])
    assert download.value.suggested_filename == f"{line['id']}.gold.jsonl"
    assert line["codes"] == ["M53.85"] and line["flags"] == []
    assert page.is_visible("#export-line")

    # a changed decision makes the shown line stale: it goes, and the page says so
    page.click('#flags .flag[data-flag="IMAGING_MISSING"] button.choice.accept')
    assert not page.is_visible("#export-line")
    assert "export again" in page.inner_text("#review-status")

    # editing, then cancelling with Escape, leaves the decision as it was
    page.click('tr.code-row[data-code="M53.85"] button.choice.edit')
    assert page.is_visible("#edit-code-0")
    page.keyboard.press("Escape")
    assert not page.is_visible("#edit-code-0")
    accept = page.locator('tr.code-row[data-code="M53.85"] button.choice.accept')
    assert accept.get_attribute("aria-pressed") == "true"
    # the suggested code itself is no edit
    page.click('tr.code-row[data-code="M53.85"] button.choice.edit')
    page.keyboard.type("M53.85")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('edit-code-0-msg').textContent.includes('accept it')"
    )
    # a new note starts a new review
    code_note(page, SAMPLE_TEXT)
    assert page.locator("#added li").count() == 0
    assert "1 code still to decide" in page.inner_text("#review-status")


def test_copy_falls_back_where_the_clipboard_api_is_missing(browser, base_url, nlp):
    """Served over plain http beyond loopback, a page has no navigator.clipboard."""
    expected = notecoder.suggest(NO_IMAGING, nlp=nlp)
    (query,) = [f["query"] for f in expected["flags"] if f["flag"] == "IMAGING_MISSING"]
    context = browser.new_context()
    context.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    try:
        page = context.new_page()
        page.goto(f"{base_url}/review")
        code_note(page, NO_IMAGING)
        page.click('#flags .flag[data-flag="IMAGING_MISSING"] button.copy-query')
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('copied')"
        )
        copied = page.input_value("#clipboard")
        assert copied.splitlines()[0] == query["title"]
        assert query["question"] in copied and "[ ] Unable to determine" in copied
        # the focus goes back to the button, not to the off-screen text
        assert page.evaluate("document.activeElement.classList.contains('copy-query')")
    finally:
        context.close()
