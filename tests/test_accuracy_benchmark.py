"""benchmarks/accuracy.py: its tables and exact-note rate, on tiny gold computed by hand.

The benchmark is a script, not part of the package, so it is loaded from its
file. One test runs the real pipeline on three short notes whose output is
known (and asserted first, so a change in the coder reads as such rather than
as an arithmetic failure); the others use hand-made predictions and need no
pipeline.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from spacy.language import Language

from notecoder.evaluate import predict
from notecoder.io.gold import Note
from tests.conftest import REPO, SAMPLE


def _load_benchmark() -> ModuleType:
    path = REPO / "benchmarks" / "accuracy.py"
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


accuracy = _load_benchmark()

PAIN = "ASSESSMENT: Chronic low back pain. Plan: physical therapy."
STENOSIS = "ASSESSMENT: Lumbar spinal stenosis at L4-5 with neurogenic claudication."
#: What the pipeline gives for each note (checked before the scores are).
EXPECTED = {
    "n1": ({"M53.85"}, set()),
    "n2": ({"M54.50"}, {"PAIN_ONLY"}),
    "n3": ({"M48.062"}, {"MORE_SPECIFIC_CODE"}),
}


def gold_lines() -> list[dict[str, Any]]:
    """n1 exact; n2 code right by wildcard, flags one FP one FN; n3 code FP + FN, flag right."""
    return [
        {"id": "n1", "text": SAMPLE.read_text(), "codes": ["M53.85"], "flags": []},
        {"id": "n2", "text": PAIN, "codes": ["M54.*"], "flags": ["UNCERTAIN_DX"]},
        {"id": "n3", "text": STENOSIS, "codes": ["M47.816"], "flags": ["MORE_SPECIFIC_CODE"]},
    ]


def rows(records: list[dict[str, Any]], key: str) -> dict[str, tuple]:
    return {
        r[key]: (r["tp"], r["fp"], r["fn"], r["precision"], r["recall"], r["f1"]) for r in records
    }


def test_tables_and_exact_rate_on_the_pipeline(nlp: Language, tmp_path: Path) -> None:
    lines = gold_lines()
    for line, confident in zip(lines, (True, True, False), strict=True):
        line["confident"] = confident
        line["why"] = "written for this test"
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    notes = [Note(line["id"], line["text"]) for line in lines]
    for result in predict(notes, nlp=nlp):
        assert result["error"] is None, f"the pipeline failed: {result['error']}"
        got = ({c["code"] for c in result["codes"]}, {f["flag"] for f in result["flags"]})
        assert got == EXPECTED[result["note_id"]], "the coder changed: update EXPECTED and gold"

    (all_notes, all_result), (sure, sure_result) = accuracy.run([path], nlp, n_boot=20)
    assert (all_notes.subset, sure.subset) == (None, "confident")
    assert (all_result["notes"], sure_result["notes"]) == (3, 2)

    # Codes: M53.85 tp, M54.* tp (by M54.50), M48.062 fp, M47.816 fn.
    micro = all_result["codes"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (2, 1, 1)
    assert micro["precision"] == micro["recall"] == micro["f1"] == pytest.approx(2 / 3)
    assert micro["f1_low"] is not None and micro["f1_low"] <= micro["f1_high"]
    assert all_result["codes"]["macro"]["f1"] == pytest.approx(0.5)  # (1 + 1 + 0 + 0) / 4
    assert rows(all_result["families"], "family") == {
        "M47": (0, 0, 1, 0.0, 0.0, 0.0),
        "M48": (0, 1, 0, 0.0, 0.0, 0.0),
        "M53": (1, 0, 0, 1.0, 1.0, 1.0),
        "M54": (1, 0, 0, 1.0, 1.0, 1.0),
    }
    # Flags: MORE_SPECIFIC_CODE tp, PAIN_ONLY fp, UNCERTAIN_DX fn.
    micro = all_result["flags"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 1, 1)
    assert micro["f1"] == pytest.approx(0.5)
    assert all_result["flags"]["macro"]["f1"] == pytest.approx(1 / 3)
    assert rows(all_result["per_flag"], "flag") == {
        "MORE_SPECIFIC_CODE": (1, 0, 0, 1.0, 1.0, 1.0),
        "PAIN_ONLY": (0, 1, 0, 0.0, 0.0, 0.0),
        "UNCERTAIN_DX": (0, 0, 1, 0.0, 0.0, 0.0),
    }
    assert all_result["exact_notes"] == {"exact": 1, "scored": 3, "rate": pytest.approx(1 / 3)}
    assert all_result["errors"] == [
        {
            "note_id": "n2",
            "codes FP": "",
            "codes FN": "",
            "flags FP": "PAIN_ONLY",
            "flags FN": "UNCERTAIN_DX",
        },
        {
            "note_id": "n3",
            "codes FP": "M48.062",
            "codes FN": "M47.816",
            "flags FP": "",
            "flags FN": "",
        },
    ]

    # Confident only: n1 and n2.
    micro = sure_result["codes"]["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (2, 0, 0)
    assert sure_result["exact_notes"] == {"exact": 1, "scored": 2, "rate": 0.5}

    text = accuracy.render(all_notes, all_result, show_errors=True)
    assert "| M53 | 1 | 1 | 0 | 0 | 1.000 | 1.000 | 1.000 |" in text
    assert "| codes | micro | 2 | 1 | 1 | 0.667 | 0.667 | 0.667 |" in text
    assert "| n3 | M48.062 | M47.816 |  |  |" in text
    assert "Exact notes (codes and flags): 1/3 (0.333)" in text
    for phrase in ("junction syndrome", "neurogenic claudication", "physical therapy"):
        assert phrase not in text  # never note text


def test_exact_note_rate_follows_the_wildcards() -> None:
    gold = [
        Note("a", "", codes=["M54.*"], flags=[]),  # any M54 code, even two
        Note("b", "", codes=["M51.36*"], flags=["MORE_SPECIFIC_CODE"]),  # M51.26 is not M51.36-
        Note("c", "", codes=[], flags=[]),  # a negative, predicted negative
        Note("d", "", codes=["M48.061"], flags=None),  # flags not stated: not scored
    ]
    pred = [
        Note("a", "", codes=["M54.50", "M54.16"], flags=[]),
        Note("b", "", codes=["M51.26"], flags=["MORE_SPECIFIC_CODE"]),
        Note("c", "", codes=[], flags=[]),
        Note("d", "", codes=["M48.061"], flags=["PAIN_ONLY"]),
    ]
    assert accuracy.exact_notes(zip(gold, pred, strict=True)) == (3, 4)
    result = accuracy.evaluate_set(gold, [p.to_json() for p in pred], n_boot=0)
    assert result["exact_notes"]["rate"] == pytest.approx(0.75)
    assert result["codes"]["micro"]["f1_low"] is None  # n_boot=0: no interval
    assert rows(result["families"], "family")["M51"] == (0, 1, 1, 0.0, 0.0, 0.0)
    assert [e["note_id"] for e in result["errors"]] == ["b"]
