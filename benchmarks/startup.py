"""What a ``notecoder`` process costs before and besides coding: start-up CPU and worker memory.

Each measure runs the command as users do, in a fresh process, in one run of
this script (the machine's load is the same for all of them):

(a) whole-process CPU seconds (user + sys, from ``getrusage(RUSAGE_CHILDREN)``
    around each run) of ``notecoder suggest corpora/samples/thoracolumbar_junction.txt``
    and of a bare spaCy process, ``python -c "import spacy; spacy.blank('en')('x')"``,
    ``--runs`` times each; the medians and their ratio (issue 13 target: at
    most 2.0, i.e. coding one note costs at most twice starting spaCy itself).
    Every ``Language`` spaCy creates loads the ``spacy_factories`` entry points
    of every installed package, so where notecoder is installed that command
    imports ``notecoder.factories`` too (a few ms; the components load only
    when a notecoder pipeline is built): it is measured as it runs here, and
    as spaCy alone, notecoder's entry points hidden from it, the reference of
    the ratio;
(b) ``notecoder --help``: median wall and CPU seconds (it must not load the pipeline);
(c) ``notecoder batch --workers 1`` on the 2,357 notes of
    ../shared/corpora/mtsamples_all.jsonl repeated 10 times (23,570 notes;
    ``--quick``: once): the peak resident memory (VmHWM, read from /proc while
    it runs, so Linux only) of the process that codes the notes (issue 13
    target: at most 250 MB), and notes/s over the whole command, start-up
    included. With one worker, ``batch.run_batch`` codes in the main process,
    which is then the worker (a forked worker would count the same pages: the
    pipeline it inherits, and its own), holding besides only the input
    reader's buffer.

    python benchmarks/startup.py
    python benchmarks/startup.py --quick --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "corpora" / "samples" / "thoracolumbar_junction.txt"
CORPUS = ROOT.parent / "shared" / "corpora" / "mtsamples_all.jsonl"
NOTECODER = [sys.executable, "-m", "notecoder.cli"]
BARE_SPACY = "import spacy; spacy.blank('en')('x')"
#: The same, with notecoder's entry points hidden from spaCy (catalogue reads them at import).
SPACY_ALONE = (
    "import catalogue, importlib.metadata as md; catalogue.AVAILABLE_ENTRY_POINTS = "
    "md.EntryPoints(e for d in md.distributions() if d.name != 'notecoder' "
    "for e in d.entry_points); " + BARE_SPACY
)
#: Seconds between two looks at the batch process's peak memory.
POLL_SECONDS = 0.2
CPU_RATIO_TARGET = 2.0
WORKER_MB_TARGET = 250


def run_timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``cmd``, its children included; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {proc.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def medians(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds over ``runs`` runs of ``cmd``."""
    times = [run_timed(cmd) for _ in range(runs)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def peak_kb(pid: int) -> int:
    """The process's peak resident set (VmHWM) in KB, 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1])


def write_corpus(path: Path, repeats: int) -> int:
    """The MTSamples notes ``repeats`` times, ids made unique; returns the number of notes."""
    notes = [json.loads(line) for line in CORPUS.open(encoding="utf-8")]
    with path.open("w", encoding="utf-8") as out:
        for k in range(repeats):
            for note in notes:
                row = {"note_id": f"{note['id']}-{k}", "note_text": note["text"]}
                out.write(json.dumps(row) + "\n")
    return len(notes) * repeats


def batch_memory(repeats: int) -> dict[str, float]:
    """Peak RSS of the process coding the notes, and notes/s, for one batch worker."""
    with tempfile.TemporaryDirectory(prefix="notecoder-startup-") as tmp:
        source = Path(tmp) / "notes.jsonl"
        notes = write_corpus(source, repeats)
        cmd = [
            *NOTECODER,
            "batch",
            str(source),
            "--output",
            str(Path(tmp) / "out"),
            "--workers",
            "1",
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, peak_kb(proc.pid))
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"notecoder batch exited with {proc.returncode}")
    return {
        "notes": notes,
        "peak_mb": peak / 1024,
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command in (a) and (b)")
    parser.add_argument(
        "--quick", action="store_true", help="(c) on the 2,357 notes once, not 10 times"
    )
    args = parser.parse_args(argv)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}, load {load}")
    print()
    suggest = medians([*NOTECODER, "suggest", str(SAMPLE)], args.runs)
    bare = medians([sys.executable, "-c", BARE_SPACY], args.runs)
    alone = medians([sys.executable, "-c", SPACY_ALONE], args.runs)
    helped = medians([*NOTECODER, "--help"], args.runs)
    print(f"(a, b) median of {args.runs} runs each")
    print()
    print("| command | wall s | CPU s |")
    print("|---|---:|---:|")
    print(f"| notecoder suggest {SAMPLE.name} | {suggest[0]:.2f} | {suggest[1]:.2f} |")
    print(f'| python -c "{BARE_SPACY}" | {bare[0]:.2f} | {bare[1]:.2f} |')
    print(f"| the same, notecoder's entry points hidden | {alone[0]:.2f} | {alone[1]:.2f} |")
    print(f"| notecoder --help | {helped[0]:.2f} | {helped[1]:.2f} |")
    print()
    ratio = suggest[1] / alone[1]
    met = "met" if ratio <= CPU_RATIO_TARGET else "NOT met"
    print(f"CPU ratio suggest / spaCy alone: {ratio:.2f} (target <= {CPU_RATIO_TARGET}: {met})")
    print(f"CPU ratio suggest / spaCy as installed here: {suggest[1] / bare[1]:.2f}")
    print()

    batch = batch_memory(1 if args.quick else 10)
    print(f"(c) notecoder batch --workers 1, {batch['notes']:,} notes")
    print()
    print("| peak MB | wall s | CPU s | notes/s | notes per CPU s |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {batch['peak_mb']:.0f} | {batch['wall']:.0f} | {batch['cpu']:.0f} "
        f"| {batch['notes'] / batch['wall']:.1f} | {batch['notes'] / batch['cpu']:.1f} |"
    )
    print()
    met = "met" if batch["peak_mb"] <= WORKER_MB_TARGET else "NOT met"
    print(f"worker peak memory target (<= {WORKER_MB_TARGET} MB): {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
