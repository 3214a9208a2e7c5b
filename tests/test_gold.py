"""The pipeline on every annotated note of corpora/gold: its codes and flags."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

GOLD_FILE = REPO / "corpora" / "gold" / "notes.jsonl"
GOLD = [json.loads(line) for line in GOLD_FILE.read_text().splitlines() if line.strip()]


def _matches(expected: list[str], got: set[str]) -> bool:
    """Exact set match, with docs/formats.md's ``*`` wildcards."""
    remaining = set(got)
    for gold in expected:
        if gold.endswith("*"):
            hit = {g for g in remaining if g.startswith(gold[:-1])}
            if not hit:
                return False
            remaining -= hit
        elif gold in remaining:
            remaining.discard(gold)
        else:
            return False
    return not remaining


def test_corpus_size_and_coverage():
    assert len(GOLD) >= 80
    assert len({g["id"] for g in GOLD}) == len(GOLD)
    assert sum(1 for g in GOLD if g.get("entities")) >= 30
    assert any(g.get("setting") == "inpatient" for g in GOLD)
    assert any(not g["codes"] for g in GOLD)


@pytest.mark.parametrize("note", GOLD, ids=[g["id"] for g in GOLD])
def test_gold_note(code, note):
    codes, flags, _ = code(note["text"], note.get("setting", "outpatient"))
    assert _matches(note["codes"], codes), f"codes {sorted(codes)} != gold {note['codes']}"
    assert flags == set(note["flags"]), f"flags {sorted(flags)} != gold {note['flags']}"
