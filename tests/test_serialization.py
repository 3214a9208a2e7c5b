"""The whole pipeline survives nlp.to_disk -> spacy.load with identical results."""

from __future__ import annotations

import spacy

import notecoder
from tests.conftest import SAMPLE
from tests.test_gold import GOLD


def test_round_trip_gives_identical_results(nlp, tmp_path):
    nlp.to_disk(tmp_path / "spine")
    reloaded = spacy.load(tmp_path / "spine")
    also = notecoder.load(tmp_path / "spine")
    notes = [SAMPLE.read_text()] + [g["text"] for g in GOLD[:40]]
    for text in notes:
        expected = notecoder.suggest(text, nlp=nlp)
        assert notecoder.suggest(text, nlp=reloaded) == expected
        assert notecoder.suggest(text, nlp=also) == expected


def test_saved_pipeline_carries_its_rules(nlp, tmp_path):
    nlp.to_disk(tmp_path / "spine")
    saved = {p.relative_to(tmp_path / "spine").as_posix() for p in (tmp_path / "spine").rglob("*")}
    for component in (
        "notecoder_context",
        "notecoder_coder",
        "notecoder_entities",
        "notecoder_levels",
        "notecoder_sectionizer",
        "notecoder_sentences",
    ):
        assert any(p.startswith(component + "/") for p in saved), component
