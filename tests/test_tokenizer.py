"""The tokenizer: the commas that stood for line breaks, and the ones that did not."""

from __future__ import annotations

import json

import pytest

from notecoder import tokenizer
from notecoder.extensions import doc_text
from tests.conftest import blank_pipeline, shared_corpus


@pytest.fixture(scope="module")
def tok_nlp():
    return blank_pipeline()


def tokens(nlp, text):
    return [t.text for t in nlp(text) if not t.is_space]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A heading without its colon, a line break and a numbered list.
        ("DIAGNOSES,1. Stenosis", ["DIAGNOSES", ",", "1", ".", "Stenosis"]),
        ("Diagnoses,2) Spondylosis", ["Diagnoses", ",", "2", ")", "Spondylosis"]),
        ("REVIEW OF SYSTEMS,10 systems", ["REVIEW", "OF", "SYSTEMS", ",", "10", "systems"]),
        # The commas that were already split off.
        (
            "at L4-5.,IMPRESSION:,  Stenosis",
            ["at", "L4", "-", "5", ".", ",", "IMPRESSION", ":", ",", "Stenosis"],
        ),
        ("male.,EXAM: normal", ["male", ".", ",", "EXAM", ":", "normal"]),
    ],
)
def test_line_break_commas_are_split(tok_nlp, text, expected):
    assert tokens(tok_nlp, text) == expected


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Tylenol 1,000 mg daily", "1,000"),
        ("a dose of 1,500,000 units", "1,500,000"),
        ("fusion at C5,6 and C6,7", "C5,6"),
        ("fusion at C5,6 and C6,7", "C6,7"),
        ("vitamin B12,5 mg", "B12,5"),
    ],
)
def test_numbers_and_levels_keep_their_comma(tok_nlp, text, kept):
    assert kept in tokens(tok_nlp, text)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 3000,
        "x " + "((((" * 30 + "abc" + "))" * 50 + "  y\n\nz",
        ":" * 500 + " low back pain " + "," * 400,
        "a" * 5000 + " L4-5",
        "see L4-5.,IMPRESSION:,1. Stenosis " + "-" * 300 + "\tend",
        "(a)" * 2000,
    ],
)
def test_long_chunks_keep_the_text_and_split_punctuation_runs(nlp, text):
    doc = nlp.make_doc(text)
    assert doc.text == text
    marks = [t.text for t in doc if not t.is_space and not any(c.isalnum() for c in t.text)]
    assert marks and all(len(m) <= 3 for m in marks)  # a run of marks: a token per mark


def spacys_tokenizer(nlp):
    """spaCy's own ``Tokenizer`` with the pipeline's rules (no cutting, no stretches)."""
    from spacy.tokenizer import Tokenizer

    ours = nlp.tokenizer
    return Tokenizer(
        nlp.vocab,
        rules=ours.rules,
        prefix_search=ours.prefix_search,
        suffix_search=ours.suffix_search,
        infix_finditer=ours.infix_finditer,
        token_match=ours.token_match,
        url_match=ours.url_match,
    )


def test_chunks_up_to_the_limit_are_spacys_alone(nlp):
    text = (
        "Dx: " + ("L4-5," * 20)[: tokenizer.LONG_CHUNK] + " and (DDD) at C5-6.,IMPRESSION:, stable"
    )
    assert [t.text for t in nlp.make_doc(text)] == [t.text for t in spacys_tokenizer(nlp)(text)]


def tokens_in_full(doc):
    return [(t.text, t.whitespace_, t.idx, t.norm_) for t in doc]


@pytest.fixture(scope="module")
def spine_notes() -> list[str]:
    path = shared_corpus("mtsamples_spine.jsonl")
    return [json.loads(line)["text"] for line in path.open(encoding="utf-8")]


def test_a_long_note_read_in_stretches_is_tokenized_as_spacy_would(nlp, spine_notes):
    """Real notes run together past ``LONG_NOTE`` (some 400,000 tokens), with the
    whitespace runs and contractions of dictation: the same tokens, spaces,
    offsets and norms as spaCy's tokenizer gives the whole text."""
    text = " \n\n  ".join(spine_notes[:200]) + " don't  stop, it's \n "
    assert len(text) > 3 * tokenizer.LONG_NOTE
    doc = nlp.make_doc(text)
    assert tokens_in_full(doc) == tokens_in_full(spacys_tokenizer(nlp)(text))
    assert doc_text(doc) == doc.text == text  # (noted by the tokenizer, not joined again)


def test_every_stretch_boundary_keeps_spacys_tokens(nlp, spine_notes, monkeypatch):
    """Stretches of 40 characters cut each note hundreds of times, at every kind of
    whitespace a dictated note has before a word."""
    monkeypatch.setattr(tokenizer, "LONG_NOTE", 0)
    monkeypatch.setattr(tokenizer, "STRETCH", 40)
    spacys = spacys_tokenizer(nlp)
    for text in [*spine_notes[:60], "a  b\n\nc \t d   don't\n e", " lead", "tail  "]:
        doc = nlp.make_doc(text)
        assert tokens_in_full(doc) == tokens_in_full(spacys(text))
        assert doc_text(doc) == doc.text


def test_a_long_chunk_keeps_the_norms_of_exceptions(nlp):
    doc = nlp.make_doc("(" * 60 + " we don't know")
    assert [(t.text, t.norm_) for t in doc][-3:] == [("do", "do"), ("n't", "not"), ("know", "know")]
