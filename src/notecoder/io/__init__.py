"""Reading and writing annotated notes and predictions: gold JSONL, BRAT and DocBin."""

from __future__ import annotations

from pathlib import Path

from notecoder.errors import Errors, SourceError
from notecoder.io.brat import load_mapping, read_brat
from notecoder.io.docbin import read_docbin
from notecoder.io.gold import Corpus, read_jsonl, require_notes


def read_annotated(
    path: str | Path,
    *,
    mapping: str | Path | None = None,
    strict: bool = False,
    span_key: str | None = None,
) -> Corpus:
    """Notes from a JSONL file, a folder of JSONL files, a BRAT folder (.txt + .ann),
    or a spaCy DocBin (.spacy; spans from doc.ents or the span group ``span_key``).

    A path that does not exist, or a folder with neither kind of file, raises a
    SourceError; so does a mapping that cannot be read, even when the gold does
    not use one (a mistyped ``mapping`` should not pass unnoticed).
    """
    path = Path(path)
    load_mapping(mapping)  # raises on a missing or malformed mapping, used or not
    if path.is_dir():
        if any(path.glob("*.ann")):
            return read_brat(path, mapping=mapping, strict=strict)
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise SourceError(Errors.E042.format(path=path))
        return read_jsonl(files, strict=strict)
    if not path.exists():
        raise SourceError(Errors.E001.format(path=path))
    if path.suffix == ".spacy":
        return read_docbin(path, span_key=span_key, mapping=mapping, strict=strict)
    return read_jsonl(path, strict=strict)


def read_gold(
    path: str | Path,
    *,
    mapping: str | Path | None = None,
    strict: bool = False,
    span_key: str | None = None,
) -> Corpus:
    """:func:`read_annotated`, refusing a source with no annotated note (see ``require_notes``)."""
    corpus = read_annotated(path, mapping=mapping, strict=strict, span_key=span_key)
    return require_notes(corpus, path)


def read_predictions(path: str | Path, *, strict: bool = False) -> Corpus:
    """A predictions (results) JSONL, refusing one with no prediction in it."""
    return require_notes(read_jsonl(path, strict=strict, predictions=True), path, predictions=True)
