"""Sentence splitting: medspaCy's default PyRuSH against notecoder_sentences.

Prints notes/s for spaCy's bare tokenizer (the floor), medspaCy's PyRuSH
splitter and ours, over MTSamples spine notes in ../shared/corpora, and how
often the two splitters agree on sentence starts. PyRuSH logs every token at
DEBUG (through loguru); that is switched off here so the benchmark prints no
note text.
Run: python benchmarks/sentences.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import medspacy  # noqa: F401  (registers medspacy_pyrush)
import spacy
from loguru import logger

import notecoder.pipeline  # noqa: F401  (registers our components and tokenizer)

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mtsamples_spine.jsonl"
TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "notecoder.Tokenizer.v1"}}}


def rate(nlp: spacy.language.Language, texts: list[str]) -> tuple[float, list[set[int]]]:
    """Notes per second, and each note's sentence starts (first non-space character)."""
    start = time.perf_counter()
    docs = [nlp(t) for t in texts]
    elapsed = time.perf_counter() - start
    starts = [
        {s.start_char + len(s.text) - len(s.text.lstrip()) for s in d.sents if s.text.strip()}
        if d.has_annotation("SENT_START")
        else set()
        for d in docs
    ]
    return len(texts) / elapsed, starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    logger.disable("PyRuSH")  # PyRuSH logs every token through loguru
    texts = [json.loads(line)["text"] for line in args.corpus.open()][: args.limit]

    bare = spacy.blank("en", config=TOKENIZER)
    pyrush = spacy.blank("en", config=TOKENIZER)
    pyrush.add_pipe("medspacy_pyrush")
    ours = spacy.blank("en", config=TOKENIZER)
    ours.add_pipe("notecoder_sentences")
    ours.initialize()

    tok_rate, _ = rate(bare, texts)
    rush_rate, rush_starts = rate(pyrush, texts)
    our_rate, our_starts = rate(ours, texts)
    agree = sum(len(a & b) for a, b in zip(rush_starts, our_starts, strict=True))
    only_rush = sum(len(a - b) for a, b in zip(rush_starts, our_starts, strict=True))
    only_ours = sum(len(b - a) for a, b in zip(rush_starts, our_starts, strict=True))

    print(f"{len(texts)} MTSamples spine notes")
    print(f"{'splitter':<26}{'notes/s':>10}{'x tokenizer':>13}{'sentences':>11}")
    print(f"{'spaCy tokenizer (floor)':<26}{tok_rate:>10.1f}{1.0:>13.2f}{'-':>11}")
    rows = (
        ("medspaCy PyRuSH", rush_rate, rush_starts),
        ("notecoder_sentences", our_rate, our_starts),
    )
    for name, value, starts in rows:
        sentences = sum(len(s) for s in starts)
        print(f"{name:<26}{value:>10.1f}{value / tok_rate:>13.2f}{sentences:>11}")
    print(f"sentence starts: {agree} shared, {only_rush} only PyRuSH, {only_ours} only notecoder")


if __name__ == "__main__":
    main()
