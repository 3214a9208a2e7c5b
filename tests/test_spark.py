"""``notecoder.spark``: the same five tables as ``notecoder batch``, error rows, inputs, CLI.

One local[2] SparkSession serves the whole module; its Python workers are this
interpreter (so they import this checkout's notecoder) and each builds the
pipeline once, then keeps it across tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from notecoder import batch, cli
from notecoder import spark as nspark
from notecoder.batch import TABLES, BatchOptions, code_chunk, run_batch, table_schemas
from notecoder.errors import OutputError, SourceError
from tests.conftest import shared_corpus

N_NOTES = 300

# PySpark 4 warns about pandas 3 on every conversion; the tables are compared through Arrow.
pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning",
    "ignore:The copy keyword is deprecated",
)


@pytest.fixture(scope="module")
def notes() -> list[dict[str, Any]]:
    with shared_corpus("mtsamples_all.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(N_NOTES), f, strict=False)]


@pytest.fixture(autouse=True)
def shared_pipeline(nlp, monkeypatch):
    """In-process reference runs reuse the session's pipeline instead of building their own."""
    monkeypatch.setattr(batch, "_NLP", nlp)


def normalized(table: str, frame: pa.Table | pd.DataFrame | list[dict]) -> pd.DataFrame:
    """A table in batch's Arrow schema as pandas, rows in a fixed order, for exact comparison."""
    schema = table_schemas()[table]
    if isinstance(frame, list):
        arrow = pa.Table.from_pylist(frame, schema=schema)
    elif isinstance(frame, pd.DataFrame):
        arrow = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    else:
        arrow = frame.select(schema.names).cast(schema)
    rows = arrow.to_pylist()
    rows.sort(key=lambda r: json.dumps(list(r.values()), default=str))
    return pa.Table.from_pylist(rows, schema=schema).to_pandas()


def spark_table(frame: Any, table: str) -> pd.DataFrame:
    return normalized(table, frame.toArrow())


def assert_same(table: str, got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == table_schemas()[table].names
    pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=table)


def test_same_tables_as_batch(spark, notes):
    frame = pd.DataFrame(
        {"note_id": [n["id"] for n in notes], "note_text": [n["text"] for n in notes]}
    )
    tables = nspark.annotate_all(spark.createDataFrame(frame))
    reference = code_chunk([(n["id"], n["text"], None) for n in notes], "outpatient", 60.0)
    try:
        for table in TABLES:
            assert_same(
                table, spark_table(tables[table], table), normalized(table, reference[table])
            )
        assert tables["results"].count() == N_NOTES
        assert tables["results"].where(F.col("error").isNotNull()).count() == 0
        assert sum(len(r["codes"]) for r in reference["results"]) > 0  # a real comparison
        assert tables["codes"].count() == len(reference["codes"]) > 0
    finally:
        tables.unpersist()


def test_one_table_and_inpatient(spark, notes):
    subset = notes[:30]
    df = spark.createDataFrame(
        [(int(n["id"].split("-")[1]), n["text"]) for n in subset], "doc long, body string"
    )
    codes = nspark.annotate(df, "doc", "body", setting="inpatient", table="codes")
    rows = [(n["id"].split("-")[1], n["text"], None) for n in subset]  # ids read as text
    expected = code_chunk(rows, "inpatient", 60.0)["codes"]
    assert_same("codes", spark_table(codes, "codes"), normalized("codes", expected))
    with pytest.raises(ValueError, match="unknown setting"):
        nspark.annotate(df, "doc", "body", setting="emergency")
    with pytest.raises(ValueError, match="no column"):
        nspark.annotate(df, "doc", "text")


def test_an_assembled_model_folder_is_loaded_on_the_executors(spark, notes, built_model):
    """The cluster route: --model names the assembled pipeline (`notecoder build`'s folder)."""
    model = built_model
    df = spark.createDataFrame(
        [(n["id"], n["text"]) for n in notes[:20]], "note_id string, note_text string"
    )
    rows = nspark.annotate(df, model=str(model), partitions=2).toArrow().to_pylist()
    assert len(rows) == 20 and all(r["error"] is None for r in rows)
    broken = nspark.annotate(df.limit(1), model=str(model / "missing"), partitions=1)
    with pytest.raises(Exception, match="no pipeline at"):  # a bad --model fails loudly
        broken.collect()
    rows = nspark.annotate(df.limit(2), partitions=2).toArrow().to_pylist()  # back to default
    assert all(r["error"] is None for r in rows)


def test_note_dates_are_carried_as_iso_text(spark):
    df = spark.createDataFrame(
        [("d1", "Lumbar stenosis.", "2024-03-05"), ("d2", "Neck pain.", None)],
        "note_id string, note_text string, note_date string",
    ).withColumn("note_date", F.to_date("note_date"))
    rows = nspark.annotate(df, date_col="note_date").toArrow().to_pylist()
    assert {r["note_id"]: r["note_date"] for r in rows} == {"d1": "2024-03-05", "d2": None}


def test_bad_values_become_error_rows(spark):
    ok = "Assessment: discitis at T12-L1."
    binary = spark.createDataFrame(
        [
            ("ok", ok.encode()),
            ("none", None),
            ("latin1", "Lésion T12".encode("latin-1")),
            (None, b"x"),
        ],
        "note_id string, note_text binary",
    )
    as_string = binary.withColumn("note_text", F.col("note_text").cast("string"))  # bad UTF-8 kept
    numbers = spark.createDataFrame([("n1", 42), ("n2", None)], "note_id string, note_text long")
    every: list[dict] = []
    for df in (binary, as_string, numbers):
        results = nspark.annotate(df).toArrow().to_pylist()
        assert len(results) == df.count()
        every.extend(results)
    got = {r["note_id"]: r for r in every}
    assert got["ok"]["error"] is None and got["ok"]["codes"] == ["M46.45"]
    assert got["none"]["error"] == "note text is missing, not text"
    assert got["latin1"]["error"] == "note text is not UTF-8"
    assert got["n1"]["error"] == "note text is int, not text"
    assert got["n2"]["error"] == "note text is missing, not text"
    missing = [r for r in every if r["error"] == "missing note id"]
    assert len(missing) == 2 and all(r["note_id"].startswith("partition ") for r in missing)
    for row in every:
        if row["error"]:
            assert row["codes"] == [] and json.loads(row["result"])["error"] == row["error"]


def test_repeated_ids_code_the_first_and_report_the_others(spark):
    rows = [("a", "Low back pain."), ("b", "Neck pain."), ("a", "Neck pain."), ("a", "Neck pain.")]
    df = spark.createDataFrame(rows, "note_id string, note_text string").repartition(1)
    results = nspark.annotate(df).toArrow().to_pylist()
    repeat = "duplicate note id: an earlier note of the input has it too; not coded"
    assert sorted((r["note_id"], r["error"] or "") for r in results) == [
        ("a", ""),
        ("a", repeat),
        ("a", repeat),
        ("b", ""),
    ]
    first = next(r for r in results if r["note_id"] == "a" and r["error"] is None)
    assert first["codes"] == ["M54.50"]  # the first in input order is the one coded


def test_note_raising_in_the_pipeline_becomes_an_error_row(spark, notes):
    """A note that outlasts --timeout: the alarm raises inside the pipeline, on an executor."""
    huge = "\n\n".join(n["text"] for n in notes)[:900_000]  # under MAX_NOTE_CHARS, seconds to code
    df = spark.createDataFrame(
        [
            ("before", "Assessment: discitis at T12-L1."),
            ("huge", huge),
            ("after", "Lumbar stenosis."),
        ],
        "note_id string, note_text string",
    )
    rows = nspark.annotate(df, timeout=0.5, partitions=1).toArrow().to_pylist()
    results = {r["note_id"]: r for r in rows}
    assert len(rows) == 3
    assert results["huge"]["error"] == "timeout after 0.5 s"
    assert results["huge"]["codes"] == []
    assert results["before"]["error"] is None and results["before"]["codes"]
    assert results["after"]["error"] is None


def write_delta(root: Path, frames: list[pd.DataFrame]) -> None:
    """A Delta table folder by hand: files 0..n-1 added at version 0, file 0 removed at 1."""
    (root / "_delta_log").mkdir(parents=True)
    names = [f"part-{i:05d}.snappy.parquet" for i in range(len(frames))]
    for name, frame in zip(names, frames, strict=True):
        frame.to_parquet(root / name, index=False)
    schema = {"type": "struct", "fields": [{"name": c, "type": "string"} for c in frames[0]]}
    commit0 = [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {"metaData": {"id": "t", "format": {"provider": "parquet"}, "partitionColumns": [],
                      "schemaString": json.dumps(schema)}},
        *[{"add": {"path": n, "size": 1, "dataChange": True}} for n in names],
    ]  # fmt: skip
    commit1 = [{"remove": {"path": names[0], "dataChange": True}}]
    for version, actions in enumerate([commit0, commit1]):
        lines = "".join(json.dumps(a) + "\n" for a in actions)
        (root / "_delta_log" / f"{version:020d}.json").write_text(lines)


def test_cli_on_a_delta_folder_matches_batch(spark, notes, tmp_path):
    subset = notes[:45]
    frames = [
        pd.DataFrame({"id": [n["id"] for n in part], "text": [n["text"] for n in part]})
        for part in (subset[:15], subset[15:30], subset[30:])
    ]
    write_delta(tmp_path / "delta", frames)
    assert nspark.read_notes(spark, str(tmp_path / "delta")).count() == 30  # removed file unread

    parser = argparse.ArgumentParser()
    cli.add_spark_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    args = parser.parse_args(["spark", str(tmp_path / "delta"), str(out), "--partitions", "3"])
    assert nspark.spark_command(args) == 0
    with pytest.raises(OutputError, match=r"\[E052\].* results, codes, flags, entities"):
        nspark.spark_command(args)  # a second run does not overwrite without --overwrite

    active = pd.concat(frames[1:], ignore_index=True)
    active.to_parquet(tmp_path / "in.parquet", index=False)
    from notecoder.io.sources import iter_notes

    options = BatchOptions(output=tmp_path / "batch", workers=1, progress=False, chunk_size=7)
    summary = run_batch(iter_notes(tmp_path / "in.parquet"), options)
    for table in TABLES:
        got = normalized(table, pq.read_table(out / table))
        expected = normalized(table, pq.read_table(tmp_path / "batch" / table))
        assert_same(table, got, expected)
    written = json.loads((out / "summary.json").read_text())
    for key in ("notes", "errors", "codes", "flags", "top_codes", "flag_counts"):
        assert written[key] == summary[key], key


def test_cli_reads_a_metastore_table_and_writes_one_table(spark, notes, tmp_path):
    spark.createDataFrame(
        [(n["id"], n["text"]) for n in notes[:10]], "note_id string, note_text string"
    ).write.saveAsTable("note")
    parser = argparse.ArgumentParser()
    cli.add_spark_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    args = parser.parse_args(["spark", "note", str(out), "--table", "flags"])
    assert nspark.spark_command(args) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "flags",
        "summary.json",
    ]
    assert json.loads((out / "summary.json").read_text())["notes"] == 10
    missing = parser.parse_args(["spark", "no_such_table", str(tmp_path / "x")])
    with pytest.raises(SourceError, match=r"\[E054\].*: no_such_table$"):
        nspark.spark_command(missing)


def test_spark_schema_follows_batch():
    for table in TABLES:
        schema = nspark.spark_schema(table)
        assert schema.names == table_schemas()[table].names


# -- user errors: one line on stderr, exit 2, before Spark starts when this machine can tell --
def synthetic_parquet(path: Path) -> Path:
    pq.write_table(pa.table({"note_id": ["s1"], "note_text": ["Lumbar stenosis."]}), path)
    return path


def only_line(err: str) -> str:
    """The one line a failing command may print, checked to be one and free of any stack."""
    assert "Traceback" not in err and "at org.apache" not in err and "py4j" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("notecoder spark: "), err
    return lines[0]


@pytest.fixture
def no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test (exit 1, internal error) if the command asks for a Spark session."""

    def started(master: str | None) -> None:
        raise AssertionError("a Spark session was asked for")

    monkeypatch.setattr(nspark, "_session", started)


def _case_missing(tmp_path: Path) -> list[str]:
    return [str(tmp_path / "missing.parquet"), str(tmp_path / "out")]


def _case_csv(tmp_path: Path) -> list[str]:
    (tmp_path / "notes.csv").write_text("note_id,note_text\ns1,Lumbar stenosis.\n")
    return [str(tmp_path / "notes.csv"), str(tmp_path / "out")]


def _case_jsonl(tmp_path: Path) -> list[str]:
    (tmp_path / "notes.jsonl").write_text('{"id": "s1", "text": "Lumbar stenosis."}\n')
    return [str(tmp_path / "notes.jsonl"), str(tmp_path / "out")]


def _case_empty_parquet(tmp_path: Path) -> list[str]:
    (tmp_path / "notes.parquet").touch()
    return [str(tmp_path / "notes.parquet"), str(tmp_path / "out")]


def _case_folder_without_parquet(tmp_path: Path) -> list[str]:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "s1.txt").write_text("Lumbar stenosis.")
    (tmp_path / "notes" / "_SUCCESS").touch()
    return [str(tmp_path / "notes"), str(tmp_path / "out")]


def _case_output_is_a_file(tmp_path: Path) -> list[str]:
    (tmp_path / "out").write_text("")
    return [str(synthetic_parquet(tmp_path / "in.parquet")), str(tmp_path / "out")]


def _case_output_has_tables(tmp_path: Path) -> list[str]:
    for table in ("results", "flags"):
        (tmp_path / "out" / table).mkdir(parents=True)
    inputs = [str(synthetic_parquet(tmp_path / "in.parquet")), str(tmp_path / "out")]
    return [*inputs, "--table", "flags", "--table", "codes"]


def _case_missing_model(tmp_path: Path) -> list[str]:
    inputs = [str(synthetic_parquet(tmp_path / "in.parquet")), str(tmp_path / "out")]
    return [*inputs, "--model", str(tmp_path / "no_model")]


USER_ERRORS: list[tuple[Callable[[Path], list[str]], str]] = [
    (_case_missing, r"\[E001\] no such file or folder: .*missing\.parquet$"),
    (_case_csv, r"\[E050\] .*notes\.csv is a \.csv file: .*use `notecoder batch`"),
    (_case_jsonl, r"\[E050\] .*notes\.jsonl is a \.jsonl file: .*use `notecoder batch`"),
    (_case_empty_parquet, r"\[E008\] .*notes\.parquet is not a Parquet file: it is empty"),
    (_case_folder_without_parquet, r"\[E050\] .*notes is a folder with no Parquet file"),
    (_case_output_is_a_file, r"\[E051\] output .*out is a file"),
    (_case_output_has_tables, r"\[E052\] .*out already has flags \(use --overwrite"),
    (_case_missing_model, r"\[E022\] no pipeline at .*no_model"),
]


@pytest.mark.parametrize("entry", ["notecoder", "notecoder.spark"])
@pytest.mark.parametrize(
    ("case", "expected"), USER_ERRORS, ids=[c.__name__[len("_case_") :] for c, _ in USER_ERRORS]
)
def test_a_user_error_is_one_line_before_any_session(
    case, expected, entry, tmp_path, no_session, capsys
):
    argv = case(tmp_path)
    active = SparkSession.getActiveSession()
    status = cli.main(["spark", *argv]) if entry == "notecoder" else nspark.main(argv)
    assert SparkSession.getActiveSession() is active
    line = only_line(capsys.readouterr().err)
    assert status == 2, line
    assert re.search(expected, line), line
    assert not (tmp_path / "out" / "summary.json").exists()


class _Started(Exception):
    """The command got past its checks and asked for a session."""


def test_parquet_without_the_suffix_and_delta_folders_pass_the_checks(tmp_path, monkeypatch):
    def started(master: str | None) -> None:
        raise _Started

    monkeypatch.setattr(nspark, "_session", started)
    hive = tmp_path / "hive"  # Hive names its Parquet files 000000_0
    (hive / "year=2024").mkdir(parents=True)
    synthetic_parquet(hive / "year=2024" / "000000_0")
    (hive / "_SUCCESS").touch()
    delta = tmp_path / "delta"
    (delta / "_delta_log").mkdir(parents=True)
    inputs = [
        str(synthetic_parquet(tmp_path / "notes")),
        str(hive),
        f"file://{hive}/year=2024/000000_0",  # as Hadoop reads it: not percent-encoded
        str(delta),
        "omop.note",  # a metastore table: only the session can tell
        str(tmp_path / "part-*.parquet"),  # a glob: Spark expands it
        "s3a://bucket/notes/",
    ]
    parser = argparse.ArgumentParser()
    cli.add_spark_parser(parser.add_subparsers(dest="command"))
    for source in inputs:
        with pytest.raises(_Started):
            nspark.spark_command(parser.parse_args(["spark", source, str(tmp_path / "out")]))


def test_paths_spark_resolves_elsewhere_are_left_to_it(tmp_path, monkeypatch):
    assert nspark._local_path("file:///data/notes.parquet", here=False) == Path(
        "/data/notes.parquet"
    )
    assert nspark._local_path("/data/notes.parquet", here=True) == Path("/data/notes.parquet")
    assert nspark._local_path("/data/notes.parquet", here=False) is None
    for location in ("hdfs://nn/notes", "s3a://b/notes", "dbfs:/notes", "/data/*.parquet"):
        assert nspark._local_path(location, here=True) is None
    monkeypatch.setattr(SparkSession, "getActiveSession", staticmethod(lambda: None))
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert nspark._runs_here(None) and nspark._runs_here("local[4]")
    assert not nspark._runs_here("yarn")
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "1")  # spark-submit: the master is the JVM's
    assert not nspark._runs_here(None)


def test_a_file_spark_cannot_read_is_one_line(spark, tmp_path, capsys):
    fake = tmp_path / "notes.parquet"
    fake.write_text("note_id,note_text\ns1,Lumbar stenosis.\n")  # CSV text, Parquet name
    status = cli.main(["spark", str(fake), str(tmp_path / "out")])
    line = only_line(capsys.readouterr().err)
    assert status == 2, line
    assert line.startswith(f"notecoder spark: [E053] cannot read {fake}: [FAILED_READ_FILE")
    assert len(line.split(f"{fake}: ", 1)[1]) <= 200  # Spark's first line, cut short
    status = cli.main(["spark", "no_such_table", str(tmp_path / "out")])
    assert status == 2
    assert only_line(capsys.readouterr().err).endswith(
        "[E054] no such file, folder or metastore table: no_such_table"
    )
    (tmp_path / "delta" / "_delta_log").mkdir(parents=True)
    (tmp_path / "delta" / "_delta_log" / f"{0:020d}.json").write_text("{not json\n")
    status = cli.main(["spark", str(tmp_path / "delta"), str(tmp_path / "out")])
    assert status == 2
    assert re.search(
        r"\[E008\] .*00000000000000000000\.json is not a Delta log file: line 1: ",
        only_line(capsys.readouterr().err),
    )


def test_quiet_logs_puts_the_levels_back(spark):
    jvm = spark.sparkContext._jvm
    spark_logging = getattr(getattr(jvm.org.apache.spark.internal, "Logging$"), "MODULE$")

    def levels() -> tuple[str, Any]:
        root = jvm.org.apache.logging.log4j.LogManager.getRootLogger().getLevel().name()
        return root, spark_logging.sparkShellThresholdLevel()

    before = levels()
    with nspark._quiet_logs(spark):
        assert levels()[0] == "FATAL"
    assert levels() == before


def test_a_fresh_session_prints_no_java_stack_for_a_bad_input(tmp_path):
    """What a user sees: the command's own session logs no stack for an input Spark refuses.

    A process of its own: the JVM writes to its own stderr, which no capture of
    this process sees, and the command must create the session to quiet it.
    """
    fake = tmp_path / "notes.parquet"
    fake.write_text("note_id,note_text\ns1,Lumbar stenosis.\n")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    command = ["-m", "notecoder.spark", str(fake), str(tmp_path / "out"), "--master", "local[1]"]
    run = subprocess.run(
        [sys.executable, *command], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "at org.apache" not in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    last = run.stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("notecoder spark: [E053] cannot read"), run.stderr[-2000:]
