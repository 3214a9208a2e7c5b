"""A built wheel, installed outside the checkout, carries its pipeline; so does `spacy package`.

A new user runs ``pip install notecoder`` from a wheel, not from this clone:
the pipeline definition is package data, and ``notecoder build``'s folder
packaged by ``spacy package`` loads by name (spaCy finds our factories through
the ``spacy_factories`` entry points). The venv reuses this environment's
dependencies through a path file (so nothing is downloaded but the build
backend) without the editable install's import hook, so ``import notecoder``
can only find the wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import notecoder
from tests.conftest import REPO, SAMPLE


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, built_model: Path) -> Path:
    """A fresh venv (outside the checkout) with the notecoder wheel and the packaged pipeline."""
    root = tmp_path_factory.mktemp("install")
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "dist", REPO,
         cwd=root)  # fmt: skip
    (root / "pkg").mkdir()
    _run(sys.executable, "-m", "spacy", "package", built_model, root / "pkg", "--name", "spine",
         "--version", notecoder.__version__, "--build", "wheel", cwd=root)  # fmt: skip
    _run(sys.executable, "-m", "venv", root / "venv", cwd=root)
    python = root / "venv" / "bin" / "python"
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root)
    # Plain path entry: this environment's packages, but not the .pth files that run
    # the editable install's import hook (that would find the checkout first).
    (Path(site.strip()) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheels = [*(root / "dist").glob("notecoder-*.whl"), *(root / "pkg").rglob("en_spine-*.whl")]
    _run(python, "-m", "pip", "install", "-q", "--no-deps", *wheels, cwd=root)
    return root


def test_the_wheel_codes_the_sample_from_its_own_pipeline(venv):
    bin_ = venv / "venv" / "bin"
    where = _run(bin_ / "python", "-c", "import notecoder; print(notecoder.__file__)", cwd=venv)
    assert where.startswith(str(venv / "venv"))
    out = _run(bin_ / "notecoder", "suggest", SAMPLE, "--format", "json", cwd=venv)
    assert [c["code"] for c in json.loads(out)["codes"]] == ["M53.85"]


def test_the_wheel_runs_a_batch(venv):
    notes = venv / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text(SAMPLE.read_text())
    (notes / "b.txt").write_text("Neck pain. Cervical radiculopathy at C5-6.")
    bin_ = venv / "venv" / "bin"
    _run(bin_ / "notecoder", "batch", notes, "--output", venv / "out", "--workers", "1",
         "--format", "jsonl", cwd=venv)  # fmt: skip
    rows = [json.loads(line) for p in (venv / "out").rglob("*.jsonl") for line in p.open()]
    assert {r["note_id"] for r in rows} >= {"a", "b"}
    assert all(not r.get("error") for r in rows)


def test_the_packaged_pipeline_loads_by_name_without_importing_notecoder(venv):
    script = (
        "import spacy, sys; assert 'notecoder' not in sys.modules; "
        "doc = spacy.load('en_spine')('Lumbar stenosis at L4-5.'); "
        "print([c.code for c in doc._.codes])"
    )
    out = _run(venv / "venv" / "bin" / "python", "-c", script, cwd=venv)
    assert out.strip() == "['M48.061']"
