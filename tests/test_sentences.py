"""The clinical sentence splitter on the note styles we meet."""

from __future__ import annotations

import json
import logging

import pytest
import spacy

from tests.conftest import blank_pipeline, shared_corpus


@pytest.fixture(scope="module")
def split_nlp():
    return blank_pipeline("notecoder_sentences")


def sents(nlp, text):
    return [s.text.strip() for s in nlp(text).sents if s.text.strip()]


CASES = [
    (
        "ASSESSMENT:\n1. Thoracolumbar junction syndrome at T12-L1.\n2. Failed PT.",
        ["ASSESSMENT:", "1. Thoracolumbar junction syndrome at T12-L1.", "2. Failed PT."],
    ),
    (
        "Assessment and Plan:\n1. Lumbar radiculopathy\n2. No discitis\n3) Follow up in 6 weeks",
        [
            "Assessment and Plan:",
            "1. Lumbar radiculopathy",
            "2. No discitis",
            "3) Follow up in 6 weeks",
        ],
    ),
    (
        "A: 1. Facet syndrome at L4-5. 2. Low back pain.",
        ["A:", "1. Facet syndrome at L4-5.", "2. Low back pain."],
    ),
    (
        "S: Pt c/o LBP x 3 wks.\nO: Tender at L4-5.\nA: Lumbar strain.\nP: PT, NSAIDs.",
        [
            "S:",
            "Pt c/o LBP x 3 wks.",
            "O:",
            "Tender at L4-5.",
            "A:",
            "Lumbar strain.",
            "P:",
            "PT, NSAIDs.",
        ],
    ),
    (
        "FINDINGS: There is a disc bulge at L4-5. No stenosis.\n\nIMPRESSION:\nNo discitis.",
        [
            "FINDINGS:",
            "There is a disc bulge at L4-5.",
            "No stenosis.",
            "IMPRESSION:",
            "No discitis.",
        ],
    ),
    (
        "He was seen by Dr. Smith who prescribed meloxicam 7.5 mg p.o. daily vs. ibuprofen; "
        "pain is 6/10. He also has pain at T12-L1.",
        [
            "He was seen by Dr. Smith who prescribed meloxicam 7.5 mg p.o. daily vs. ibuprofen; "
            "pain is 6/10.",
            "He also has pain at T12-L1.",
        ],
    ),
    (
        "The patient reports low back pain that radiates into the\nleft buttock and is worse "
        "with\nSitting. MRI was reviewed.",
        [
            "The patient reports low back pain that radiates into the\nleft buttock and is worse "
            "with\nSitting.",
            "MRI was reviewed.",
        ],
    ),
    (
        "Low back pain\n\nNo fever or chills",
        ["Low back pain", "No fever or chills"],
    ),
    (
        "- Lumbar spondylosis\n- Neck pain\n* No red flags",
        ["- Lumbar spondylosis", "- Neck pain", "* No red flags"],
    ),
    (
        "HISTORY:,  This is a 54-year-old male with back pain.,EXAM:,  MRI lumbar spine.,"
        "IMPRESSION:,  No evidence of discitis.",
        [
            "HISTORY:,",
            "This is a 54-year-old male with back pain.,",
            "EXAM:,",
            "MRI lumbar spine.,",
            "IMPRESSION:,",
            "No evidence of discitis.",
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_split(split_nlp, text, expected):
    assert sents(split_nlp, text) == expected


def test_no_note_text_in_logs(split_nlp, caplog):
    with caplog.at_level(logging.DEBUG):
        split_nlp("Zebulon Quixote has low back pain. He denies fever.")
    assert not any("Zebulon" in r.getMessage() for r in caplog.records)


def test_round_trip(split_nlp, tmp_path):
    split_nlp.to_disk(tmp_path / "p")
    reloaded = spacy.load(tmp_path / "p")
    for text, _ in CASES:
        assert sents(reloaded, text) == sents(split_nlp, text)


def test_real_notes_split_into_sane_sentences(split_nlp):
    with shared_corpus("mtsamples_spine.jsonl").open() as f:
        notes = [json.loads(line)["text"] for line in f][:100]
    for text in notes:
        doc = split_nlp(text)
        lengths = [len(s) for s in doc.sents]
        assert max(lengths) < 400  # no runaway sentence
        assert sum(lengths) == len(doc)
