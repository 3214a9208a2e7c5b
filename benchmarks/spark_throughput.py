"""``notecoder spark`` on local[2] next to ``notecoder batch --workers 2``, same notes.

Both run as fresh processes over the same Parquet copy of the MTSamples
transcriptions, start-up and output included (Spark: the JVM, the session, a
pipeline per Python worker; batch: a pipeline per worker), so the table shows
what a user waits for. Every table of both outputs is written, and the note and
code counts are printed next to the times so that a run that dropped notes
cannot look fast.

    python benchmarks/spark_throughput.py                  # 2,357 notes
    python benchmarks/spark_throughput.py --repeat 4 --partitions 2 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mtsamples_all.jsonl"


def to_parquet(corpus: Path, repeat: int, path: Path) -> tuple[int, int]:
    """The corpus (``id``, ``text``) as one Parquet file; returns (notes, words)."""
    notes = [json.loads(line) for line in corpus.open(encoding="utf-8") if line.strip()]
    ids = [f"{n['id']}" if r == 0 else f"{n['id']}-{r}" for r in range(repeat) for n in notes]
    texts = [n["text"] for _ in range(repeat) for n in notes]
    pq.write_table(pa.table({"id": ids, "text": texts}), path)
    return len(texts), sum(len(t.split()) for t in texts)


def timed(cmd: list[str]) -> float:
    """Wall seconds of one command in a fresh process; its output is not shown."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return elapsed


def counts(output: Path) -> tuple[int, int, int]:
    """(notes, errors, codes) of an output folder, read back from its tables."""
    results = pq.read_table(output / "results", columns=["error"])
    errors = results.column("error").null_count  # rows without an error
    codes = pq.read_table(output / "codes", columns=["code"]).num_rows
    return results.num_rows, errors, codes  # null errors: notes coded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=1, help="copies of the corpus")
    parser.add_argument(
        "--partitions", type=int, nargs="*", default=[0], help="Spark runs (0: default)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "in.parquet"
        n_notes, n_words = to_parquet(args.corpus, args.repeat, source)
        batch = [sys.executable, "-m", "notecoder.cli", "batch", str(source)]
        batch += ["--output", str(work / "batch"), "--workers", "2"]
        runs: list[tuple[str, list[str], Path]] = [
            ("`notecoder batch --workers 2`", batch, work / "batch")
        ]
        for n in args.partitions:
            out = work / f"spark-{n}"
            cmd = [sys.executable, "-m", "notecoder.spark", str(source), str(out)]
            cmd += ["--master", "local[2]"] + (["--partitions", str(n)] if n else [])
            label = f"partitions {n}" if n else "default partitions"
            runs.append((f"`notecoder spark`, local[2], {label}", cmd, out))
        rows = []
        for label, cmd, out in runs:
            seconds = timed(cmd)
            notes, ok, codes = counts(out)
            if notes != n_notes:
                sys.exit(f"{label}: {notes} result rows for {n_notes} notes")
            rows.append((label, seconds, notes, ok, codes))
    print(f"\n{n_notes:,} notes ({n_words:,} words), end to end, start-up included\n")
    print("| run | seconds | notes/s | words/s | coded / errors | codes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, seconds, notes, ok, codes in rows:
        print(
            f"| {label} | {seconds:.1f} | {notes / seconds:.1f} | {n_words / seconds:,.0f} "
            f"| {ok:,} / {notes - ok} | {codes:,} |"
        )


if __name__ == "__main__":
    main()
