"""Reading and writing annotated notes and predictions: gold JSONL, BRAT and DocBin."""

from __future__ import annotations

from pathlib import Path

from notecoder.io.brat import read_brat
from notecoder.io.docbin import read_docbin
from notecoder.io.gold import Corpus, read_jsonl


def read_annotated(
    path: str | Path,
    *,
    mapping: str | Path | None = None,
    strict: bool = False,
    span_key: str | None = None,
) -> Corpus:
    """Notes from a JSONL file, a folder of JSONL files, a BRAT folder (.txt + .ann),
    or a spaCy DocBin (.spacy; spans from doc.ents or the span group ``span_key``)."""
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*.ann")):
            return read_brat(path, mapping=mapping, strict=strict)
        return read_jsonl(sorted(path.glob("*.jsonl")), strict=strict)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if path.suffix == ".spacy":
        return read_docbin(path, span_key=span_key, mapping=mapping, strict=strict)
    return read_jsonl(path, strict=strict)
