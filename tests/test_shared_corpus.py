"""Tests that need ../shared skip in a clone without it; under CI no test may skip."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, REQUIRE_SHARED, shared_corpus

REASON = (
    "needs the shared corpus ../shared/corpora/no-such-corpus.jsonl (not part of this repository)"
)


def test_a_missing_corpus_skips_with_the_corpus_named(monkeypatch):
    monkeypatch.delenv(REQUIRE_SHARED, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        shared_corpus("no-such-corpus.jsonl")
    assert str(skipped.value) == REASON


def test_under_ci_a_missing_corpus_fails(monkeypatch):
    monkeypatch.setenv(REQUIRE_SHARED, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        shared_corpus("no-such-corpus.jsonl")
    assert str(failed.value) == f"{REASON}; {REQUIRE_SHARED} is set"


def test_under_ci_any_skip_fails_the_session_and_is_listed(tmp_path):
    """A session whose only trouble is a skip: pytest alone would exit 0.

    Run in a subprocess, so the session under test is not this one.
    """
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_configure  # noqa: F401\n"
    )
    (tmp_path / "test_synthetic.py").write_text(
        "import pytest\n\n\n"
        "def test_runs():\n    pass\n\n\n"
        "def test_skips():\n    pytest.skip('a reason of its own')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), **{REQUIRE_SHARED: "1"})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout
    assert "1 passed, 1 skipped" in done.stdout
    assert f"1 skipped, and {REQUIRE_SHARED} is set: failing" in done.stdout
    assert "SKIPPED test_synthetic.py::test_skips: a reason of its own" in done.stdout
