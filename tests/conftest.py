"""Shared fixtures: one pipeline per test session (it takes a few seconds to build)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from spacy.language import Language

import notecoder

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE = REPO / "corpora" / "samples" / "thoracolumbar_junction.txt"


@pytest.fixture(scope="session")
def nlp() -> Language:
    return notecoder.load()


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
