"""Reading and writing annotated notes and predictions: gold JSONL and BRAT."""

from __future__ import annotations

from pathlib import Path

from notecoder.io.brat import read_brat
from notecoder.io.gold import Corpus, read_jsonl


def read_annotated(
    path: str | Path, *, mapping: str | Path | None = None, strict: bool = False
) -> Corpus:
    """Notes from a JSONL file, a folder of JSONL files, or a BRAT folder (.txt + .ann)."""
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*.ann")):
            return read_brat(path, mapping=mapping, strict=strict)
        return read_jsonl(sorted(path.glob("*.jsonl")), strict=strict)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return read_jsonl(path, strict=strict)
