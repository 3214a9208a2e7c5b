"""Per-note latency of ``notecoder.suggest`` on real MTSamples notes.

Prints a table: spaCy's bare tokenizer (the floor) and the full notecoder
pipeline, as notes/s, words/s and per-note p50/p95 milliseconds, over the
spine notes in ../shared/corpora (or --corpus). Run: python benchmarks/pipeline.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import spacy

import notecoder

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mtsamples_spine.jsonl"


def measure(name: str, run: Callable[[str], object], texts: list[str]) -> dict[str, float | str]:
    """Time ``run`` on every text once (after one warm-up note)."""
    run(texts[0])
    times = []
    for text in texts:
        start = time.perf_counter()
        run(text)
        times.append(time.perf_counter() - start)
    total = sum(times)
    words = sum(len(t.split()) for t in texts)
    quantiles = statistics.quantiles(times, n=20)
    return {
        "pipeline": name,
        "notes/s": len(texts) / total,
        "words/s": words / total,
        "p50 ms": statistics.median(times) * 1000,
        "p95 ms": quantiles[18] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=348)
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in args.corpus.open()][: args.limit]
    tokenizer = spacy.blank("en").tokenizer
    nlp = notecoder.load()
    rows = [
        measure("spaCy tokenizer", tokenizer, texts),
        measure("notecoder.suggest", lambda t: notecoder.suggest(t, nlp=nlp), texts),
    ]
    print(f"{len(texts)} notes, {sum(len(t.split()) for t in texts)} words")
    header = ["pipeline", "notes/s", "words/s", "p50 ms", "p95 ms"]
    print(" | ".join(f"{h:>18}" for h in header))
    for row in rows:
        print(
            " | ".join(
                f"{row[h]:>18.1f}" if isinstance(row[h], float) else f"{row[h]:>18}" for h in header
            )
        )


if __name__ == "__main__":
    main()
