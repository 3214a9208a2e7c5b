"""Batch throughput on the real MTSamples transcriptions, with memory per process.

Prints one table: notes/s, words/s and memory for spaCy's bare tokenizer (the
floor), medspaCy's default ``medspacy.load()`` pipeline, and ``notecoder
batch`` (its own runner, in a fresh process, start-up and output included) with
1 worker and with every core. Targets (issue 4): one worker >= 25% of the
tokenizer's rate, >= 1.8x on 2 cores, < 500 MB per worker and flat over
100,000 notes. The batch rows sample the resident memory of every process of
the run once a second: "peak MB" is the largest process, "MB 10%->90%" the
largest worker's memory at 10% and at 90% of the run, "main MB" the peak of the
process that reads the input and hands out chunks (with several workers it holds
the pipeline the workers inherit, its pages shared with them until written).

    python benchmarks/throughput.py                 # MTSamples x10 (23,570 notes)
    python benchmarks/throughput.py --repeat 43 --runs all   # 100,000 notes, memory
    python benchmarks/throughput.py --repeat 43 --runs all --unique-tokens 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mtsamples_all.jsonl"
RUNS = ("tokenizer", "medspacy", "one", "all")

_CHILD = r"""
import json, resource, sys, time
kind, path, repeat, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = [json.loads(l)["text"] for l in open(path)] * repeat
if limit:
    texts = texts[:: max(1, len(texts) // limit)][:limit]  # spread over the corpus
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
print(json.dumps({"seconds": elapsed, "notes": len(texts),
                  "words": sum(len(t.split()) for t in texts), "peak_mb": peak}))
"""


def child(kind: str, corpus: Path, repeat: int, limit: int = 0) -> dict:
    """Time a bare pipeline in a fresh process (the loop only: no start-up)."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(corpus), str(repeat), str(limit)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tree(pid: int) -> list[int]:
    """The process and all its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def batch(workers: int, source: Path, tmp: Path) -> dict:
    """Time ``notecoder batch`` end to end and sample every process's memory."""
    out = tmp / f"out-{workers}"
    cmd = [sys.executable, "-m", "notecoder.cli", "batch", str(source), "--output", str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    samples: list[tuple[float, dict[int, float]]] = []  # (seconds, {pid: MB})
    while proc.poll() is None:
        samples.append((time.perf_counter() - start, {p: _rss_mb(p) for p in _tree(proc.pid)}))
        time.sleep(1.0)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"batch failed: {proc.stderr.read().decode()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    workers_rss = [
        {p: mb for p, mb in s.items() if p != proc.pid or workers == 1} for _, s in samples
    ]
    peak = max((mb for s in workers_rss for mb in s.values()), default=0.0)
    main_peak = max((s.get(proc.pid, 0.0) for _, s in samples), default=0.0)
    coding = [  # the largest worker, from 10% to 90% of the run (start-up and summary aside)
        max(s.values(), default=0.0)
        for (t, _), s in zip(samples, workers_rss, strict=True)
        if 0.1 * elapsed <= t <= 0.9 * elapsed
    ]
    trend = f"{coding[0]:.0f}->{coding[-1]:.0f}" if coding else "-"
    return {
        "seconds": elapsed,
        "notes": summary["notes"],
        "errors": summary["errors"],
        "peak_mb": peak,
        "main_mb": main_peak,
        "trend": trend,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=10, help="run the corpus N times over")
    parser.add_argument(
        "--medspacy-notes", type=int, default=300, help="medspacy.load() is slow: time N notes"
    )
    parser.add_argument("--runs", default=",".join(RUNS), help=f"any of {','.join(RUNS)}")
    parser.add_argument(
        "--unique-tokens",
        type=int,
        default=0,
        help="append N random record numbers to each note (batch rows): a vocabulary that "
        "keeps growing, as real dumps have, instead of the corpus repeated",
    )
    args = parser.parse_args()
    runs = args.runs.split(",")
    lines = args.corpus.read_text(encoding="utf-8").splitlines() * args.repeat
    if args.unique_tokens:
        rng = random.Random(0)
        alphabet = string.ascii_uppercase + string.digits
        notes = [json.loads(line) for line in lines]
        for note in notes:
            ids = (f"MRN{''.join(rng.choices(alphabet, k=8))}" for _ in range(args.unique_tokens))
            note["text"] += "\n" + " ".join(ids)
        lines = [json.dumps(note) for note in notes]
    words = sum(len(json.loads(line)["text"].split()) for line in lines)
    cores = os.cpu_count() or 1
    rows: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        source.write_text(
            "".join(
                json.dumps({**json.loads(line), "id": f"{json.loads(line)['id']}-{i}"}) + "\n"
                for i, line in enumerate(lines)
            ),
            encoding="utf-8",
        )
        if "tokenizer" in runs:
            rows.append(("spaCy tokenizer (floor)", child("tokenizer", args.corpus, args.repeat)))
        if "medspacy" in runs:
            rows.append(
                (
                    f"medspacy.load() ({args.medspacy_notes} notes)",
                    child("medspacy", args.corpus, 1, args.medspacy_notes),
                )
            )
        if "one" in runs:
            rows.append(("notecoder batch, 1 worker", batch(1, source, Path(tmp))))
        if "all" in runs:
            rows.append((f"notecoder batch, {cores} workers", batch(cores, source, Path(tmp))))
    floor = next((r for name, r in rows if name.startswith("spaCy")), None)
    print(f"{len(lines):,} notes, {words:,} words (MTSamples x{args.repeat})")
    print(
        f"{'pipeline':<34}{'notes/s':>9}{'words/s':>10}{'x tokenizer':>13}"
        f"{'peak MB':>9}{'MB 10%->90%':>13}{'main MB':>9}{'errors':>8}"
    )
    for name, r in rows:
        notes = r.get("notes", len(lines))
        rate = notes / r["seconds"]
        word_rate = (r.get("words") or words * notes / len(lines)) / r["seconds"]
        ratio = f"{rate / (floor['notes'] / floor['seconds']):.3f}" if floor else "-"
        print(
            f"{name:<34}{rate:>9.1f}{word_rate:>10.0f}{ratio:>13}{r['peak_mb']:>9.0f}"
            f"{r.get('trend', '-'):>13}{r.get('main_mb', 0):>9.0f}{r.get('errors', '-'):>8}"
        )
    batches = {name: r for name, r in rows if name.startswith("notecoder")}
    if len(batches) == 2:
        one, many = (r["notes"] / r["seconds"] for r in batches.values())
        print(f"speed-up on {cores} cores: {many / one:.2f}x")


if __name__ == "__main__":
    main()
