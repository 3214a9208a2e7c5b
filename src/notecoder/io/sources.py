"""Note sources for batch runs: JSONL, CSV, Parquet, a folder of .txt files, SQL.

Every source yields ``(note_id, text_or_None, error_or_None)`` in input order,
streaming (only the note ids are kept, to find repeats). A row whose id or text
is missing, not text or not UTF-8, or whose id repeats an earlier one, is still
yielded, with an error, so that it becomes an error row and no input row goes
missing. A source that cannot be read at all (no such file, a missing column)
raises :class:`~notecoder.errors.SourceError` at once. The OMOP CDM ``NOTE`` table
(``note_id``, ``note_text``) is recognised without options.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from notecoder.errors import Errors, SourceError

Row = tuple[str, str | None, str | None] | tuple[str, str | None, str | None, str | None]

ID_COLUMNS = ("note_id", "id")
TEXT_COLUMNS = ("note_text", "text")
DATE_COLUMNS = ("note_date", "date")


def date_column(columns: list[str], date_col: str | None) -> str | None:
    """The date column: as given, else OMOP NOTE's note_date or a date column, else none."""
    if date_col is not None:
        if date_col not in columns:
            raise SourceError(Errors.E004.format(what="date", given=date_col, columns=columns))
        return date_col
    return next((c for c in DATE_COLUMNS if c in columns), None)


def pick_columns(columns: list[str], id_col: str | None, text_col: str | None) -> tuple[str, str]:
    """The id and text columns: as given, else OMOP NOTE's, else id/text."""

    def choose(given: str | None, defaults: tuple[str, ...], what: str) -> str:
        if given is not None:
            if given not in columns:
                raise SourceError(Errors.E004.format(what=what, given=given, columns=columns))
            return given
        for name in defaults:
            if name in columns:
                return name
        raise SourceError(
            Errors.E005.format(what=what, defaults=" or ".join(defaults), columns=columns)
        )

    return choose(id_col, ID_COLUMNS, "id"), choose(text_col, TEXT_COLUMNS, "text")


def _dated(row: Row, value: Any) -> Row:
    """The row with its date (ISO text) when the source has one."""
    if value is None or (isinstance(value, float) and value != value):
        return row
    return (*row[:3], str(value)[:10])


#: The error of a note whose id an earlier note of the input has (the first is coded).
DUPLICATE_ID = "duplicate note id: {first} has it too; not coded"

#: What Python makes of bytes that are not UTF-8 when told to keep them
#: (``errors="surrogateescape"``): text holding these was not UTF-8 in the input.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


def check_row(note_id: Any, text: Any, where: str) -> Row:
    """One row, checked: a missing id or a text that is not (UTF-8) text becomes an error."""
    if note_id is None or (isinstance(note_id, float) and note_id != note_id):
        return (where, None, "missing note id")
    note_id = (
        str(int(note_id)) if isinstance(note_id, float) and note_id.is_integer() else str(note_id)
    )
    if _NOT_UTF8.search(note_id):
        return (where, None, "note id is not UTF-8")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return (note_id, None, "note text is not UTF-8")
    if not isinstance(text, str):
        kind = "missing" if text is None or text != text else type(text).__name__
        return (note_id, None, f"note text is {kind}, not text")
    if _NOT_UTF8.search(text):
        return (note_id, None, "note text is not UTF-8")
    return (note_id, text, None)


def unique_ids(rows: Iterable[Row]) -> Iterator[Row]:
    """The rows, each repeat of an earlier note id turned into an error row naming the first.

    A results table keyed by note id is what every consumer joins on, so a
    repeated id is never coded twice nor dropped: the first note with the id is
    coded, each later one becomes an error row with the same id, which the
    summary lists. ``1``, ``"1"`` and ``1.0`` are one id ("1"). Costs one dict
    entry per note (about 100 bytes).
    """
    first: dict[str, int] = {}
    for number, row in enumerate(rows, 1):
        seen = first.setdefault(row[0], number)
        if seen != number:
            error = DUPLICATE_ID.format(first=f"note {seen} of the input")
            row = (row[0], None, error, *row[3:])
        yield row


def read_jsonl(
    path: Path, id_col: str | None, text_col: str | None, date_col: str | None = None
) -> Iterator[Row]:
    # Bytes that are not UTF-8 are kept (surrogateescape) for check_row to find:
    # the note is an error row under its own id, and the other notes are read.
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as f:
        columns: tuple[str, str] | None = None
        dates: str | None = None
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield (where, None, f"bad JSON at line {lineno}")
                continue
            if not isinstance(obj, dict):
                yield (where, None, f"line {lineno} is not an object")
                continue
            if columns is None:
                columns = pick_columns(list(obj), id_col, text_col)
                dates = date_column(list(obj), date_col)
            row = check_row(obj.get(columns[0]), obj.get(columns[1]), where)
            yield _dated(row, obj.get(dates)) if dates else row


def read_csv(
    path: Path, id_col: str | None, text_col: str | None, chunk: int, date_col: str | None = None
) -> Iterator[Row]:
    import pandas as pd

    if path.stat().st_size == 0:
        return  # an empty file holds zero notes
    header = list(pd.read_csv(path, nrows=0, encoding_errors="surrogateescape").columns)
    ids, texts = pick_columns(header, id_col, text_col)
    dates = date_column(header, date_col)
    columns = [ids, texts] + ([dates] if dates else [])
    frames = pd.read_csv(
        path,
        usecols=columns,
        chunksize=chunk,
        dtype=object,
        keep_default_na=False,
        na_values=[""],
        encoding_errors="surrogateescape",  # a row with bytes not UTF-8 is an error row
    )
    try:
        for frame in frames:
            for i, (note_id, text) in enumerate(zip(frame[ids], frame[texts], strict=True)):
                row = check_row(note_id, text, f"{path.name}:row {frame.index[i] + 2}")
                yield _dated(row, frame[dates].iloc[i]) if dates else row
    except pd.errors.ParserError as err:  # "Expected 2 fields in line 3, saw 3": no note text
        reason = str(err).strip().splitlines()[-1]
        raise SourceError(Errors.E008.format(path=path, kind="CSV", reason=reason)) from None


def read_parquet(
    path: Path, id_col: str | None, text_col: str | None, chunk: int, date_col: str | None = None
) -> Iterator[Row]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    ids, texts = pick_columns(names, id_col, text_col)
    dates = date_column(names, date_col)
    row = 0
    for batch in file.iter_batches(
        batch_size=chunk, columns=[ids, texts] + ([dates] if dates else [])
    ):
        when = batch.column(dates).to_pylist() if dates else [None] * batch.num_rows
        for note_id, text, day in zip(
            batch.column(ids).to_pylist(), batch.column(texts).to_pylist(), when, strict=True
        ):
            row += 1
            found = check_row(note_id, text, f"{path.name}:row {row}")
            yield _dated(found, day) if dates else found


def read_text_folder(path: Path) -> Iterator[Row]:
    for file in sorted(path.glob("*.txt")):
        yield check_row(file.stem, file.read_bytes(), file.name)


def read_sql(
    db: str,
    table: str | None,
    query: str | None,
    id_col: str | None,
    text_col: str | None,
    chunk: int,
    date_col: str | None = None,
) -> Iterator[Row]:
    """Rows of a table or query through SQLAlchemy; a plain file path is SQLite."""
    import sqlalchemy as sa

    if "://" not in db and not Path(db).is_file():  # SQLite would create it, empty
        raise SourceError(Errors.E001.format(path=db))
    url = db if "://" in db else f"sqlite:///{db}"
    engine = sa.create_engine(url)
    if query is None:
        # The table is reflected by name, so SQLAlchemy quotes it: a name is never
        # SQL ("notes UNION SELECT ..." is a table that does not exist).
        names = sa.inspect(engine).get_table_names()
        if table is None:
            table = "note" if "note" in names else None
        if table is None:
            raise SourceError(Errors.E006)
        try:
            statement: Any = sa.select(sa.Table(table, sa.MetaData(), autoload_with=engine))
        except sa.exc.NoSuchTableError:
            raise SourceError(
                Errors.E007.format(table=table, names=", ".join(names) or "none")
            ) from None
    else:
        statement = sa.text(query)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(statement)
        ids, texts = pick_columns(list(result.keys()), id_col, text_col)
        dates = date_column(list(result.keys()), date_col)
        row = 0
        while batch := result.fetchmany(chunk):
            for record in batch:
                row += 1
                mapping = record._mapping
                found = check_row(mapping[ids], mapping[texts], f"row {row}")
                yield _dated(found, mapping[dates]) if dates else found


def describe(
    source: str | Path | None = None,
    *,
    db: str | None = None,
    table: str | None = None,
    query: str | None = None,
) -> dict[str, Any]:
    """What a batch run reads, for its manifest: where, and for files their size and time.

    A resumed run compares it with the run it continues, so that another input
    (or this one changed since) is never coded into the same output. A database
    is named by its URL (password hidden) and table or query.
    """
    if db is not None:
        from sqlalchemy.engine import make_url

        url = db if "://" in db else f"sqlite:///{Path(db).resolve()}"
        shown = make_url(url).render_as_string(hide_password=True)
        return {"source": shown, "table": table, "query": query}
    if source is None:
        return {}
    path = Path(source).resolve()
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    stats = [f.stat() for f in files]
    return {
        "source": str(path),
        "files": len(files),
        "bytes": sum(s.st_size for s in stats),
        "modified": max((s.st_mtime_ns for s in stats), default=0),
    }


def iter_notes(
    source: str | Path | None = None,
    *,
    id_col: str | None = None,
    text_col: str | None = None,
    db: str | None = None,
    table: str | None = None,
    query: str | None = None,
    chunk: int = 1000,
    date_col: str | None = None,
) -> Iterator[Row]:
    """Rows of any supported source, by its kind (a folder, .jsonl, .csv, .parquet, --db),
    with repeated note ids made error rows (:func:`unique_ids`)."""
    return unique_ids(_rows(source, id_col, text_col, db, table, query, chunk, date_col))


def _rows(
    source: str | Path | None,
    id_col: str | None,
    text_col: str | None,
    db: str | None,
    table: str | None,
    query: str | None,
    chunk: int,
    date_col: str | None,
) -> Iterator[Row]:
    if db is not None:
        return read_sql(db, table, query, id_col, text_col, chunk, date_col)
    if source is None:
        raise SourceError(Errors.E002)
    path = Path(source)
    if not path.exists():
        raise SourceError(Errors.E001.format(path=path))
    if path.is_dir():
        return read_text_folder(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return read_jsonl(path, id_col, text_col, date_col)
    if suffix in (".csv", ".tsv"):
        return read_csv(path, id_col, text_col, chunk, date_col)
    if suffix == ".parquet":
        return read_parquet(path, id_col, text_col, chunk, date_col)
    if suffix in (".db", ".sqlite", ".sqlite3"):
        return read_sql(str(path), table, query, id_col, text_col, chunk, date_col)
    raise SourceError(Errors.E003.format(suffix=suffix, path=path))
