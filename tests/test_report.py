"""The HTML report, loaded in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from notecoder.evaluate import score
from notecoder.io.gold import Note
from notecoder.report import write_html

TEXT = "Low back pain at L4-5. Discitis at T12. Took PT and naproxen daily."


def ent(start, end, label):
    return {"start": start, "end": end, "label": label, "text": TEXT[start:end]}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    gold = [
        Note(
            "n1",
            TEXT,
            codes=["M54.50"],
            flags=["PAIN_ONLY"],
            entities=[ent(0, 13, "PAIN"), ent(23, 31, "CONDITION")],
        )
    ]
    pred = [
        Note(
            "n1",
            TEXT,
            codes=["M46.44"],
            flags=[],
            entities=[ent(45, 47, "TREATMENT"), ent(17, 21, "SPINAL_LEVEL")],
        )
    ]
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html(score(gold, pred, n_boot=0), {"n1": TEXT}, path)
    return path


def browse(path, fragment: str, profile) -> str:
    """The page's DOM after its scripts ran, from headless chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "these tests need Debian's chromium: apt-get install chromium (.ci/run does)"
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            f"file://{path}#{fragment}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def rows(dom: str) -> list[tuple[str, str, bool]]:
    """(type, item, visible) of every error row."""
    found = re.findall(
        r'<tr class="error" data-type="(\w+)" data-level="\w+" '
        r'data-item="([^"]+)"( hidden="")?>',
        dom,
    )
    return [(kind, item, not hidden) for kind, item, hidden in found]


def test_report_lists_every_error_in_context(report, tmp_path):
    dom = browse(report, "", tmp_path / "profile")
    assert sorted((k, i) for k, i, _ in rows(dom)) == sorted(
        [
            ("FN", "PAIN"),
            ("FN", "CONDITION"),
            ("FP", "TREATMENT"),
            ("FP", "SPINAL_LEVEL"),
            ("FN", "M54.50"),
            ("FP", "M46.44"),
            ("FN", "PAIN_ONLY"),
        ]
    )
    assert all(visible for _, _, visible in rows(dom))
    assert "Low back pain" in dom and "FN PAIN" in dom  # displaCy highlight with its label
    assert '<span id="shown">7</span>' in dom


def test_report_filters_by_label_code_and_flag(report, tmp_path):
    for fragment, expected in (
        ("item=PAIN", {"PAIN"}),
        ("item=M46.44", {"M46.44"}),
        ("level=flag", {"PAIN_ONLY"}),
        ("type=FP&level=span", {"TREATMENT", "SPINAL_LEVEL"}),
    ):
        dom = browse(report, fragment, tmp_path / fragment.replace("&", "_"))
        assert {item for _, item, visible in rows(dom) if visible} == expected, fragment
