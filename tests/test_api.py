"""``suggest`` on bad input: a clear error or a correct empty result, never an exception."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

import notecoder
from notecoder import api
from tests.conftest import SAMPLE


def test_result_shape_follows_formats_md(nlp):
    result = notecoder.suggest(SAMPLE.read_text(), note_id="tl-1", nlp=nlp)
    assert set(result) >= {"note_id", "codes", "flags", "entities", "error"}
    assert result["note_id"] == "tl-1"
    for c in result["codes"]:
        assert set(c) >= {"code", "description", "confidence", "evidence"}
        assert 0 < c["confidence"] <= 1
    for e in result["entities"]:
        assert set(e) >= {
            "start",
            "end",
            "text",
            "label",
            "negated",
            "historical",
            "hypothetical",
            "uncertain",
            "family",
            "section",
            "levels",
            "region",
        }
        assert e["label"] in {"CONDITION", "PAIN", "SPINAL_LEVEL", "IMAGING_FINDING", "TREATMENT"}
    json.dumps(result)  # serialisable as it is


@pytest.mark.parametrize("text", ["", "   \n\t  ", "\n\n\n"])
def test_empty_note_gives_correct_empty_result(nlp, text):
    result = notecoder.suggest(text, note_id="e", nlp=nlp)
    assert result["codes"] == [] and result["flags"] == [] and result["entities"] == []
    assert result["error"] is None


def test_huge_note_gives_clear_error(nlp):
    text = "Low back pain. " * 140_000  # about 2 MB
    result = notecoder.suggest(text, note_id="big", nlp=nlp)
    assert result["error"].startswith("note too long")
    assert result["codes"] == []


def test_control_characters_and_surrogates_keep_offsets(nlp):
    text = "Assessment:\x00 discitis\x07 at T12-L1.\ud800 \x1b[0m"
    result = notecoder.suggest(text, nlp=nlp)
    assert result["error"] is None
    assert [c["code"] for c in result["codes"]] == ["M46.45"]
    ev = result["codes"][0]["evidence"][0]
    assert text[ev["start"] : ev["end"]] == "discitis"
    json.dumps(result).encode("utf-8")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "note text must be a string"),
        (42, "note text must be a string"),
        (b"\xff\xfe\x00binary\x00", "note is not UTF-8 text"),
    ],
)
def test_wrong_types_and_binary_give_errors(nlp, value, message):
    result = notecoder.suggest(value, note_id="bad", nlp=nlp)
    assert result["error"].startswith(message)
    assert result["note_id"] == "bad"


def test_utf8_bytes_are_accepted(nlp):
    result = notecoder.suggest("Assessment: discitis at T12–L1.".encode(), nlp=nlp)
    assert {c["code"] for c in result["codes"]} == {"M46.45"}


def test_unknown_setting_is_an_error(nlp):
    assert "unknown setting" in notecoder.suggest("x", setting="ER", nlp=nlp)["error"]


def test_no_note_text_in_logs(nlp, caplog):
    secret = "Zebulon Quixote has thoracolumbar junction syndrome at T12-L1."
    with caplog.at_level(logging.DEBUG):
        notecoder.suggest(secret, nlp=nlp)
        notecoder.suggest(b"\xff" + secret.encode(), nlp=nlp)
    for record in caplog.records:
        assert "Zebulon" not in record.getMessage()
        assert "thoracolumbar junction" not in record.getMessage()


def test_internal_failure_becomes_error_result(nlp, monkeypatch):
    def broken(doc):
        raise RuntimeError("secret note text here")

    coder = nlp.get_pipe("notecoder_coder")
    monkeypatch.setattr(coder, "code", lambda *a, **k: broken(None))
    result = notecoder.suggest("Assessment: discitis at L3-4.", note_id="x", nlp=nlp)
    assert result["error"] == "internal error: RuntimeError"
    assert "secret" not in json.dumps(result)


def test_a_pipeline_keeps_the_first_new_strings_up_to_a_bound(monkeypatch):
    """spaCy 3.8: the words of the first notes are kept (a zone would make their lexemes
    again for every note), then each note is coded in a memory zone; 3.7 has no zones."""
    monkeypatch.setattr(api, "NEW_STRINGS_KEPT", 5_000)
    nlp = notecoder.load()
    notes = [
        f"Low back pain at L4-5. Reference {' '.join(uuid.uuid4().hex for _ in range(50))}."
        for _ in range(60)
    ]
    base = len(nlp.vocab.strings)
    results = [notecoder.suggest(note, nlp=nlp) for note in notes]
    grown = len(nlp.vocab.strings) - base
    if hasattr(nlp, "memory_zone"):
        assert 1_000 < grown <= 5_000
        assert [notecoder.suggest(note, nlp=nlp) for note in notes] == results
        assert len(nlp.vocab.strings) == base + grown
    else:
        assert grown > 5_000  # batch and serve rebuild a pipeline that has grown
    assert all(r["codes"][0]["code"] == "M54.50" for r in results)
