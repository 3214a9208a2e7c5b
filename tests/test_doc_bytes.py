"""A coded Doc survives Doc.to_bytes / DocBin, and nlp.pipe(n_process=2) codes as one process."""

from __future__ import annotations

import json
from itertools import islice

import pytest
from spacy.tokens import Doc, DocBin

from notecoder.result import doc_to_result
from tests.conftest import SAMPLE, shared_corpus


@pytest.fixture(scope="module")
def texts() -> list[str]:
    with shared_corpus("mtsamples_all.jsonl").open(encoding="utf-8") as f:
        notes = [json.loads(line)["text"] for line in islice(f, 300)]
    return [SAMPLE.read_text(), *notes]


def test_bytes_round_trip_gives_the_same_result(nlp, texts):
    for text in texts:
        doc = nlp(text)
        again = Doc(nlp.vocab).from_bytes(doc.to_bytes())
        assert doc_to_result(again, "n") == doc_to_result(doc, "n")


def test_attributes_read_back_as_spans_of_their_doc(nlp):
    doc = nlp(SAMPLE.read_text())
    again = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    condition = next(s for s in again.spans["notecoder"] if s.label_ == "CONDITION")
    levels = condition._.linked_levels
    assert "T12-L1" in [a.text for a in levels] and all(a.doc is again for a in levels)
    assert [c.code for c in again._.codes] == ["M53.85"]
    assert all(s.doc is again for c in again._.codes for s in c.evidence)
    graph = again._.context_graph
    assert all(t.doc is again for t in graph.targets)


def test_docbin_with_user_data_round_trip(nlp, texts):
    docs = list(nlp.pipe(texts[:40]))
    stored = DocBin(docs=docs, store_user_data=True).to_bytes()
    loaded = DocBin().from_bytes(stored).get_docs(nlp.vocab)
    for doc, again in zip(docs, loaded, strict=True):
        assert doc_to_result(again, None) == doc_to_result(doc, None)


def test_two_processes_code_as_one(nlp, texts):
    one = [doc_to_result(doc, None) for doc in nlp.pipe(texts)]
    two = [doc_to_result(doc, None) for doc in nlp.pipe(texts, n_process=2, batch_size=16)]
    assert two == one
