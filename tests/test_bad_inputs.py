"""Every command over a catalogue of bad inputs: one clear line, the right exit, no note lost.

Each case is a small file (or a missing one, or an output in the way) built in
a temporary folder. For each command the table says what must happen: the
exit status, the start of the one stderr line when it fails, and for batch,
evaluate and spark which notes must be coded (or scored) and which must be
error rows. spark reads Parquet only: the catalogue's files are refused before
its session starts, and the cases about notes are also run as Parquet through a
session. Every note text holds ``MARKER``, which must never appear on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from notecoder import batch
from notecoder.cli import main

MARKER = "Zebrafinch"
NOTE = f"{MARKER} reports low back pain."


def _jsonl(*objects: dict) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def _notes(*ids: str) -> bytes:
    """Notes as batch reads them and as gold (the codes a coder gave them)."""
    return _jsonl(*({"id": i, "text": NOTE, "codes": ["M54.50"]} for i in ids))


#: name -> (file name, content: bytes, a folder (None), or missing ("missing")).
CASES: dict[str, tuple[str, bytes | str | None]] = {
    "missing": ("notes.jsonl", "missing"),
    "directory": ("folder", None),
    "empty": ("notes.jsonl", b"\n  \n"),
    "0-byte": ("notes.jsonl", b""),
    "header-only CSV": ("notes.csv", b"note_id,note_text\n"),
    "binary": ("notes.jsonl", bytes(range(256)) * 8),
    "latin-1": (
        "notes.jsonl",
        _notes("a") + _jsonl({"id": "b", "text": NOTE + " Caf\u00e9"}).replace(b"\\u00e9", b"\xe9"),
    ),
    "truncated JSONL line": ("notes.jsonl", _notes("a", "b") + _notes("c")[:25]),
    "5 MB line": (
        "notes.jsonl",
        _notes("a") + _jsonl({"id": "big", "text": NOTE * 200_000, "codes": []}),
    ),
    "duplicate ids": ("notes.jsonl", _notes("a", "b", "a")),
    "wrong columns": ("notes.jsonl", _jsonl({"doc": "a", "body": NOTE})),
}


def make(case: str, folder: Path) -> Path:
    name, content = CASES[case]
    path = folder / name
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_bytes(content)
    return path


def check_failure(code: int, err: str, command: str, expected: int, starts: str) -> None:
    assert code == expected, err
    assert err.count("\n") == 1 and err.endswith("\n"), err  # one line
    assert err.startswith(f"notecoder {command}: {starts}"), err
    assert "Traceback" not in err and MARKER not in err


# -- suggest -----------------------------------------------------------------------------
#: case -> (exit, start of the stderr line; None: success, nothing on stderr)
SUGGEST = {
    "missing": (2, "{path}: No such file or directory"),
    "directory": (2, "{path}: Is a directory"),
    "empty": (0, None),
    "0-byte": (0, None),
    "header-only CSV": (0, None),
    "binary": (2, "note is not UTF-8 text"),
    "latin-1": (2, "note is not UTF-8 text"),
    "truncated JSONL line": (0, None),
    "5 MB line": (2, "note too long"),
    "duplicate ids": (0, None),
    "wrong columns": (0, None),
}


@pytest.mark.parametrize("case", list(SUGGEST))
def test_suggest(case, tmp_path, capsys, nlp, monkeypatch):
    monkeypatch.setattr("notecoder.api._nlp", nlp)
    path = make(case, tmp_path)
    code = main(["suggest", str(path)])
    out, err = capsys.readouterr()
    expected, starts = SUGGEST[case]
    if starts is None:
        assert (code, err) == (0, "")
        assert json.loads(out)["error"] is None
    else:
        check_failure(code, err, "suggest", expected, starts.format(path=path))
        if path.is_file():  # a note was read: its result (with the error) is still printed
            assert json.loads(out)["error"] == err.split(": ", 1)[1].strip()


# -- batch -------------------------------------------------------------------------------
#: case -> (exit, start of the stderr line, coded note ids, ids of the error rows in input
#: order; None: every line is one)
BATCH: dict[str, tuple[int, str | None, list[str], list[str] | None]] = {
    "missing": (2, "[E001] no such file or folder: {path}", [], []),
    "directory": (0, None, [], []),  # a folder of .txt notes, with none in it
    "empty": (0, None, [], []),
    "0-byte": (0, None, [], []),
    "header-only CSV": (0, None, [], []),
    "binary": (0, None, [], None),
    "latin-1": (0, None, ["a"], ["b"]),
    "truncated JSONL line": (0, None, ["a", "b"], ["notes.jsonl:3"]),
    "5 MB line": (0, None, ["a"], ["big"]),
    "duplicate ids": (0, None, ["a", "b"], ["a"]),
    "wrong columns": (2, "[E005] no id column (note_id or id); the columns are", [], []),
}


@pytest.fixture
def shared_pipeline(nlp, monkeypatch):
    """In-process runs reuse the session's pipeline instead of building their own."""
    monkeypatch.setattr(batch, "_NLP", nlp)


def run_batch_cli(path: Path, out: Path, *extra: str) -> int:
    return main(["batch", str(path), "--output", str(out), "--workers", "1", *extra])


@pytest.mark.parametrize("case", list(BATCH))
def test_batch(case, tmp_path, capsys, shared_pipeline):
    path = make(case, tmp_path)
    out = tmp_path / "out"
    code = run_batch_cli(path, out)
    stdout, err = capsys.readouterr()
    expected, starts, coded, errors = BATCH[case]
    if starts is not None:
        check_failure(code, err, "batch", expected, starts.format(path=path))
        assert not out.exists()  # nothing created for an input that cannot be read
        return
    assert code == 0, err
    assert MARKER not in err
    results = pd.read_parquet(out / "results")  # in input order
    assert list(results.loc[results["error"].isna(), "note_id"]) == coded
    if errors is None:
        assert len(results) > 8 and results["error"].notna().all()
    else:
        assert list(results.loc[results["error"].notna(), "note_id"]) == errors
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes"] == len(results) and summary["errors"] == len(results) - len(coded)
    assert stdout.startswith(f"{len(results)} notes, {summary['errors']} errors")


@pytest.mark.parametrize(
    "output, starts",
    [
        (lambda d: d / "file", "[E010] --output {out} is a file; give a folder"),
        (lambda d: d / "file" / "out", "{out}: Not a directory"),
        (lambda d: Path("/sys/notecoder-out"), "{out}: "),  # unwritable, even for root
    ],
    ids=["output is a file", "output under a file", "unwritable output"],
)
def test_batch_output_in_the_way(
    output: Callable[[Path], Path], starts, tmp_path, capsys, shared_pipeline
):
    (tmp_path / "file").write_text("not a folder")
    path = make("duplicate ids", tmp_path)
    out = output(tmp_path)
    code = run_batch_cli(path, out)
    check_failure(code, capsys.readouterr().err, "batch", 2, starts.format(out=out))


# -- evaluate ----------------------------------------------------------------------------
#: case -> (exit, start of the stderr line, ids of the notes scored (in --write-pred))
EVALUATE: dict[str, tuple[int, str | None, list[str]]] = {
    "missing": (2, "[E001] no such file or folder: {path}", []),
    "directory": (2, "[E042] {path} is a folder with no .jsonl or .ann files", []),
    "empty": (2, "[E040] no gold notes in {path}: 2 lines read, 2 blank", []),
    "0-byte": (2, "[E040] no gold notes in {path}: 0 lines read, the file is empty", []),
    "header-only CSV": (2, "[E040] no gold notes in {path}: 1 lines read, 1 bad JSON", []),
    "binary": (2, "[E040] no gold notes in {path}: ", []),
    "latin-1": (0, None, ["a", "b"]),  # one byte replaced: the note is still gold
    "truncated JSONL line": (0, None, ["a", "b"]),
    "5 MB line": (0, None, ["a", "big"]),  # predicted as an error ("note too long"), scored
    "duplicate ids": (0, None, ["a", "b"]),  # the repeat is reported and not scored
    "wrong columns": (2, "[E040] no gold notes in {path}: 1 lines read, 1 missing 'id'", []),
}


@pytest.mark.parametrize("case", list(EVALUATE))
def test_evaluate(case, tmp_path, capsys, nlp, monkeypatch):
    monkeypatch.setattr("notecoder.api._nlp", nlp)
    path = make(case, tmp_path)
    pred = tmp_path / "pred.jsonl"
    code = main(["evaluate", str(path), "--bootstrap", "0", "--write-pred", str(pred)])
    stdout, err = capsys.readouterr()
    expected, starts, scored = EVALUATE[case]
    if starts is not None:
        check_failure(code, err, "evaluate", expected, starts.format(path=path))
        assert not pred.exists()  # refused before the pipeline ran
        return
    assert code == 0, err
    assert MARKER not in err and "Codes" in stdout
    assert [json.loads(line)["note_id"] for line in pred.open()] == scored


@pytest.mark.parametrize(
    "html, starts",
    [
        (lambda d: d / "file" / "report.html", "{html}: Not a directory"),
        (lambda d: Path("/sys/notecoder-report.html"), "{html}: "),
    ],
    ids=["output under a file", "unwritable output"],
)
def test_evaluate_output_in_the_way(html, starts, tmp_path, capsys, nlp, monkeypatch):
    monkeypatch.setattr("notecoder.api._nlp", nlp)
    (tmp_path / "file").write_text("not a folder")
    path = make("duplicate ids", tmp_path)
    code = main(["evaluate", str(path), "--bootstrap", "0", "--html", str(html(tmp_path))])
    check_failure(code, capsys.readouterr().err, "evaluate", 2, starts.format(html=html(tmp_path)))


def test_batch_missing_sqlite_file_is_not_created(tmp_path, capsys, shared_pipeline):
    db = tmp_path / "omop.db"
    code = main(["batch", "--db", str(db), "--output", str(tmp_path / "out")])
    check_failure(code, capsys.readouterr().err, "batch", 2, f"[E001] no such file or folder: {db}")
    assert not db.exists() and not (tmp_path / "out").exists()


# -- spark -------------------------------------------------------------------------------
#: The catalogue's files are JSONL and CSV (or missing, or a folder), which spark does not
#: read: each is refused before a Spark session starts. case -> start of the line.
SPARK_FILES = {
    "missing": "[E001] no such file or folder: {path}",
    "directory": "[E050] {path} is a folder with no Parquet file and no _delta_log",
    "empty": "[E050] {path} is a .jsonl file: notecoder spark reads Parquet",
    "0-byte": "[E050] {path} is a .jsonl file",
    "header-only CSV": "[E050] {path} is a .csv file",
    "binary": "[E050] {path} is a .jsonl file",
    "latin-1": "[E050] {path} is a .jsonl file",
    "truncated JSONL line": "[E050] {path} is a .jsonl file",
    "5 MB line": "[E050] {path} is a .jsonl file",
    "duplicate ids": "[E050] {path} is a .jsonl file",
    "wrong columns": "[E050] {path} is a .jsonl file",
}


@pytest.mark.parametrize("case", list(SPARK_FILES))
def test_spark_refuses_before_its_session(case, tmp_path, capsys, monkeypatch):
    from notecoder import spark

    def no_session(master):
        raise AssertionError("a Spark session was started")

    monkeypatch.setattr(spark, "_session", no_session)
    path = make(case, tmp_path)
    code = main(["spark", str(path), str(tmp_path / "out")])
    check_failure(code, capsys.readouterr().err, "spark", 2, SPARK_FILES[case].format(path=path))
    assert not (tmp_path / "out").exists()


def _parquet(path: Path, ids: list, texts: list, id_col: str = "note_id") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    text_type = pa.binary() if any(isinstance(t, bytes) for t in texts) else pa.string()
    columns = {id_col: pa.array(ids, pa.string()), "note_text": pa.array(texts, text_type)}
    pq.write_table(pa.table(columns), path)
    return path


#: The catalogue's cases that are about notes, as Parquet, coded by a Spark session:
#: case -> (input, exit, start of the line, coded ids, ids of error rows).
SPARK_NOTES: dict[str, tuple[Callable[[Path], Path], int, str | None, list[str], list[str]]] = {
    "binary": (
        lambda d: _written(d / "notes.parquet", bytes(range(256)) * 8),
        2,
        "[E053] cannot read {path}: ",
        [],
        [],
    ),
    "truncated": (
        lambda d: _truncated(_parquet(d / "notes.parquet", ["a"], [NOTE])),
        2,
        "[E053] cannot read {path}: ",
        [],
        [],
    ),
    "latin-1": (
        lambda d: _parquet(d / "notes.parquet", ["a", "b"], [NOTE.encode(), b"Caf\xe9"]),
        0,
        None,
        ["a"],
        ["b"],
    ),
    "5 MB note": (
        lambda d: _parquet(d / "notes.parquet", ["a", "big"], [NOTE, NOTE * 200_000]),
        0,
        None,
        ["a"],
        ["big"],
    ),
    "duplicate ids": (
        lambda d: _parquet(d / "notes.parquet", ["a", "b", "a"], [NOTE] * 3),
        0,
        None,
        ["a", "b"],
        ["a"],
    ),
    "wrong columns": (
        lambda d: _parquet(d / "notes.parquet", ["a"], [NOTE], id_col="doc"),
        2,
        "[E005] no id column (note_id or id); the columns are ['doc', 'note_text']",
        [],
        [],
    ),
}


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _truncated(path: Path) -> Path:
    return _written(path, path.read_bytes()[:40])


@pytest.mark.parametrize("case", list(SPARK_NOTES))
def test_spark_notes(case, spark, tmp_path, capsys, shared_pipeline):
    build, expected, starts, coded, errors = SPARK_NOTES[case]
    path = build(tmp_path)
    out = tmp_path / "out"
    code = main(["spark", str(path), str(out)])
    stdout, err = capsys.readouterr()
    if starts is not None:
        check_failure(code, err, "spark", expected, starts.format(path=path))
        assert not out.exists()
        return
    assert code == 0, err
    assert MARKER not in err
    results = pd.read_parquet(out / "results")
    assert sorted(results.loc[results["error"].isna(), "note_id"]) == coded
    assert sorted(results.loc[results["error"].notna(), "note_id"]) == errors
    assert stdout.startswith(f"{len(coded) + len(errors)} notes, {len(errors)} errors")
