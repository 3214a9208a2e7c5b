"""Shared fixtures: one pipeline per test session (it takes a few seconds to build).

The MTSamples corpora are not part of this repository: tests that read them ask
``shared_corpus``, which skips them in a clone that has no ../shared beside it.
CI sets NOTECODER_REQUIRE_SHARED=1, and then a missing corpus fails its tests and
any skipped test fails the session, so CI never passes on a suite that did not run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.language import Language

import notecoder

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = REPO / "corpora" / "samples" / "thoracolumbar_junction.txt"
SAMPLE_TEXT = SAMPLE.read_text(encoding="utf-8")
#: The sample without its IMAGING paragraph: M53.85 with IMAGING_MISSING (a query flag).
NO_IMAGING = re.sub(r"IMAGING:.*?\n\n", "", SAMPLE_TEXT, flags=re.S)
#: Set (to anything but "0") by .ci/run: every test must run, none may skip.
REQUIRE_SHARED = "NOTECODER_REQUIRE_SHARED"


def _shared_required() -> bool:
    return os.environ.get(REQUIRE_SHARED, "0") not in ("", "0")


def shared_corpus(name: str) -> Path:
    """The corpus ``name`` of ../shared/corpora, or a skip (a failure under CI) naming it.

    Called where the corpus is read (in a test, or a fixture of the tests that need
    it), never at import, so a clone without ../shared still collects every test.
    """
    path = SHARED / "corpora" / name
    if not path.exists():
        reason = f"needs the shared corpus ../shared/corpora/{name} (not part of this repository)"
        if _shared_required():
            pytest.fail(f"{reason}; {REQUIRE_SHARED} is set")
        pytest.skip(reason)
    return path


class NoSkips:
    """Fails the session when any test was skipped, for whatever reason (CI only).

    A skip reads as a pass in pytest's exit status; under CI a skipped test is
    one that did not run, so the run must not count as green.
    """

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.skipped:
            return
        terminalreporter.write_sep(
            "=", f"{len(self.skipped)} skipped, and {REQUIRE_SHARED} is set: failing", red=True
        )
        for nodeid, reason in self.skipped:
            terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    if _shared_required():
        config.pluginmanager.register(NoSkips(), "notecoder-no-skips")


@pytest.fixture(scope="session")
def built_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder ``notecoder build`` writes (models/spine), built once per test session."""
    return notecoder.build(tmp_path_factory.mktemp("models") / "spine")


def broken_pipeline(folder: Path, rule_file: str, content: str | None = None) -> Path:
    """A copy of pipelines/spine in ``folder`` with one rule file removed, or (``content``)
    replaced: a broken install, for the load-failure tests."""
    import shutil

    from notecoder.pipeline import DEFAULT_PIPELINE

    shutil.copytree(DEFAULT_PIPELINE, folder)
    if content is None:
        (folder / rule_file).unlink()
    else:
        (folder / rule_file).write_text(content, encoding="utf-8")
    return folder


def blank_pipeline(*components: str) -> Language:
    """Our tokenizer and the named components alone, initialised from pipelines/spine."""
    import notecoder.pipeline  # noqa: F401  (registers the components and tokenizer)

    config = {"nlp": {"tokenizer": {"@tokenizers": "notecoder.Tokenizer.v1"}}}
    nlp = spacy.blank("en", config=config)
    for component in components:
        nlp.add_pipe(component)
    nlp.initialize()
    return nlp


@pytest.fixture(scope="session")
def nlp() -> Language:
    return notecoder.load()


@pytest.fixture(scope="session")
def code_table(nlp: Language) -> dict[str, tuple[str, str | None]]:
    """Every code the pipeline can emit: the coder's families and the terminology
    concepts of the entity patterns."""
    concepts = {p["id"] for p in nlp.get_pipe("notecoder_entities").patterns}
    return nlp.get_pipe("notecoder_coder").code_table(concepts)


@pytest.fixture(scope="session")
def code(nlp: Language):
    """``code(text, setting)`` -> (set of codes, set of flag names, full result)."""

    def run(text: str, setting: str = "outpatient") -> tuple[set[str], set[str], dict[str, Any]]:
        result = notecoder.suggest(text, setting=setting, nlp=nlp)
        assert result["error"] is None, result["error"]
        return (
            {c["code"] for c in result["codes"]},
            {f["flag"] for f in result["flags"]},
            result,
        )

    return run


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One local Spark session for every test that needs one (it takes seconds to start)."""
    import os
    import sys

    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors import the editable notecoder
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("notecoder-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
