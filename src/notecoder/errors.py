"""Errors a user can act on, with codes, in one place (like ``spacy.errors``).

A :class:`UserError` is something the person running notecoder can fix: a bad
path, an input of the wrong kind, a missing column, an output that is in the
way, a pipeline folder with a missing or broken file. The command line prints
it as one line and exits 2; anything else is a defect of ours and exits 1 (see
``notecoder.cli``). Messages name files, lines, columns and counts, never note
text: they end up in logs.
"""

from __future__ import annotations

from spacy.errors import ErrorsWithCodes


class Errors(metaclass=ErrorsWithCodes):
    """Message templates; ``Errors.E001`` reads "[E001] ..." (spaCy's convention)."""

    # input sources (batch, spark)
    E001 = "no such file or folder: {path}"
    E002 = "give an input file or folder, or --db"
    E003 = (
        "unknown input kind {suffix!r} ({path}): use .jsonl, .csv, .parquet, .db, "
        "or a folder of .txt files"
    )
    E004 = "no {what} column {given!r}; the columns are {columns}"
    E005 = "no {what} column ({defaults}); the columns are {columns} (use --{what}-col)"
    E006 = "give --table or --query (the database has no NOTE table)"
    E007 = "no table {table!r} in the database; its tables: {names}"
    E008 = "{path} is not a {kind} file: {reason}"
    # outputs
    E010 = "--output {path} is a file; give a folder"
    E011 = "cannot write {path}: {reason}"
    E012 = (
        "{path} is not empty and holds no notecoder run (no manifest.json); "
        "give a new or empty folder"
    )
    E013 = (
        "{path} holds a run with other settings ({changes}); resuming would mix the two "
        "runs: use --restart to start over, or another --output"
    )
    # pipeline
    E020 = "cannot load the pipeline: {cause}"
    E021 = "rule file {path}: {reason}"
    E022 = "no pipeline at {path} (no config.cfg or meta.json; run `notecoder build`)"
    # batch workers
    E030 = "a worker could not build the pipeline: {cause}"
    E031 = "a worker failed writing chunk {index}: {cause}"
    E032 = (
        "workers keep dying ({how}) before coding a note of chunk {index}; "
        "the output holds every chunk done so far, run again to resume"
    )
    # evaluation
    E040 = "no gold notes in {path}: {lines} lines read, {reasons}"
    E041 = "no predictions in {path}: {lines} lines read, {reasons}"
    E042 = (
        "{path} is a folder with no .jsonl or .ann files; give a gold JSONL file, "
        "a folder of them, a BRAT folder or a .spacy DocBin"
    )
    E043 = (
        "no annotations in {path}: no note of the {notes} read has entities, codes or "
        "flags, so there is nothing to score against"
    )
    # spark
    E050 = (
        "{path} is {what}: notecoder spark reads Parquet (a file or a folder of them), a Delta "
        "table folder or a metastore table; use `notecoder batch` for CSV, JSONL or .txt notes"
    )
    E051 = "output {path} is a file; give a folder (it gets one Parquet folder per table)"
    E052 = "{path} already has {tables} (use --overwrite, or another path)"
    E053 = "cannot read {source}: {cause}"
    E054 = "no such file, folder or metastore table: {source}"
    E055 = "incomplete Delta log in {path}: commit {version} is missing"
    E056 = (
        "Delta table {path} needs reader protocol {version} (column mapping or deletion "
        "vectors): read it with delta-spark and call notecoder.spark.annotate_all"
    )
    E057 = "Delta table {path} has no data files"
    # rule files (schemas)
    E058 = "rule file {path} line {line}: {problem}"
    E059 = "provider_queries.json, query of {flag}: {problem}"
    # serve
    E060 = (
        "--host {host} is reachable from other machines and the notes are PHI: give an API "
        "key (--api-key-file, or the NOTECODER_API_KEY environment variable), or "
        "--insecure-no-auth to serve without one"
    )
    E061 = "--api-key-file {path}: {reason}"
    E062 = (
        "the API key has {length} characters; use at least {minimum} "
        "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one)"
    )
    E063 = "--ssl-keyfile and --ssl-certfile go together: give both, or neither"
    # code table
    E070 = "{code!r} is not in the code table {table}"
    E071 = (
        "the code table has the fields {found}, not {expected}: regenerate it with "
        "python -m notecoder.icd10cm"
    )


class UserError(ValueError):
    """Something the user can fix; the command line shows it as one line and exits 2."""


class SourceError(UserError):
    """The input cannot be read at all (missing file, column or table, wrong kind)."""


class OutputError(UserError):
    """The output cannot be written where it was asked for."""


class PipelineLoadError(UserError):
    """The pipeline cannot be built: a missing or malformed file, named in the message."""


class GoldError(UserError):
    """A malformed annotated file (strict mode), or a file with no gold notes at all."""
