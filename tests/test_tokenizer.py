"""The tokenizer: the commas that stood for line breaks, and the ones that did not."""

from __future__ import annotations

import pytest

from tests.conftest import blank_pipeline


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


def test_chunks_up_to_the_limit_are_spacys_alone(nlp):
    from spacy.tokenizer import Tokenizer

    from notecoder.tokenizer import LONG_CHUNK

    ours = nlp.tokenizer
    spacys = Tokenizer(
        nlp.vocab,
        rules=ours.rules,
        prefix_search=ours.prefix_search,
        suffix_search=ours.suffix_search,
        infix_finditer=ours.infix_finditer,
        token_match=ours.token_match,
        url_match=ours.url_match,
    )
    text = "Dx: " + ("L4-5," * 20)[:LONG_CHUNK] + " and (DDD) at C5-6.,IMPRESSION:, stable"
    assert [t.text for t in nlp.make_doc(text)] == [t.text for t in spacys(text)]
