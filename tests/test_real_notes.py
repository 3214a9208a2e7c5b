"""Robustness on real transcriptions: every MTSamples spine note is processed."""

from __future__ import annotations

import json

import notecoder
from tests.conftest import shared_corpus


def test_every_mtsamples_spine_note_gets_a_valid_result(nlp):
    path = shared_corpus("mtsamples_spine.jsonl")
    notes = [json.loads(line) for line in path.open()]
    assert len(notes) == 348
    coded = 0
    for note in notes:
        result = notecoder.suggest(note["text"], note_id=note["id"], nlp=nlp)
        assert result["error"] is None, note["id"]
        assert result["note_id"] == note["id"]
        coded += bool(result["codes"])
        for item in result["codes"] + result["flags"]:
            for ev in item["evidence"]:
                assert note["text"][ev["start"] : ev["end"]] == ev["text"], note["id"]
        for ent in result["entities"]:
            assert note["text"][ent["start"] : ent["end"]] == ent["text"], note["id"]
    assert coded >= 140  # measured: 149 of the 348 notes get a code
