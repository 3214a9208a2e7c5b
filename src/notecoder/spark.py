"""notecoder on Apache Spark: the tables of ``notecoder batch``, coded on the executors.

``annotate_all(df)`` codes every note of a DataFrame once, in one
``mapInArrow`` pass, and splits the coded rows into the five
tables of ``notecoder batch`` (results, codes, flags, entities, note_nlp) with
the same columns and values: every row comes from ``batch.code_chunk``, the
function the batch workers run, so the two cannot drift apart. Arrow rather
than pandas in between: each table is built with batch's own Arrow schema, and
PySpark 4 cannot take pandas 3's Arrow-backed string columns back from
``mapInPandas`` (and warns that it does not support pandas 3 yet). One pass emits
the rows of all five tables tagged with their table name into one wide
intermediate frame, which is persisted, so writing five tables does not run the
pipeline five times.

Each Python worker process builds the pipeline once (``batch.code_chunk`` keeps
it in a module global; Spark reuses Python workers between tasks by default).
A note that cannot be coded is an error row, never a failed task: a null or
non-text value, text that is not UTF-8 (string columns are handed over as bytes
so that Arrow never has to decode bad text), a note that times out or raises in
the pipeline, and even an exception escaping ``code_chunk`` (the chunk is then
coded again note by note). Nothing here logs note text.

``notecoder spark INPUT OUTPUT`` reads Parquet (a file, a folder, a Delta table
folder) or a metastore table and writes one Parquet folder per table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from notecoder.batch import TABLES, code_chunk, print_summary, table_schemas
from notecoder.errors import Errors, OutputError, PipelineLoadError, SourceError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

log = logging.getLogger(__name__)

#: Column of the intermediate frame naming the table a row belongs to.
TABLE_COLUMN = "_table"
#: Notes per ``code_chunk`` call inside a partition: bounds worker memory and
#: how much is coded again note by note if a chunk ever fails as a whole.
CHUNK_NOTES = 100


# -- schemas -------------------------------------------------------------------------
def _spark_type(arrow_type: pa.DataType) -> DataType:
    """The Spark type of one of the (few) Arrow types ``table_schemas()`` uses."""
    import pyarrow as pa
    from pyspark.sql import types as T

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return T.StringType()
    if pa.types.is_int64(arrow_type):
        return T.LongType()
    if pa.types.is_int32(arrow_type):
        return T.IntegerType()
    if pa.types.is_float64(arrow_type):
        return T.DoubleType()
    if pa.types.is_boolean(arrow_type):
        return T.BooleanType()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return T.ArrayType(_spark_type(arrow_type.value_type), True)
    raise TypeError(f"no Spark type for Arrow type {arrow_type}")


def spark_schema(table: str) -> StructType:
    """The Spark schema of one output table, derived from ``batch.table_schemas()``."""
    from pyspark.sql import types as T

    schema = table_schemas()[table]
    return T.StructType([T.StructField(f.name, _spark_type(f.type), nullable=True) for f in schema])


def _wide_columns() -> dict[tuple[str, str], str]:
    """(table, column) -> column of the intermediate frame.

    Columns of the same name and type are shared between tables (note_id,
    code, section...), so the intermediate frame stays narrow; a name used with
    two types gets one column per table.
    """
    types: dict[str, set[str]] = {}
    for schema in table_schemas().values():
        for f in schema:
            types.setdefault(f.name, set()).add(str(f.type))
    return {
        (table, f.name): f.name if len(types[f.name]) == 1 else f"{table}__{f.name}"
        for table, schema in table_schemas().items()
        for f in schema
    }


def _wide_arrow_schema() -> pa.Schema:
    import pyarrow as pa

    fields = {TABLE_COLUMN: pa.field(TABLE_COLUMN, pa.string())}
    for (table, name), column in _wide_columns().items():
        fields.setdefault(column, pa.field(column, table_schemas()[table].field(name).type))
    return pa.schema(list(fields.values()))


def _wide_spark_schema() -> StructType:
    from pyspark.sql import types as T

    return T.StructType(
        [T.StructField(f.name, _spark_type(f.type), nullable=True) for f in _wide_arrow_schema()]
    )


# -- executor side -------------------------------------------------------------------
_loaded_model: str | None = None  # the --model whose pipeline batch holds, if any


def _use_model(model: str | None) -> None:
    """Put the pipeline of ``model`` where ``code_chunk`` looks for it, once per process.

    Without a model ``code_chunk`` builds the default pipeline itself (from the
    checkout's pipelines/). An installed wheel has no pipelines/ beside it, so
    on a cluster the assembled pipeline folder is shipped and named here.
    Python workers are reused across jobs, so a worker that holds another
    model's pipeline drops it first.
    """
    global _loaded_model
    if model == _loaded_model:
        return
    from notecoder import batch

    batch.use_model(model)
    _loaded_model = model


def _input_rows(batch: pa.RecordBatch, where: str, start: int, dated: bool) -> list[tuple]:
    """Batch's rows ``(note_id, text, error[, date])``, checked exactly as batch checks them
    (a repeated id, flagged by ``_coded``, included)."""
    from notecoder.io.sources import DUPLICATE_ID, check_row

    rows: list[tuple] = []
    ids = batch.column("id").to_pylist()
    texts = batch.column("text").to_pylist()
    repeats = batch.column("repeat").to_pylist()
    dates = batch.column("date").to_pylist() if dated else [None] * len(ids)
    for i, (note_id, text, repeat, day) in enumerate(zip(ids, texts, repeats, dates, strict=True)):
        if isinstance(note_id, bytes):  # string ids arrive as bytes too (check_row finds bad ones)
            note_id = note_id.decode("utf-8", errors="surrogateescape")
        row = check_row(note_id, text, f"{where}:row {start + i + 1}")
        if repeat and row[2] is None:
            row = (row[0], None, DUPLICATE_ID.format(first="an earlier note of the input"))
        if day is not None:
            row = (*row[:3], str(day)[:10])
        rows.append(row)
    return rows


def _wide_table(tables: dict[str, list[dict[str, Any]]]) -> pa.Table:
    """The rows of all five tables as one Arrow table of the intermediate schema.

    Each table is first built with its own batch schema, exactly as batch
    writes it, so a value that batch would refuse fails here too.
    """
    import pyarrow as pa

    wide = _wide_arrow_schema()
    columns = _wide_columns()
    parts = []
    for table in TABLES:
        rows = tables[table]
        if not rows:
            continue
        own = pa.Table.from_pylist(rows, schema=table_schemas()[table])
        arrays = []
        for f in wide:
            if f.name == TABLE_COLUMN:
                arrays.append(pa.array([table] * own.num_rows, pa.string()))
                continue
            name = next((n for (t, n), c in columns.items() if t == table and c == f.name), None)
            arrays.append(own.column(name) if name else pa.nulls(own.num_rows, f.type))
        parts.append(pa.Table.from_arrays(arrays, schema=wide))
    return pa.concat_tables(parts) if parts else wide.empty_table()


def _code_rows(rows: list[tuple], setting: str, timeout: float) -> pa.Table:
    """Code rows with ``code_chunk`` (which turns every failing note into an error row)."""
    return _wide_table(code_chunk(rows, setting, timeout))


def _coder(setting: str, timeout: float, model: str | None, dated: bool, chunk: int) -> Any:
    """The ``mapInArrow`` function: input record batches in, intermediate rows out."""

    def code_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        _use_model(model)
        # SIGALRM (code_chunk's per-note timeout) can only be set in the main thread.
        limit = timeout if threading.current_thread() is threading.main_thread() else 0.0
        context = TaskContext.get()
        where = f"partition {context.partitionId() if context else 0}"
        seen = 0
        for batch in batches:
            for begin in range(0, batch.num_rows, chunk):
                part = batch.slice(begin, chunk)
                rows = _input_rows(part, where, seen, dated)
                seen += part.num_rows
                yield from _code_rows(rows, setting, limit).to_batches()

    return code_partition


# -- driver side ---------------------------------------------------------------------
def _coded(
    df: DataFrame,
    id_col: str,
    text_col: str,
    setting: str,
    *,
    date_col: str | None = None,
    partitions: int | None = None,
    timeout: float = 60.0,
    model: str | None = None,
    chunk: int = CHUNK_NOTES,
) -> DataFrame:
    """The intermediate frame: every table's rows, tagged with their table."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from notecoder.api import SETTINGS

    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}: use {' or '.join(SETTINGS)}")
    for column in (id_col, text_col, date_col):
        if column is not None and column not in df.columns:
            raise ValueError(f"no column {column!r}; columns are {df.columns}")

    def handed_over(column: str, alias: str) -> Any:
        # Strings go over as bytes: text that is not valid UTF-8 becomes an error
        # row in Python instead of failing Arrow's conversion for the whole batch.
        is_string = isinstance(df.schema[column].dataType, T.StringType)
        return (F.col(column).cast("binary") if is_string else F.col(column)).alias(alias)

    columns = [handed_over(id_col, "id"), handed_over(text_col, "text")]
    if date_col is not None:
        columns.append(F.col(date_col).alias("date"))
    # A repeated id: the first note with it, in input order, is coded and each later
    # one is an error row, as in batch (one shuffle by id, the notes included).
    order = F.monotonically_increasing_id()
    first = Window.partitionBy("id").orderBy("_order")
    notes = (
        df.select(*columns)
        .withColumn("_order", order)
        .withColumn("repeat", F.col("id").isNotNull() & (F.row_number().over(first) > 1))
        .drop("_order")
    )
    if partitions:
        notes = notes.repartition(partitions)
    else:
        try:
            parallelism = df.sparkSession.sparkContext.defaultParallelism
            current = notes.rdd.getNumPartitions()
        except Exception:  # Spark Connect has no SparkContext or RDDs: keep the layout
            parallelism = current = 0
        if current < parallelism:  # e.g. one Parquet file is one partition: use every core
            notes = notes.repartition(parallelism)
    code = _coder(setting, timeout, model, date_col is not None, chunk)
    with warnings.catch_warnings():  # pandas is not involved: Arrow batches in and out
        warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
        return notes.mapInArrow(code, schema=_wide_spark_schema())


def _table_of(wide: DataFrame, table: str) -> DataFrame:
    """One output table out of the intermediate frame, with batch's column names and order."""
    from pyspark.sql import functions as F

    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}: use one of {', '.join(TABLES)}")
    columns = _wide_columns()
    return wide.where(F.col(TABLE_COLUMN) == table).select(
        *[F.col(columns[(table, f.name)]).alias(f.name) for f in table_schemas()[table]]
    )


def annotate(
    df: DataFrame,
    id_col: str = "note_id",
    text_col: str = "note_text",
    setting: str = "outpatient",
    table: str = "results",
    *,
    date_col: str | None = None,
    partitions: int | None = None,
    timeout: float = 60.0,
    model: str | None = None,
) -> DataFrame:
    """One table of ``notecoder batch`` for the notes of ``df`` (lazy, like any DataFrame).

    Each action on the returned frame codes the notes again; to get several
    tables, use :func:`annotate_all`, which codes them once. ``model`` is an
    assembled pipeline folder as the executors see it (``notecoder build``);
    without it each executor builds the pipeline from the checkout.
    """
    wide = _coded(
        df,
        id_col,
        text_col,
        setting,
        date_col=date_col,
        partitions=partitions,
        timeout=timeout,
        model=model,
    )
    return _table_of(wide, table)


class CodedTables(dict):
    """The five tables by name, with the persisted frame they are all read from."""

    def __init__(self, coded: DataFrame) -> None:
        super().__init__((table, _table_of(coded, table)) for table in TABLES)
        self.coded = coded

    def unpersist(self) -> None:
        """Free the cached coded rows (the tables cannot be read afterwards without recoding)."""
        self.coded.unpersist()


def annotate_all(
    df: DataFrame,
    id_col: str = "note_id",
    text_col: str = "note_text",
    setting: str = "outpatient",
    *,
    date_col: str | None = None,
    partitions: int | None = None,
    timeout: float = 60.0,
    model: str | None = None,
) -> CodedTables:
    """All five tables (a dict by table name), coding each note once.

    The coded intermediate frame is persisted (memory, spilling to disk) by the
    first action on any table; every table is a filter of it, so later actions
    read the cache instead of running the pipeline again. ``.unpersist()`` frees it.
    """
    from pyspark import StorageLevel

    coded = _coded(
        df,
        id_col,
        text_col,
        setting,
        date_col=date_col,
        partitions=partitions,
        timeout=timeout,
        model=model,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    return CodedTables(coded)


# -- input ---------------------------------------------------------------------------
def _hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def _exists(spark: SparkSession, path: str) -> bool:
    fs, hpath = _hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


def _is_path(source: str) -> bool:
    return Path(source).exists() or "/" in source or ":" in source or source.endswith(".parquet")


def delta_files(spark: SparkSession, root: str) -> list[str]:
    """The Parquet files of the current version of a Delta table, from its log alone.

    Reading a Delta folder as plain Parquet would also read files that later
    commits removed, so the log is replayed: the last checkpoint, then every
    commit after it. Tables whose reader protocol is above 1 (column mapping,
    deletion vectors) need delta-spark and are refused.
    """
    log_dir = root.rstrip("/") + "/_delta_log"
    fs, hpath = _hadoop_fs(spark, log_dir)
    names = [status.getPath().getName() for status in fs.listStatus(hpath)]
    checkpoints = sorted(
        {int(n[:20]) for n in names if re.fullmatch(r"\d{20}\.checkpoint(\.\d+\.\d+)?\.parquet", n)}
    )
    start = checkpoints[-1] if checkpoints else -1
    active: dict[str, bool] = {}
    reader_version = 1
    if start >= 0:
        prefix = f"{start:020d}.checkpoint"
        parts = [f"{log_dir}/{n}" for n in names if n.startswith(prefix) and n.endswith(".parquet")]
        checkpoint = spark.read.parquet(*parts)
        for row in checkpoint.where("add IS NOT NULL").select("add.path").collect():
            active[row.path] = True
        if "protocol" in checkpoint.columns:
            for row in checkpoint.where("protocol IS NOT NULL").select("protocol.*").collect():
                reader_version = row.minReaderVersion
    commits = sorted(
        (int(n[:20]), n) for n in names if re.fullmatch(r"\d{20}\.json", n) and int(n[:20]) > start
    )
    for expected, (version, _) in enumerate(commits, start + 1):
        if version != expected:
            raise SourceError(Errors.E055.format(path=log_dir, version=expected))
    texts: dict[str, str] = {}
    if commits:
        frame = spark.read.text([f"{log_dir}/{n}" for _, n in commits], wholetext=True)
        for row in frame.select("_metadata.file_name", "value").collect():
            texts[row.file_name] = row.value
    for _, name in commits:
        for number, line in enumerate(texts.get(name, "").splitlines(), 1):
            if not line.strip():
                continue
            try:
                action = json.loads(line)
            except json.JSONDecodeError as err:
                reason = f"line {number}: {err.msg}"
                path = f"{log_dir}/{name}"
                raise SourceError(
                    Errors.E008.format(path=path, kind="Delta log", reason=reason)
                ) from err
            if "add" in action:
                if action["add"].get("deletionVector"):
                    reader_version = max(reader_version, 3)
                active[action["add"]["path"]] = True
            elif "remove" in action:
                active.pop(action["remove"]["path"], None)
            elif "protocol" in action:
                reader_version = action["protocol"].get("minReaderVersion", 1)
    if reader_version > 1:
        raise SourceError(Errors.E056.format(path=root, version=reader_version))
    return [
        p if "://" in p or p.startswith("/") else f"{root.rstrip('/')}/{unquote(p)}" for p in active
    ]


def read_notes(spark: SparkSession, source: str) -> DataFrame:
    """Notes from Parquet (a file, a folder, a Delta table folder) or a metastore table.

    Raises :class:`~notecoder.errors.SourceError` for a name that is neither a
    path nor a table, and for a Delta log it cannot replay; what Spark itself
    cannot read raises Spark's own exception.
    """
    if not _is_path(source):
        if not spark.catalog.tableExists(source):
            raise SourceError(Errors.E054.format(source=source))
        return spark.table(source)
    if not _exists(spark, source.rstrip("/") + "/_delta_log"):
        return spark.read.parquet(source)
    try:  # delta-spark, when the cluster has it (Databricks does): deletion vectors and all
        return spark.read.format("delta").load(source)
    except Exception:
        files = delta_files(spark, source)
        if not files:
            raise SourceError(Errors.E057.format(path=source)) from None
        return spark.read.option("basePath", source).parquet(*files)


# -- command line --------------------------------------------------------------------
def _session(master: str | None) -> tuple[SparkSession, bool]:
    """The active session (spark-submit, a notebook) or a new one; True if we made it."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    if master is None or master.startswith("local"):
        # Local Python workers must import the same notecoder as this interpreter.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("notecoder")
    if master is not None:
        builder = builder.master(master)
    return builder.getOrCreate(), True


def summarize(tables: dict[str, DataFrame]) -> dict[str, Any]:
    """batch's summary.json, computed by Spark from the coded tables."""
    from pyspark.sql import functions as F

    results = tables["results"]
    counts = results.agg(F.count(F.lit(1)).alias("notes"), F.count("error").alias("errors")).first()
    errors = results.where(F.col("error").isNotNull()).select("note_id", "error").limit(1000)

    def top(frame: DataFrame, column: str, n: int | None) -> dict[str, int]:
        grouped = frame.groupBy(column).count().orderBy(F.desc("count"), column)
        rows = (grouped.limit(n) if n else grouped).collect()
        return {r[column]: int(r["count"]) for r in rows}

    return {
        "notes": int(counts.notes),
        "errors": int(counts.errors),
        "codes": tables["codes"].count(),
        "flags": tables["flags"].count(),
        "top_codes": top(tables["codes"], "code", 20),
        "flag_counts": top(tables["flags"], "flag", None),
        "error_notes": [{"note_id": r.note_id, "error": r.error} for r in errors.collect()],
    }


def _write_text(spark: SparkSession, path: str, text: str) -> None:
    """A small file on any Hadoop file system (local, HDFS, S3, DBFS...)."""
    fs, hpath = _hadoop_fs(spark, path)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


# -- checks ----------------------------------------------------------------------------
#: A scheme (hdfs:, s3a:, dbfs:, file:...); one letter would be a Windows drive.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
#: Hadoop's glob characters: a pattern names no one file, only Spark can expand it.
_GLOB = re.compile(r"[*?\[{]")
#: The first (and last) four bytes of every Parquet file.
_PARQUET_MAGIC = b"PAR1"
#: Longest piece of a Spark error message kept in the one-line error.
_CAUSE_CHARS = 200


def _runs_here(master: str | None, spark: SparkSession | None = None) -> bool:
    """Whether Spark runs on this machine and its files, so the driver can check paths itself.

    Spark resolves a path without a scheme against ``fs.defaultFS`` (HDFS or
    DBFS on a cluster), and ``--model`` is a folder as the executors see it, so
    only a local master on the local file system qualifies. ``spark`` is the
    session once there is one (an active session counts before ours starts).
    Without one, spark-submit's master is known only to its JVM, and a Hadoop
    configuration may point paths elsewhere: both are left to the session.
    """
    from pyspark.sql import SparkSession

    spark = spark or SparkSession.getActiveSession()
    if spark is not None:
        context = spark.sparkContext
        default_fs = context._jsc.hadoopConfiguration().get("fs.defaultFS", "file:///")
        return context.master.startswith("local") and default_fs.startswith("file:")
    if "PYSPARK_GATEWAY_PORT" in os.environ or os.environ.get("HADOOP_CONF_DIR"):
        return False
    return master is None or master.startswith("local")


def _local_path(location: str, here: bool) -> Path | None:
    """The file or folder of this machine that a Spark path names, if it names one.

    A ``file:`` URI always does; a path without a scheme does when Spark
    ``here`` reads local files; HDFS, S3, DBFS... and globs are Spark's to resolve.
    """
    if _GLOB.search(location):
        return None
    scheme = _SCHEME.match(location)
    if scheme is None:
        return Path(location) if here else None
    url = urlparse(location)  # not unquoted: Hadoop reads file:/a%3Db as the name a%3Db
    is_local = scheme.group(1).lower() == "file" and url.netloc in ("", "localhost")
    return Path(url.path) if is_local else None


def _parquet_bytes(path: Path) -> bool:
    """Whether a file starts as Parquet does (Hive and others write Parquet without a suffix)."""
    with path.open("rb") as f:
        return f.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC


def _holds_parquet(folder: Path) -> bool:
    """Whether a folder holds a file Spark would read as Parquet.

    Like Spark, skips names starting with _ or . (_SUCCESS, .crc files) and
    looks into subfolders (partitions such as year=2024/).
    """
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
        for name in files:
            file = Path(root, name)
            if not name.startswith(("_", ".")) and (
                file.suffix.lower() == ".parquet" or _parquet_bytes(file)
            ):
                return True
    return False


def _check_input(path: Path, source: str) -> None:
    """A local input Spark could read: else Spark fails only after starting, with a Java stack."""
    if not path.exists():
        raise SourceError(Errors.E001.format(path=source))
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix != ".parquet" and not _parquet_bytes(path):
            what = f"a {suffix} file" if suffix else "a file, not Parquet"
            raise SourceError(Errors.E050.format(path=source, what=what))
        if path.stat().st_size == 0:
            reason = "it is empty (0 bytes)"
            raise SourceError(Errors.E008.format(path=source, kind="Parquet", reason=reason))
    elif not (path / "_delta_log").is_dir() and not _holds_parquet(path):
        what = "a folder with no Parquet file and no _delta_log"
        raise SourceError(Errors.E050.format(path=source, what=what))


def _check_here(args: argparse.Namespace, wanted: list[str], here: bool) -> None:
    """What this machine can check without Spark: the input, the output and ``--model``.

    Found by Spark, a wrong input costs a Spark start-up and ends in a Java
    stack trace, an output in the way or a missing model only after every note
    has been read or coded. Paths Spark resolves elsewhere are left to it.
    """
    source = _local_path(args.input, here)
    if source is not None and _is_path(args.input):  # else perhaps a metastore table
        _check_input(source, args.input)
    output = _local_path(args.output, here)
    if output is not None:
        if output.is_file():
            raise OutputError(Errors.E051.format(path=args.output))
        existing = [t for t in wanted if (output / t).exists()]
        if existing and not args.overwrite:
            raise OutputError(Errors.E052.format(path=args.output, tables=", ".join(existing)))
    if here and args.model is not None:
        model = Path(args.model)  # the folder pipeline.load reads: meta.json, else config.cfg
        if not ((model / "meta.json").is_file() or (model / "config.cfg").is_file()):
            raise PipelineLoadError(Errors.E022.format(path=args.model))


def _spark_cause(err: Exception) -> str:
    """Spark's error as a short line: its error class and first line, no Java stack.

    A Java exception PySpark does not convert (``Py4JJavaError``) has the
    py4j call and the whole stack in its text, and may wrap the error that
    says what is wrong ("Job aborted due to stage failure: ..."): the first
    message in its chain that carries an error class is taken, from the JVM.
    """
    from py4j.protocol import Py4JJavaError

    if isinstance(err, Py4JJavaError):
        messages: list[str] = []
        cause = err.java_exception
        while cause is not None and len(messages) < 10:
            messages.append(cause.getMessage() or cause.toString())
            cause = cause.getCause()
        text = next((m for m in messages if m.startswith("[")), messages[0])
        condition = None
    else:
        text, condition = str(err), err.getCondition()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(err).__name__)
    if condition and not line.startswith("["):
        line = f"[{condition}] {line}"
    return line if len(line) <= _CAUSE_CHARS else line[: _CAUSE_CHARS - 3] + "..."


@contextmanager
def _quiet_logs(spark: SparkSession) -> Iterator[None]:
    """Spark's log4j at FATAL for a while, then as it was.

    Opening an input that is not Parquet, or a path that does not exist, makes
    the executor, the task scheduler and the file index log Java stack traces
    at ERROR and WARN, when one line says what is wrong. PySpark shows WARN
    while its root logger says INFO, through Spark's shell threshold, which
    ``setLogLevel`` clears: both are put back. If this Spark keeps the
    threshold elsewhere, the logs are left alone. For a session the command
    created only: the level is the whole JVM's, a notebook's is not ours.
    """
    from py4j.protocol import Py4JError

    context = spark.sparkContext
    try:
        spark_logging = getattr(
            getattr(context._jvm.org.apache.spark.internal, "Logging$"), "MODULE$"
        )
        threshold = spark_logging.sparkShellThresholdLevel()
    except (Py4JError, TypeError):  # a package, not the class: not the Spark this was made for
        yield
        return
    root = context._jvm.org.apache.logging.log4j.LogManager.getRootLogger().getLevel().name()
    context.setLogLevel("FATAL")
    try:
        yield
    finally:
        context.setLogLevel(root)
        getattr(spark_logging, "sparkShellThresholdLevel_$eq")(threshold)


def _read_input(
    spark: SparkSession, args: argparse.Namespace, quiet: bool
) -> tuple[DataFrame, str, str, str | None]:
    """The notes and their id, text and date columns; a source Spark cannot open is a
    :class:`~notecoder.errors.SourceError` of one line, Spark's logs kept quiet if ``quiet``."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    from notecoder.io.sources import date_column, pick_columns

    with _quiet_logs(spark) if quiet else nullcontext():
        try:
            notes = read_notes(spark, args.input)
            columns = notes.columns
        except (PySparkException, Py4JJavaError) as err:
            cause = _spark_cause(err)
            raise SourceError(Errors.E053.format(source=args.input, cause=cause)) from err
    ids, texts = pick_columns(columns, args.id_col, args.text_col)
    return notes, ids, texts, date_column(columns, args.date_col)


def _check_output(spark: SparkSession, output: str, wanted: list[str], overwrite: bool) -> None:
    """The output, on whatever file system Spark writes it to (HDFS, S3...)."""
    from py4j.protocol import Py4JJavaError

    try:
        fs, hpath = _hadoop_fs(spark, output)
        if fs.exists(hpath) and fs.getFileStatus(hpath).isFile():
            raise OutputError(Errors.E051.format(path=output))
        existing = [t for t in wanted if _exists(spark, f"{output}/{t}")]
    except Py4JJavaError as err:  # e.g. no file system for the scheme, access denied
        raise OutputError(Errors.E011.format(path=output, reason=_spark_cause(err))) from err
    if existing and not overwrite:
        raise OutputError(Errors.E052.format(path=output, tables=", ".join(existing)))


def spark_command(args: argparse.Namespace) -> int:
    """``notecoder spark``: code a Parquet source or table into OUTPUT/<table>/ Parquet folders.

    What the user can fix raises a :class:`~notecoder.errors.UserError`
    (``notecoder.cli.run_command`` shows it as one line, exit 2); what this
    machine can check is checked before Spark starts, which takes seconds.
    """
    wanted = [t for t in ("results", *TABLES) if args.table is None or t in args.table]
    wanted = list(dict.fromkeys(wanted))  # results first: its write codes every note
    here = _runs_here(args.master)
    _check_here(args, wanted, here)
    spark, created = _session(args.master)
    try:
        if not here and _runs_here(args.master, spark):  # e.g. spark-submit --master local[4]
            _check_here(args, wanted, here=True)
        notes, ids, texts, dates = _read_input(spark, args, quiet=created)
        output = args.output.rstrip("/")
        _check_output(spark, output, wanted, args.overwrite)
        tables = annotate_all(
            notes,
            ids,
            texts,
            args.setting,
            date_col=dates,
            partitions=args.partitions,
            timeout=args.timeout,
            model=args.model,
        )
        mode = "overwrite" if args.overwrite else "errorifexists"
        for table in wanted:
            tables[table].write.mode(mode).parquet(f"{output}/{table}")
        summary = summarize(tables)
        _write_text(spark, f"{output}/summary.json", json.dumps(summary, indent=2))
        tables.unpersist()
        print_summary(summary, args.output)
        return 0
    finally:
        if created:
            spark.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m notecoder.spark`` or ``spark-submit .../notecoder/spark.py``: spark alone,
    with the errors, exit statuses and ``--debug`` of ``notecoder spark``."""
    from notecoder import cli  # only this entry point needs the command line

    parser = cli.Parser(prog="notecoder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_debug_option(cli.add_spark_parser(sub))
    args = parser.parse_args(["spark", *(sys.argv[1:] if argv is None else argv)])
    return cli.run_command(spark_command, args, "notecoder spark")


if __name__ == "__main__":
    sys.exit(main())
