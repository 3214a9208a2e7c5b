"""Latency of ``POST /v1/suggest`` as a scribe sees it: the service, keep-alive clients.

Starts the service (``notecoder.serve.run``, what ``notecoder serve`` runs) in a
subprocess on a free loopback port with ``--workers`` worker processes (default
1), waits until every worker answers ``/health``, warms up, then sends up to
``--requests`` requests (or for ``--seconds``, whichever ends first) with a
~300-word spine note from MTSamples, sequentially over one keep-alive ``httpx``
client (``--concurrency N``: N threads, a client each). Any answer but 200
without ``error`` (a 503 for a full queue, a 504 past the time limit) counts as
an error. Prints requests, errors, p50/p95/p99 latency and requests/s. Target
(issue 6): p50 under 20 ms for a 300-word note.

    python benchmarks/latency.py
    python benchmarks/latency.py --requests 5000 --concurrency 32 --workers 2
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mtsamples_spine.jsonl"
SAMPLE = Path(__file__).resolve().parents[1] / "corpora" / "samples" / "thoracolumbar_junction.txt"
#: "Lumbar Epidural Steroid Injection - 3": 301 words, lumbar radiculopathy.
DEFAULT_NOTE_ID = "mts-1971"

_SERVER = (
    "from notecoder.serve import run; import sys; "
    "run('127.0.0.1', int(sys.argv[1]), int(sys.argv[2]), 'warning')"
)


def pick_note(words: int, note_id: str | None) -> tuple[str, str]:
    """(id, text): the named MTSamples spine note, else the one closest to ``words`` words."""
    if CORPUS.exists():
        notes = [json.loads(line) for line in CORPUS.open(encoding="utf-8")]
        named = [n for n in notes if n["id"] == note_id]
        if named:
            return named[0]["id"], named[0]["text"]
        primary = [n for n in notes if n.get("spine_focus") == "primary"] or notes
        best = min(primary, key=lambda n: abs(len(n["text"].split()) - words))
        return best["id"], best["text"]
    text = SAMPLE.read_text(encoding="utf-8")  # no corpus: the sample, repeated to size
    while len(text.split()) < words:
        text += "\n\n" + SAMPLE.read_text(encoding="utf-8")
    return SAMPLE.stem, text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen, workers: int, timeout: float = 180.0) -> None:
    """Until ``workers`` distinct worker processes have answered ``/health`` with 200."""
    deadline = time.monotonic() + timeout
    pids: set[int] = set()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before it was healthy")
        try:
            response = httpx.get(f"{base}/health", timeout=2)  # a new connection each time
            if response.status_code == 200:
                pids.add(response.json()["pid"])
                if len(pids) >= workers:
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.05 if pids else 0.2)
    raise SystemExit(f"{len(pids)} of {workers} workers healthy after {timeout:.0f} s")


def worker(
    base: str, body: bytes, stop_at: float, budget: list[int], lock: threading.Lock, out: dict
) -> None:
    """Send requests until the shared budget or the time is spent; record latencies."""
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < stop_at:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            started = time.perf_counter()
            try:
                response = client.post("/v1/suggest", content=body, headers=headers)
                ok = response.status_code == 200 and response.json()["error"] is None
            except httpx.HTTPError:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                out["latencies"].append(elapsed)
                out["errors"] += 0 if ok else 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="most requests to send")
    parser.add_argument("--seconds", type=float, default=60.0, help="most time to spend")
    parser.add_argument("--concurrency", type=int, default=1, help="client threads")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument("--words", type=int, default=300, help="note length to pick")
    parser.add_argument("--note-id", default=DEFAULT_NOTE_ID, help="MTSamples note to send")
    parser.add_argument("--warmup", type=int, default=50, help="requests not counted")
    args = parser.parse_args(argv)

    note_id, text = pick_note(args.words, args.note_id)
    body = json.dumps({"note_id": note_id, "text": text, "setting": "outpatient"}).encode()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(args.workers)])
    try:
        wait_healthy(base, proc, args.workers)
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=base, timeout=30, headers=headers) as client:
            first = client.post("/v1/suggest", content=body).json()
        for _ in range(args.warmup * args.workers):  # a new connection each: every worker warms
            httpx.post(f"{base}/v1/suggest", content=body, headers=headers, timeout=30)
        out: dict = {"latencies": [], "errors": 0}
        budget, lock = [args.requests], threading.Lock()
        started = time.monotonic()
        stop_at = started + args.seconds
        threads = [
            threading.Thread(target=worker, args=(base, body, stop_at, budget, lock, out))
            for _ in range(args.concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    lat = out["latencies"]
    codes = ", ".join(c["code"] for c in first["codes"]) or "none"
    print(
        f"note {note_id}: {len(text.split())} words, {len(text)} chars -> {codes}; "
        f"{args.workers} worker(s), concurrency {args.concurrency}, keep-alive httpx"
    )
    print()
    print("| requests | errors | p50 ms | p95 ms | p99 ms | mean ms | requests/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {len(lat)} | {out['errors']} | {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} "
        f"| {percentile(lat, 99):.1f} | {statistics.fmean(lat):.1f} | {len(lat) / wall:.0f} |"
    )
    target = percentile(lat, 50) < 20
    print(f"\np50 target (< 20 ms): {'met' if target else 'NOT met'}")
    return 0 if out["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
