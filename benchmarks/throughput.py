"""Batch throughput on the real MTSamples transcriptions, with peak memory.

Prints one table: notes/s, words/s and peak memory (RSS) for spaCy's bare
tokenizer (the floor), medspaCy's default ``medspacy.load()`` pipeline,
notecoder with 1 worker and with every core (``notecoder batch``'s own runner).
Targets (issue 4): one worker >= 25% of the tokenizer's rate, >= 1.8x on 2
cores, < 500 MB per worker. Run: python benchmarks/throughput.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mtsamples_all.jsonl"

_CHILD = r"""
import json, resource, sys, time
kind, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
texts = [json.loads(l)["text"] for l in open(path)] * repeat
if kind == "tokenizer":
    import spacy
    run = spacy.blank("en").tokenizer
elif kind == "medspacy":
    import logging, medspacy
    from loguru import logger
    logger.disable("PyRuSH")
    logging.disable(logging.WARNING)
    run = medspacy.load()
start = time.perf_counter()
for t in texts:
    run(t)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "rss_mb": peak}))
"""


def child(kind: str, corpus: Path, repeat: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(corpus), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def batch(workers: int, corpus: Path, repeat: int) -> dict:
    """Time ``notecoder batch`` end to end in a fresh process (pipeline load included)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        lines = corpus.read_text(encoding="utf-8").splitlines()
        source.write_text("\n".join(lines * repeat) + "\n", encoding="utf-8")
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "notecoder.cli",
                "batch",
                str(source),
                "--output",
                str(Path(tmp) / "out"),
                "--workers",
                str(workers),
            ],
            check=True,
            capture_output=True,
        )
        elapsed = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": elapsed, "rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=1, help="run the corpus N times over")
    parser.add_argument("--skip-medspacy", action="store_true", help="it is very slow")
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in args.corpus.open()] * args.repeat
    words = sum(len(t.split()) for t in texts)
    rows = [("spaCy tokenizer (floor)", child("tokenizer", args.corpus, args.repeat))]
    if not args.skip_medspacy:
        rows.append(("medspacy.load() default", child("medspacy", args.corpus, args.repeat)))
    rows.append(("notecoder batch, 1 worker", batch(1, args.corpus, args.repeat)))
    cores = os.cpu_count() or 1
    rows.append((f"notecoder batch, {cores} workers", batch(cores, args.corpus, args.repeat)))
    floor = len(texts) / rows[0][1]["seconds"]
    print(f"{len(texts)} notes, {words} words (MTSamples x{args.repeat})")
    print(f"{'pipeline':<30}{'notes/s':>10}{'words/s':>12}{'x tokenizer':>13}{'peak MB':>10}")
    for name, r in rows:
        rate = len(texts) / r["seconds"]
        print(
            f"{name:<30}{rate:>10.1f}{words / r['seconds']:>12.0f}{rate / floor:>13.3f}"
            f"{r['rss_mb']:>10.0f}"
        )
    one, many = (len(texts) / r["seconds"] for _, r in rows[-2:])
    print(f"speed-up on {cores} cores: {many / one:.2f}x")


if __name__ == "__main__":
    main()
