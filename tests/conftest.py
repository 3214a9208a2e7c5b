"""Shared fixtures: one pipeline per test session (it takes a few seconds to build)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import spacy
from spacy.language import Language

import notecoder

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = REPO / "corpora" / "samples" / "thoracolumbar_junction.txt"


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
