"""``notecoder.spark``: the same five tables as ``notecoder batch``, error rows, inputs, CLI.

One local[2] SparkSession serves the whole module; its Python workers are this
interpreter (so they import this checkout's notecoder) and each builds the
pipeline once, then keeps it across tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from notecoder import batch
from notecoder import spark as nspark
from notecoder.batch import TABLES, BatchOptions, code_chunk, run_batch, table_schemas
from tests.conftest import SHARED

CORPUS = SHARED / "corpora" / "mtsamples_all.jsonl"
N_NOTES = 300

# PySpark 4 warns about pandas 3 on every conversion; the tables are compared through Arrow.
pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning",
    "ignore:The copy keyword is deprecated",
)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors import the editable notecoder
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    warehouse = tmp_path_factory.mktemp("warehouse")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("notecoder-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={warehouse}")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def notes() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as f:
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


def test_an_assembled_model_folder_is_loaded_on_the_executors(spark, notes):
    """The cluster route: --model names the assembled pipeline (models/spine in the repo)."""
    model = Path(__file__).resolve().parents[1] / "models" / "spine"
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
    nspark.add_spark_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    args = parser.parse_args(["spark", str(tmp_path / "delta"), str(out), "--partitions", "3"])
    assert nspark.spark_command(args) == 0
    assert nspark.spark_command(args) == 2  # a second run does not overwrite without --overwrite

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
    nspark.add_spark_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    args = parser.parse_args(["spark", "note", str(out), "--table", "flags"])
    assert nspark.spark_command(args) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "flags",
        "summary.json",
    ]
    assert json.loads((out / "summary.json").read_text())["notes"] == 10
    missing = parser.parse_args(["spark", "no_such_table", str(tmp_path / "x")])
    assert nspark.spark_command(missing) == 2


def test_spark_schema_follows_batch():
    for table in TABLES:
        schema = nspark.spark_schema(table)
        assert schema.names == table_schemas()[table].names
