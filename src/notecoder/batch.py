"""``notecoder batch``: every note of a dump coded, resumably, on every core.

The input is cut into chunks in input order. A chunk is coded and written by a
worker (the workers inherit the pipeline the main process built, and never send
Docs anywhere: spaCy's ``n_process`` cannot pickle medspaCy's extensions) as one
file per table, each written to a temporary name of its own and renamed; the
results file comes last and marks the chunk done. A run started again with the
same arguments (its ``manifest.json`` says which) skips the chunks that are done
and redoes the others, so after any kill every input note is in the output
exactly once; a worker that dies mid-run has its chunk coded again
(:class:`_Workers`). Memory stays bounded: the source is streamed and one chunk
per worker is in flight (the note ids are kept, to find repeats).

Output folder, one part per chunk in each table folder (read a table with
``pandas.read_parquet(folder / "results")``): ``results`` (note_id, codes,
flags, error), ``codes``, ``flags``, ``entities`` and ``note_nlp`` (OMOP CDM
NOTE_NLP rows), and ``summary.json`` at the end.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import chain, islice
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notecoder.errors import Errors, OutputError, PipelineLoadError, UserError
from notecoder.io.sources import Row

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TABLES = ("codes", "flags", "entities", "note_nlp", "results")  # results last: marks a chunk done


def table_schemas() -> dict[str, Any]:
    """Fixed Parquet schemas, so that every part of a table reads as one dataset."""
    import pyarrow as pa

    s, i, f, b = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    return {
        "results": pa.schema(
            [
                ("note_id", s),
                ("note_date", s),
                ("codes", pa.list_(s)),
                ("flags", pa.list_(s)),
                ("error", s),
                ("setting", s),
                ("result", s),
            ]
        ),
        "codes": pa.schema(
            [
                ("note_id", s),
                ("code", s),
                ("description", s),
                ("confidence", f),
                ("region", s),
                ("evidence_start", i),
                ("evidence_end", i),
                ("evidence_text", s),
                ("section", s),
            ]
        ),
        "flags": pa.schema(
            [
                ("note_id", s),
                ("flag", s),
                ("kind", s),
                ("code", s),
                ("message", s),
                ("confidence", f),
                ("section", s),
                ("query", s),  # the draft provider query as JSON (query flags), else null
            ]
        ),
        "entities": pa.schema(
            [
                ("note_id", s),
                ("start", i),
                ("end", i),
                ("text", s),
                ("label", s),
                ("negated", b),
                ("historical", b),
                ("hypothetical", b),
                ("uncertain", b),
                ("family", b),
                ("section", s),
                ("region", s),
                ("levels", s),
                ("concept", s),
            ]
        ),
        "note_nlp": pa.schema(
            [
                ("note_id", s),
                ("section_concept_id", i),
                ("snippet", s),
                ("offset", i),
                ("lexical_variant", s),
                ("note_nlp_concept_id", i),
                ("note_nlp_source_concept_id", i),
                ("icd10cm_code", s),
                ("nlp_system", s),
                ("nlp_date", s),
                ("term_exists", s),
                ("term_temporal", s),
                ("term_modifiers", s),
            ]
        ),
    }


_VERSION = "0.1.0"


@dataclass
class BatchOptions:
    """How to run: output kind, workers, chunk size, setting, per-note timeout."""

    output: Path
    workers: int = os.cpu_count() or 1
    chunk_size: int = 250  # small enough that the last chunks keep every worker busy
    setting: str = "outpatient"
    timeout: float = 60.0
    output_format: str = "parquet"  # or "jsonl"
    progress: bool = field(default_factory=lambda: sys.stderr.isatty())
    restart: bool = False  # discard a run found in the output folder instead of resuming it
    model: str | None = None  # an assembled pipeline folder (None: pipelines/)


# -- worker side ---------------------------------------------------------------
#: Chunks a worker process codes before a fresh one takes over (50,000 notes):
#: only a process's exit gives all its memory back to the system, whatever the
#: allocator kept after spaCy 3.7's rebuilds (``code_chunk``). Not more often: a fresh pipeline runs
#: slower for its first few thousand notes, while its vocabulary fills.
CHUNKS_PER_WORKER = 200

_NLP = None
_MODEL: str | None = None  # the assembled pipeline folder to load, None: pipelines/
_BASE_STRINGS = 0
_PARENT: int | None = None  # in a worker: the main process, which it outlives by no chunk
#: In a worker: shared with the main process, the place in its chunk of the note
#: being coded (-1 between notes), so that a worker's death names the note.
_POSITION: Any = None


def _load() -> None:
    global _NLP, _BASE_STRINGS
    from notecoder.pipeline import load

    if _NLP is not None:
        _NLP = None  # the old pipeline goes before the new one is built
        gc.collect()  # its Docs and spans hold cycles
    _NLP = load(_MODEL)
    _BASE_STRINGS = len(_NLP.vocab.strings)


def use_model(model: str | None) -> None:
    """Code with the pipeline at ``model`` in this process (None: the default).

    Runners that ship an assembled pipeline to machines without the checkout's
    pipelines/ folder (Spark's ``--model``) name it here; it is loaded on first use.
    """
    global _NLP, _MODEL
    _NLP, _MODEL = None, model


class _Timeout(BaseException):
    """Not an ``Exception``: ``suggest`` catches those, and a timeout must get through."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def code_chunk(rows: list[Row], setting: str, timeout: float) -> dict[str, list[dict[str, Any]]]:
    """Code one chunk: plain table rows (picklable), one results row per input row."""
    from notecoder import api
    from notecoder.result import empty_result

    # spaCy 3.7 keeps every string it has seen: past api.NEW_STRINGS_KEPT, a fresh
    # pipeline gives the memory back (about half a second). On 3.8 suggest() keeps
    # the vocabulary within that bound itself, in memory zones (api.strings_scope).
    if _NLP is None or (
        not hasattr(_NLP, "memory_zone")
        and len(_NLP.vocab.strings) > _BASE_STRINGS + api.NEW_STRINGS_KEPT
    ):
        _load()
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    use_alarm = timeout > 0 and hasattr(signal, "setitimer")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for position, (note_id, text, error, *date) in enumerate(rows):
            if _POSITION is not None:
                _POSITION.value = position
            day = date[0] if date else None
            if error is not None:
                result = empty_result(note_id, error)
            else:
                try:
                    if use_alarm:
                        signal.setitimer(signal.ITIMER_REAL, timeout)
                    result = api.suggest(text, note_id=note_id, setting=setting, nlp=_NLP)
                except _Timeout:
                    result = empty_result(note_id, f"timeout after {timeout:g} s")
                finally:
                    if use_alarm:
                        signal.setitimer(signal.ITIMER_REAL, 0)
            # A note's rows go in whole or not at all: one that fails here becomes an
            # error row, and its chunk (and the run, or the Spark task) goes on.
            note: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
            try:
                _add_rows(note, result, setting, day)
            except Exception as err:
                log.error("note %s failed: %s", note_id, type(err).__name__)
                note = {name: [] for name in TABLES}
                failed = empty_result(note_id, f"internal error: {type(err).__name__}")
                _add_rows(note, failed, setting, day)
            for name, found in note.items():
                tables[name].extend(found)
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, previous)
        if _POSITION is not None:
            _POSITION.value = -1
    return tables


def _add_rows(
    tables: dict[str, list[dict]], result: dict[str, Any], setting: str, note_date: str | None
) -> None:
    note_id = result["note_id"]
    tables["results"].append(
        {
            "note_id": note_id,
            "note_date": note_date,
            "codes": [c["code"] for c in result["codes"]],
            "flags": [f["flag"] for f in result["flags"]],
            "error": result["error"],
            "setting": setting,
            "result": json.dumps(result, ensure_ascii=False),
        }
    )
    for c in result["codes"]:
        ev = c["evidence"][0] if c["evidence"] else {}
        tables["codes"].append(
            {
                "note_id": note_id,
                "code": c["code"],
                "description": c["description"],
                "confidence": c["confidence"],
                "region": c.get("region"),
                "evidence_start": ev.get("start"),
                "evidence_end": ev.get("end"),
                "evidence_text": ev.get("text"),
                "section": ev.get("section"),
            }
        )
    for f in result["flags"]:
        tables["flags"].append(
            {
                "note_id": note_id,
                "flag": f["flag"],
                "kind": f["kind"],
                "code": f.get("code"),
                "message": f["message"],
                "confidence": f.get("confidence"),
                "section": f["evidence"][0].get("section") if f["evidence"] else None,
                "query": json.dumps(f["query"]) if f.get("query") else None,
            }
        )
    for e in result["entities"]:
        tables["entities"].append(
            {
                "note_id": note_id,
                "start": e["start"],
                "end": e["end"],
                "text": e["text"],
                "label": e["label"],
                "negated": e["negated"],
                "historical": e["historical"],
                "hypothetical": e["hypothetical"],
                "uncertain": e["uncertain"],
                "family": e["family"],
                "section": e["section"],
                "region": e.get("region"),
                "levels": ",".join(e.get("levels") or []),
                "concept": e.get("concept"),
            }
        )
    tables["note_nlp"].extend(note_nlp_rows(result))


def note_nlp_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """OMOP CDM NOTE_NLP rows: one per suggested code and one per entity."""
    today = date.today().isoformat()
    base = {
        "note_id": result["note_id"],
        "section_concept_id": 0,
        "note_nlp_concept_id": 0,
        "note_nlp_source_concept_id": 0,
        "nlp_system": f"notecoder {_VERSION}",
        "nlp_date": today,
    }
    rows = []
    for c in result["codes"]:
        ev = c["evidence"][0] if c["evidence"] else {"start": None, "text": ""}
        rows.append(
            {
                **base,
                "snippet": ev.get("text"),
                "offset": ev.get("start"),
                "lexical_variant": ev.get("text"),
                "icd10cm_code": c["code"],
                "term_exists": "Y",
                "term_temporal": "present",
                "term_modifiers": f"icd10cm={c['code']},confidence={c['confidence']}",
            }
        )
    for e in result["entities"]:
        absent = e["negated"] or e["hypothetical"] or e["family"]
        modifiers = [
            k for k in ("negated", "historical", "hypothetical", "uncertain", "family") if e[k]
        ]
        rows.append(
            {
                **base,
                "snippet": e["text"],
                "offset": e["start"],
                "lexical_variant": e["text"],
                "icd10cm_code": None,
                "term_exists": "N" if absent else "Y",
                "term_temporal": "past" if e["historical"] else "present",
                "term_modifiers": ",".join([f"label={e['label']}", *modifiers]),
            }
        )
    return rows


# -- main side -------------------------------------------------------------------
def _chunks(rows: Iterable[Row], size: int) -> Iterator[tuple[int, list[Row]]]:
    iterator = iter(rows)
    index = 0
    while chunk := list(islice(iterator, size)):
        yield index, chunk
        index += 1


def _part(output: Path, table: str, index: int, fmt: str) -> Path:
    suffix = "jsonl" if fmt == "jsonl" and table == "results" else "parquet"
    return output / table / f"part-{index:06d}.{suffix}"


def _write_chunk(output: Path, index: int, tables: dict[str, list[dict]], fmt: str) -> None:
    """Every table part of a chunk, each atomically; results last (marks it done)."""
    for table in TABLES:
        path = _part(output, table, index, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Dot files are not part of the dataset; the pid keeps two writers of a
        # chunk (a killed run's last worker and its restart) out of each other's way.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        rows = tables[table]
        if path.suffix == ".jsonl":
            tmp.write_text("".join(r["result"] + "\n" for r in rows), encoding="utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows, schema=table_schemas()[table]), tmp)
        os.replace(tmp, path)


def run_batch(
    rows: Iterable[Row], options: BatchOptions, source: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Code every row into ``options.output``; resume where a previous run stopped.

    Nothing is created before the input, the output location and the pipeline
    have been checked: the first row is read (a missing column fails here) and
    the pipeline is built in this process (workers inherit it). ``source``
    describes the input for the manifest (:func:`notecoder.io.sources.describe`):
    a run found in the output folder is resumed only if it read the same input
    with the same settings and pipeline.
    """
    output = options.output
    if output.exists() and not output.is_dir():
        raise OutputError(Errors.E010.format(path=output))
    rows = iter(rows)
    first = next(rows, None)  # reads the source's header: a bad source fails before any write
    if first is not None:
        rows = chain([first], rows)
    if _NLP is None or options.model != _MODEL:
        use_model(options.model)
        _load()
    _open_output(output, _manifest(options, source or {}), options.restart)
    for stale in output.glob("*/.part-*.tmp"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    done = (
        {p.name for p in (output / "results").glob("part-*")}
        if (output / "results").exists()
        else set()
    )
    todo = (
        (i, c)
        for i, c in _chunks(rows, options.chunk_size)
        if _part(output, "results", i, options.output_format).name not in done
    )
    progress = _progress(options)
    try:
        if options.workers <= 1:
            for index, chunk in todo:
                progress.update(code_and_write(index, chunk, options))
        else:
            _Workers(options, progress).run(todo)
    finally:
        progress.close()
    if not any((output / "results").glob("part-*")):
        # Zero notes is a valid input: the tables exist, empty, and the summary says 0.
        _write_chunk(output, 0, {table: [] for table in TABLES}, options.output_format)
    return summarize(output, options)


def _manifest(options: BatchOptions, source: dict[str, Any]) -> dict[str, Any]:
    """What a run's output depends on: a resume with any of it changed would mix two runs."""
    from notecoder.pipeline import fingerprint

    return {
        "input": source,
        "chunk_size": options.chunk_size,
        "setting": options.setting,
        "format": options.output_format,
        "pipeline": fingerprint(_MODEL),
    }


def _open_output(output: Path, manifest: dict[str, Any], restart: bool) -> None:
    """Create the output folder with the run's manifest, or check the one that is there.

    A folder is taken only when it is new or empty, or holds a run (a
    ``manifest.json``) with the same manifest; ``restart`` first removes what a
    run writes there, and nothing else.
    """
    path = output / "manifest.json"
    if restart and output.is_dir():
        for table in TABLES:
            shutil.rmtree(output / table, ignore_errors=True)
        for name in ("summary.json", "summary.json.tmp", "manifest.json"):
            (output / name).unlink(missing_ok=True)
    if path.exists():
        found = json.loads(path.read_text(encoding="utf-8"))
        changes = [key for key in manifest if found.get(key) != manifest[key]]
        if changes:
            raise OutputError(Errors.E013.format(path=output, changes=", ".join(changes)))
        return
    if output.is_dir() and any(output.iterdir()) and not restart:
        raise OutputError(Errors.E012.format(path=output))
    output.mkdir(parents=True, exist_ok=True)
    tmp = output / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def code_and_write(index: int, chunk: list[Row], options: BatchOptions) -> int:
    """Code one chunk and commit its parts; returns the number of notes.

    Workers write their own parts, so the main process only reads the source
    and hands out chunks: it needs no core of its own, and no table rows cross
    a process boundary.
    """
    tables = code_chunk(chunk, options.setting, options.timeout)
    if _PARENT is not None and os.getppid() != _PARENT:
        os._exit(1)  # the run was killed: its restart redoes this chunk
    _write_chunk(options.output, index, tables, options.output_format)
    return len(chunk)


def _worker(conn: Connection, position: Any, options: BatchOptions) -> None:
    """A worker process: says it is ready, then codes the chunks it is sent.

    It retires after ``CHUNKS_PER_WORKER`` chunks (the main process starts a
    fresh one) and stops when the main process goes away.
    """
    global _PARENT, _POSITION
    _PARENT, _POSITION = os.getppid(), position
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    try:
        if _NLP is None:  # forked workers inherit the main process's pipeline
            _load()
    except PipelineLoadError as err:
        conn.send(("failed", "pipeline", str(err)))
        return
    conn.send(("ready",))
    for done in range(1, CHUNKS_PER_WORKER + 1):
        # A forked worker holds copies of the main process's ends of the pipes, so a
        # killed main process does not close them: look for it while waiting.
        while not conn.poll(1.0):
            if os.getppid() != _PARENT:
                return
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        index, chunk = task
        try:
            # The last "done" says it retires, so that it is sent no more chunks.
            conn.send(("done", code_and_write(index, chunk, options), done == CHUNKS_PER_WORKER))
        except OSError as err:  # a full disk, a folder removed under the run
            cause = f"{err.filename or 'output'}: {err.strerror}"
            conn.send(("failed", "output", Errors.E031.format(index=index, cause=cause)))
            return
        except Exception as err:  # the message could quote a note: its type only
            cause = type(err).__name__
            conn.send(("failed", "internal", Errors.E031.format(index=index, cause=cause)))
            return


@dataclass
class _Process:
    """One worker as the main process sees it: its pipe, its place, the chunk it holds."""

    process: Any
    conn: Connection
    position: Any  # the shared value the worker writes (the note it is on)
    state: str = "starting"  # then "ready" (for chunks), at last "retiring"
    task: tuple[int, list[Row]] | None = None
    seen: tuple[int, float] = (-1, 0.0)  # (position, when the main process last saw it change)


class _Workers:
    """Worker processes coding chunks, each chunk held by one known worker.

    ``multiprocessing.Pool`` loses the task of a worker that dies (killed by the
    system when out of memory, a crash in a C extension) and waits for it
    forever, and re-spawns workers whose initialiser fails without end. Here
    the main process hands each chunk to one worker and watches its process:
    a dead worker's chunk is coded again by a new one; a note that killed its
    worker twice becomes an error row; a worker stuck past the per-note timeout
    is killed, as the timeout alarm cannot reach it; a worker that cannot build
    the pipeline or write its output stops the run with its cause.
    """

    def __init__(self, options: BatchOptions, progress: Any) -> None:
        self.options = options
        self.progress = progress
        self.ctx = get_context("fork" if sys.platform != "win32" else "spawn")
        self.workers: list[_Process] = []
        self.retry: deque[tuple[int, list[Row]]] = deque()
        self.deaths: dict[tuple[int, int], int] = {}  # (chunk, note position) -> deaths

    def run(self, todo: Iterator[tuple[int, list[Row]]]) -> None:
        """Code every chunk of ``todo`` (and the retries of dead workers' chunks)."""
        exhausted = False
        try:
            while True:
                for worker in self.workers:
                    if worker.state == "ready" and worker.task is None:
                        task = self.retry.popleft() if self.retry else next(todo, None)
                        if task is None:
                            exhausted = True
                            break
                        self._give(worker, task)
                busy = any(w.task is not None for w in self.workers)
                more = bool(self.retry) or not exhausted
                if not busy and not more:
                    return
                while more and len(self.workers) < self.options.workers:
                    self.workers.append(self._start())
                self._wait()
        finally:
            self._stop()

    def _start(self) -> _Process:
        conn, child = self.ctx.Pipe()
        position = self.ctx.RawValue("q", -1)
        process = self.ctx.Process(
            target=_worker, args=(child, position, self.options), daemon=True
        )
        process.start()
        child.close()
        return _Process(process, conn, position)

    def _give(self, worker: _Process, task: tuple[int, list[Row]]) -> None:
        worker.task = task
        worker.seen = (-1, time.monotonic())
        # If it died, its sentinel says so, and the task goes to another worker.
        with contextlib.suppress(OSError):
            worker.conn.send(task)

    def _wait(self) -> None:
        """Wait for a message or a death (or a second, to look for stuck workers)."""
        handles: dict[Any, _Process] = {}
        for worker in self.workers:
            handles[worker.conn] = worker
            handles[worker.process.sentinel] = worker
        for handle in wait(list(handles), timeout=1.0):
            worker = handles[handle]
            if worker not in self.workers:
                continue  # already buried this round
            if handle is worker.conn:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message is not None:
                    self._on_message(worker, message)
                    continue
            self._on_exit(worker)
        self._kill_stuck()

    def _on_message(self, worker: _Process, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            worker.state = "ready"
        elif kind == "done":
            _, notes, retiring = message
            worker.task = None
            worker.state = "retiring" if retiring else worker.state
            self.progress.update(notes)
        elif kind == "failed":
            _, what, text = message
            raise _FAILURES[what](text)

    def _on_exit(self, worker: _Process) -> None:
        with contextlib.suppress(EOFError, OSError):
            while worker.conn.poll():  # what it said before it ended ("done", then retired)
                self._on_message(worker, worker.conn.recv())
        worker.process.join()
        self.workers.remove(worker)
        worker.conn.close()
        code = worker.process.exitcode
        if worker.state == "starting":
            how = _how(code)
            raise PipelineLoadError(Errors.E030.format(cause=f"the worker died ({how})"))
        if worker.task is None:
            return  # retired after CHUNKS_PER_WORKER chunks, or idle when killed
        index, chunk = worker.task
        at = worker.position.value
        how = _how(code)
        died = self.deaths[(index, at)] = self.deaths.get((index, at), 0) + 1
        if at < 0:
            if died >= 3:
                raise UserError(Errors.E032.format(how=how, index=index))  # memory, most often
            log.warning("a worker died (%s) before coding chunk %d; coding it again", how, index)
        elif died >= 2:
            note_id, _, _, *day = chunk[at]
            chunk = list(chunk)
            chunk[at] = (note_id, None, f"the worker coding this note died twice ({how})", *day)
            log.warning("note %s killed its worker twice (%s): an error row", note_id, how)
        else:
            note_id = chunk[at][0]
            log.warning(
                "a worker died (%s) coding note %s of chunk %d; coding the chunk again",
                how,
                note_id,
                index,
            )
        self.retry.append((index, chunk))

    def _kill_stuck(self) -> None:
        """Kill a worker on one note for twice the per-note timeout and ten seconds more.

        The timeout alarm interrupts Python code only; a note stuck inside a C
        extension would hold its worker for ever.
        """
        if self.options.timeout <= 0:
            return
        now = time.monotonic()
        for worker in self.workers:
            if worker.task is None:
                continue
            at = worker.position.value
            if at != worker.seen[0]:
                worker.seen = (at, now)
            elif at >= 0 and now - worker.seen[1] > 2 * self.options.timeout + 10:
                log.warning("a worker is stuck on one note: killing it")
                worker.process.kill()
                worker.seen = (at, now)

    def _stop(self) -> None:
        """End every worker: asked to (a clean end), or killed (the run failed)."""
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        deadline = time.monotonic() + 5
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self.workers.clear()


#: What a worker's "failed" message raises in the main process.
_FAILURES: dict[str, type[Exception]] = {
    "pipeline": PipelineLoadError,
    "output": OutputError,
    "internal": RuntimeError,
}


def _how(exitcode: int | None) -> str:
    """How a process ended, for a message: "killed by SIGKILL", "exit code 1"."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _progress(options: BatchOptions) -> Any:
    from tqdm import tqdm

    return tqdm(unit=" notes", disable=not options.progress, smoothing=0.1, desc="coding")


def summarize(output: Path, options: BatchOptions) -> dict[str, Any]:
    """Counts over the whole output, written to summary.json.

    The results are read a part at a time and counted, never held whole: with
    one worker this is the process that coded the notes, and a run of millions
    of notes must not need all their results in memory at its end.
    """
    notes, errors, codes, flags = 0, [], Counter(), Counter()
    for note_id, error, note_codes, note_flags in _result_rows(output, options.output_format):
        notes += 1
        if error:
            errors.append({"note_id": note_id, "error": error})
        codes.update(note_codes)
        flags.update(note_flags)
    summary = {
        "notes": notes,
        "errors": len(errors),
        "codes": codes.total(),
        "flags": flags.total(),
        "top_codes": dict(codes.most_common(20)),
        "flag_counts": dict(flags.most_common()),
        "error_notes": errors[:1000],
    }
    tmp = output / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    os.replace(tmp, output / "summary.json")
    return summary


def _result_rows(output: Path, fmt: str) -> Iterator[tuple[str, str | None, list[str], list[str]]]:
    """(note id, error, codes, flags) of every note of the output, one part in memory at a time."""
    for path in sorted((output / "results").glob("part-*")):
        if fmt == "jsonl":
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    r = json.loads(line)
                    yield (
                        r["note_id"],
                        r["error"],
                        [c["code"] for c in r["codes"]],
                        [f["flag"] for f in r["flags"]],
                    )
        else:
            import pyarrow.parquet as pq

            columns = ["note_id", "error", "codes", "flags"]
            for r in pq.read_table(path, columns=columns).to_pylist():
                yield r["note_id"], r["error"], r["codes"], r["flags"]


def print_summary(summary: dict[str, Any], output: str | Path) -> None:
    """The closing lines of a run: counts, then the first error rows with their reasons."""
    print(
        f"{summary['notes']} notes, {summary['errors']} errors, {summary['codes']} codes, "
        f"{summary['flags']} flags -> {output}"
    )
    for item in summary["error_notes"][:20]:
        print(f"  error {item['note_id']}: {item['error']}")


def write_note_nlp_sql(output: Path, db: str, table: str = "note_nlp") -> int:
    """Put the run's NOTE_NLP rows into a database, replacing earlier rows of the same notes.

    One transaction: the rows of these notes are deleted, then inserted, so a
    rerun never duplicates them. Returns the number of rows written.
    """
    import pandas as pd
    import sqlalchemy as sa

    rows = pd.read_parquet(output / "note_nlp")
    engine = sa.create_engine(db if "://" in db else f"sqlite:///{db}")
    with engine.begin() as conn:
        if sa.inspect(conn).has_table(table):
            target = sa.table(table, sa.column("note_id"))
            ids = sorted(set(rows["note_id"]))
            for start in range(0, len(ids), 500):
                conn.execute(
                    sa.delete(target).where(target.c.note_id.in_(ids[start : start + 500]))
                )
        rows.to_sql(table, conn, if_exists="append", index=False)
    return len(rows)


def _bars(title: str, values: pd.Series, fmt: str = "{:.0f}") -> str:
    """A horizontal bar chart as inline SVG (the page fetches nothing)."""
    import html

    if values.empty:
        return f"<h2>{html.escape(title)}</h2><p>none</p>"
    top = float(values.max()) or 1.0
    rows = []
    for i, (name, value) in enumerate(values.items()):
        width = 300 * float(value) / top
        rows.append(
            f'<text x="0" y="{i * 22 + 15}">{html.escape(str(name))}</text>'
            f'<rect x="260" y="{i * 22 + 3}" width="{width:.1f}" height="16" fill="#3465a4"/>'
            f'<text x="{265 + width:.1f}" y="{i * 22 + 15}">{fmt.format(value)}</text>'
        )
    height = 22 * len(values) + 6
    return (
        f'<h2>{html.escape(title)}</h2><svg class="chart" width="700" height="{height}" '
        f'font-size="13" font-family="sans-serif">{"".join(rows)}</svg>'
    )


def write_report(output: Path, path: str | Path) -> None:
    """An offline HTML page: code distribution and gap-flag rates per section and per day."""
    import pandas as pd

    results = pd.read_parquet(output / "results", columns=["note_id", "note_date", "error"])
    codes = pd.read_parquet(output / "codes", columns=["note_id", "code"])
    flags = pd.read_parquet(output / "flags", columns=["note_id", "flag", "section"])
    notes = len(results)
    summary = json.loads((output / "summary.json").read_text(encoding="utf-8"))
    parts = [
        "<h1>notecoder batch report</h1>",
        f"<p>{notes} notes, {summary['errors']} errors, {summary['codes']} codes, "
        f"{summary['flags']} flags.</p>",
        _bars(
            "Most frequent codes (notes)", codes.drop_duplicates()["code"].value_counts().head(25)
        ),
        _bars(
            "Gap-flag rate (% of notes)",
            flags.drop_duplicates(["note_id", "flag"])["flag"].value_counts() / notes * 100,
            "{:.1f}%",
        ),
    ]
    by_section = flags.assign(section=flags["section"].fillna("(no section)"))
    for section, group in by_section.groupby("section"):
        rate = group.drop_duplicates(["note_id", "flag"])["flag"].value_counts() / notes * 100
        parts.append(_bars(f"Gap-flag rate, evidence in {section} (% of notes)", rate, "{:.1f}%"))
    dated = results.dropna(subset=["note_date"])
    if not dated.empty:
        per_day = dated.groupby("note_date")["note_id"].count()
        flagged = flags.merge(dated[["note_id", "note_date"]], on="note_id")
        day_rate = (
            flagged.drop_duplicates(["note_id"]).groupby("note_date")["note_id"].count()
            / per_day
            * 100
        ).fillna(0)
        parts.append(
            _bars("Notes with any gap flag, per day (%)", day_rate.sort_index(), "{:.1f}%")
        )
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>notecoder batch report'
        "</title><style>body{font-family:sans-serif;margin:2em}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    Path(path).write_text(page, encoding="utf-8")
