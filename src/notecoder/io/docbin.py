"""spaCy DocBin (``.spacy``) files as annotated notes.

Spans come from ``doc.ents`` or from a span group (``span_key``), labels mapped
like BRAT's. A note's id is ``doc.user_data["id"]`` when the file stored user
data, else its position in the file.
"""

from __future__ import annotations

from pathlib import Path

import spacy
from spacy.tokens import DocBin

from notecoder.errors import Errors, GoldError, SourceError
from notecoder.io.brat import load_mapping
from notecoder.io.gold import Corpus, Note, Problem


def read_docbin(
    path: str | Path,
    *,
    span_key: str | None = None,
    mapping: str | Path | None = None,
    strict: bool = False,
) -> Corpus:
    """Notes with entities from a DocBin; ``span_key`` None reads ``doc.ents``."""
    labels = load_mapping(mapping)["labels"]
    vocab = spacy.blank("en").vocab
    corpus = Corpus()
    try:
        docbin = DocBin().from_disk(path)
    except ValueError:  # spaCy's own message is long and tells how to convert v2 JSON
        reason = "spaCy cannot load it as a DocBin"
        raise SourceError(Errors.E008.format(path=path, kind=".spacy", reason=reason)) from None
    for i, doc in enumerate(docbin.get_docs(vocab)):
        spans = list(doc.ents) if span_key is None else list(doc.spans.get(span_key, []))
        entities = []
        for span in spans:
            label = labels.get(span.label_)
            if label is None:
                problem = Problem(str(path), None, f"doc {i}: unknown label {span.label_!r}")
                if strict:
                    raise GoldError(str(problem))
                corpus.problems.append(problem)
                continue
            entities.append(
                {"start": span.start_char, "end": span.end_char, "text": span.text, "label": label}
            )
        note_id = str(doc.user_data.get("id", i)) if doc.user_data else str(i)
        corpus.notes.append(
            Note(id=note_id, text=doc.text, entities=entities, source=f"{path}#{i}")
        )
    return corpus
