"""The ``notecoder`` command: suggest, evaluate, batch, spark, serve, build, calibrate.

Every command's options are declared here, and this module imports nothing
but the standard library: ``notecoder --help``, ``notecoder <command> --help``
and ``notecoder --version`` answer at once, without spaCy and the pipeline
(seconds of CPU and hundreds of MB), which load only when a command runs. Each
command is a thin function over the Python API, imported when it runs (see
:data:`COMMANDS`); serve and spark live in their own modules.

The defaults shown by ``--help`` are restated here, as spaCy's CLI restates
the defaults of the functions it calls, because reading them from their
modules would import spaCy; tests/test_cli.py checks that they agree.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import notecoder

_CONTEXT_CHARS = 40

#: Exit statuses: a run that could not do what was asked because of something the
#: user can fix (input, options, output, pipeline files), and a defect of ours.
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1

#: The settings a note is coded for (``notecoder.api.SETTINGS``), the first the default.
SETTINGS = ("outpatient", "inpatient")
#: The tables of a batch or Spark run (``notecoder.batch.TABLES``).
TABLES = ("codes", "flags", "entities", "note_nlp", "results")
#: Where ``notecoder build`` saves the pipeline (``notecoder.pipeline.DEFAULT_MODEL``).
DEFAULT_MODEL = str(Path("models") / "spine")
#: Seconds per note in batch and Spark (``notecoder.batch.BatchOptions.timeout``).
NOTE_TIMEOUT = 60.0
#: ``notecoder serve`` defaults (``notecoder.serve.DEFAULT_TIMEOUT``, ``DEFAULT_MAX_QUEUE``
#: and ``API_KEY_ENV``).
SERVE_TIMEOUT = 10.0
SERVE_MAX_QUEUE = 64
API_KEY_ENV = "NOTECODER_API_KEY"
#: ``notecoder calibrate``'s gold and output, from a checkout
#: (``notecoder.confidence.DEFAULT_GOLD`` and ``DEFAULT_OUTPUT``).
CALIBRATION_GOLD = [str(Path("..") / "shared" / "corpora" / "mtsamples_dev_gold.jsonl")]
CALIBRATION_OUTPUT = str(Path("pipelines") / "spine" / "confidence_model.json")
#: The help of ``--model``, which every command that codes takes.
_MODEL_HELP = "assembled pipeline folder (default: assemble the pipeline installed with notecoder)"

#: Each command's function, as (module, name): imported only when the command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "suggest": (__name__, "suggest_command"),
    "evaluate": (__name__, "evaluate_command"),
    "batch": (__name__, "batch_command"),
    "spark": ("notecoder.spark", "spark_command"),
    "serve": ("notecoder.serve", "serve_command"),
    "build": (__name__, "build_command"),
    "calibrate": (__name__, "calibrate_command"),
}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, each option's default after its help: ``(default: 60.0)``.

    As ``argparse.ArgumentDefaultsHelpFormatter``, but an option whose default
    is no value to print (None, an empty list) says in its help what happens
    without it, in the same words, ``(default: the file name)``; flags and
    required arguments have no default to show.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "(default: " in text
            or action.required
            or action.nargs == 0
            or action.default in (None, [], argparse.SUPPRESS)
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in the same one-line form as every other user error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Every failure ends in one line on stderr, ``notecoder <command>: ...``: a
    :class:`~notecoder.errors.UserError` (or a file that cannot be read or
    written) exits 2 with what to do; anything else is a defect, exits 1 and
    names the exception and where it was raised, with the traceback behind
    ``--debug`` (a traceback can quote note text, so it is never shown unasked).
    """
    args = make_parser().parse_args(argv)
    module, name = COMMANDS[args.command]
    command = getattr(importlib.import_module(module), name)
    return run_command(command, args, f"notecoder {args.command}")


def make_parser() -> Parser:
    """The ``notecoder`` parser: every command and option, with its help and default."""
    parser = Parser(prog="notecoder", description=notecoder.__doc__)
    parser.add_argument(
        "--version",
        action="version",
        version=notecoder.__version__,
        help="print the notecoder version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_suggest = sub.add_parser("suggest", help="code one note (a file, or - for standard input)")
    p_suggest.add_argument("file", nargs="?", default="-", help="note text file, or - for stdin")
    p_suggest.add_argument(
        "--setting", choices=SETTINGS, default=SETTINGS[0], help="care setting of the note"
    )
    p_suggest.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json (the result record) or text (for a reader)",
    )
    p_suggest.add_argument("--note-id", help="id to report (default: the file name)")
    p_suggest.add_argument("--model", help=_MODEL_HELP)
    p_eval = sub.add_parser("evaluate", help="score the pipeline (or predictions) on gold notes")
    p_eval.add_argument("gold", help="gold JSONL, folder of JSONL, BRAT folder or .spacy DocBin")
    p_eval.add_argument("--span-key", help="DocBin span group to read (default: doc.ents)")
    p_eval.add_argument("--pred", help="predictions JSONL (default: run the pipeline)")
    p_eval.add_argument(
        "--setting",
        choices=SETTINGS,
        help="override each note's setting (default: each note's own)",
    )
    p_eval.add_argument(
        "--compare", help="second predictions JSONL: paired bootstrap vs --pred (default: none)"
    )
    p_eval.add_argument("--mapping", help="BRAT label/attribute mapping, JSON (default: none)")
    p_eval.add_argument("--strict", action="store_true", help="stop at the first malformed line")
    p_eval.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples, 0 for no intervals"
    )
    p_eval.add_argument("--json", action="store_true", help="print the report as JSON")
    p_eval.add_argument(
        "--html", help="write a report page listing every error in context (default: none)"
    )
    p_eval.add_argument("--write-pred", help="save the predictions as JSONL (default: not saved)")
    p_eval.add_argument(
        "--write-brat", help="save the predictions as a BRAT folder (default: not saved)"
    )
    p_batch = sub.add_parser("batch", help="code a dump of notes, resumably, on every core")
    p_batch.add_argument(
        "input",
        nargs="?",
        help=".jsonl, .csv, .parquet, .db or a folder of .txt (default: read from --db)",
    )
    p_batch.add_argument(
        "--output", required=True, help="output folder (a run there is resumed, see --restart)"
    )
    p_batch.add_argument(
        "--db", help="SQLAlchemy URL or SQLite file to read notes from (default: none)"
    )
    p_batch.add_argument("--table", help="table to read from --db (default: the OMOP NOTE table)")
    p_batch.add_argument("--query", help="SQL query to read from --db (default: none)")
    p_batch.add_argument("--id-col", help="note id column (default: note_id or id)")
    p_batch.add_argument("--text-col", help="note text column (default: note_text or text)")
    p_batch.add_argument("--date-col", help="note date column (default: note_date or date)")
    p_batch.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes, one pipeline each (default: one per CPU)",
    )
    p_batch.add_argument(
        "--chunk-size", type=int, default=250, help="notes per output part, the unit of resume"
    )
    p_batch.add_argument(
        "--setting", choices=SETTINGS, default=SETTINGS[0], help="care setting of the notes"
    )
    p_batch.add_argument(
        "--timeout", type=float, default=NOTE_TIMEOUT, help="seconds per note, then an error row"
    )
    p_batch.add_argument(
        "--format", choices=("parquet", "jsonl"), default="parquet", help="output table format"
    )
    p_batch.add_argument(
        "--note-nlp-db", help="also write NOTE_NLP rows into this database (default: not written)"
    )
    p_batch.add_argument("--report", help="write an HTML report with charts (default: none)")
    p_batch.add_argument("--model", help=_MODEL_HELP)
    p_batch.add_argument(
        "--restart", action="store_true", help="discard the output folder's run and start over"
    )
    p_build = sub.add_parser("build", help="assemble the pipeline into a folder")
    p_build.add_argument(
        "output", nargs="?", default=DEFAULT_MODEL, help="folder to save the pipeline to"
    )
    p_calibrate = sub.add_parser(
        "calibrate", help="fit the confidence model on gold notes and write its rule file"
    )
    p_calibrate.add_argument(
        "gold",
        nargs="*",
        default=CALIBRATION_GOLD,
        help="gold JSONL files or folders with document-level codes",
    )
    p_calibrate.add_argument("--output", default=CALIBRATION_OUTPUT, help="model file to write")
    p_calibrate.add_argument(
        "--isotonic", action="store_true", help="add an isotonic map after the logistic"
    )
    p_calibrate.add_argument("--model", help=_MODEL_HELP)
    add_serve_parser(sub)
    add_spark_parser(sub)
    for command in sub.choices.values():
        add_debug_option(command)
    return parser


def add_spark_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``spark`` command, also run alone by ``python -m notecoder.spark``."""
    p = sub.add_parser("spark", help="code notes on Apache Spark into one Parquet folder per table")
    p.add_argument("input", help="Parquet file or folder, Delta table folder, or metastore table")
    p.add_argument("output", help="output folder: one Parquet folder per table")
    p.add_argument("--id-col", help="note id column (default: note_id or id)")
    p.add_argument("--text-col", help="note text column (default: note_text or text)")
    p.add_argument("--date-col", help="note date column (default: note_date or date, if any)")
    p.add_argument(
        "--setting", choices=SETTINGS, default=SETTINGS[0], help="care setting of the notes"
    )
    p.add_argument("--master", help="Spark master (default: spark-submit's, else local[*])")
    p.add_argument(
        "--partitions", type=int, help="repartition the notes into N partitions (default: as read)"
    )
    p.add_argument(
        "--table",
        action="append",
        choices=TABLES,
        help="write only this table, repeatable (default: all five)",
    )
    p.add_argument(
        "--timeout", type=float, default=NOTE_TIMEOUT, help="seconds per note, then an error row"
    )
    p.add_argument(
        "--model",
        help="assembled pipeline folder as executors see it, from notecoder build "
        "(default: assemble the pipeline installed with notecoder)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing table folders")
    return p


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``serve`` command."""
    p = sub.add_parser("serve", help="run the HTTP service and the coder review page")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--workers", type=int, default=1, help="worker processes, one pipeline each")
    p.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level",
    )
    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=SERVE_TIMEOUT,
        help="seconds a request may take to be coded, else 504",
    )
    p.add_argument(
        "--max-queue",
        type=_positive(int),
        default=SERVE_MAX_QUEUE,
        help="requests per worker waiting or being coded, more get 503",
    )
    p.add_argument(
        "--api-key-file",
        help="file holding the API key clients send as a Bearer token "
        f"(default: ${API_KEY_ENV}, else no key)",
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve on a non-loopback address without an API key (notes are PHI: don't)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name clients use, repeatable, * for any (default: loopback and --host)",
    )
    p.add_argument(
        "--ssl-keyfile", help="TLS private key, PEM, with --ssl-certfile (default: none)"
    )
    p.add_argument(
        "--ssl-certfile", help="TLS certificate chain, PEM, with --ssl-keyfile (default: none)"
    )
    return p


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: ``kind`` of the text, refused unless above zero."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """``--debug``, which every command takes: see :func:`main`."""
    parser.add_argument(
        "--debug", action="store_true", help="on an internal error, show the traceback"
    )


def run_command(
    command: Callable[[argparse.Namespace], int], args: argparse.Namespace, name: str
) -> int:
    """Run one command under the error convention of :func:`main`."""
    from notecoder.errors import UserError  # imports spaCy: not before a command runs

    if args.command != "serve":  # serve configures uvicorn's logging itself
        logging.basicConfig(
            format=f"{name}: %(levelname)s: %(message)s",
            level=logging.DEBUG if args.debug else logging.WARNING,
        )
    try:
        return command(args)
    except UserError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader went away (`notecoder evaluate ... | head`): as SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + 13
    except OSError as err:
        if err.filename is None:
            return _internal_error(err, args, name)
        print(f"{name}: {err.filename}: {err.strerror}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        return _internal_error(err, args, name)


def _internal_error(err: BaseException, args: argparse.Namespace, name: str) -> int:
    if args.debug:
        traceback.print_exception(err)
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "notecoder" in Path(f.filename).parts] or frames
    where = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
    hint = "the traceback is above" if args.debug else "run again with --debug for the traceback"
    print(f"{name}: internal error {type(err).__name__}{where}; {hint}", file=sys.stderr)
    return EXIT_INTERNAL_ERROR


def build_command(args: argparse.Namespace) -> int:
    """``notecoder build``: assemble the pipeline into a folder."""
    from notecoder.pipeline import build

    print(f"pipeline saved to {build(args.output)}")
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    """``notecoder calibrate``: fit the confidence model, write it, say what it was fitted on."""
    from notecoder.confidence import calibrate

    data = calibrate(args.gold, args.output, model=args.model, isotonic=args.isotonic)
    done = data["training"]
    print(
        f"confidence model ({data['method']}) fitted on {done['codes']} codes of "
        f"{done['notes']} notes ({done['kept']} kept), written to {args.output}"
    )
    return 0


def suggest_command(args: argparse.Namespace) -> int:
    """``notecoder suggest``: one note in, its result (JSON or text for a reader) out."""
    from notecoder.api import default_pipeline, suggest
    from notecoder.pipeline import load

    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    note_id = args.note_id or (None if args.file == "-" else Path(args.file).stem)
    # Loaded here, not inside suggest(): a broken pipeline is the run's error, not the note's.
    nlp = load(args.model) if args.model else default_pipeline()
    result = suggest(raw, note_id=note_id, setting=args.setting, nlp=nlp)
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        text = raw.decode("utf-8-sig", errors="replace")
        print(render_text(result, text))
    if result["error"] is None:
        return 0
    print(f"notecoder suggest: {result['error']}", file=sys.stderr)
    return EXIT_INTERNAL_ERROR if result["error"].startswith("internal error") else EXIT_USER_ERROR


def batch_command(args: argparse.Namespace) -> int:
    """``notecoder batch``: code every note of a source into an output folder."""
    from notecoder.batch import BatchOptions, print_summary, run_batch
    from notecoder.io.sources import describe, iter_notes

    options = BatchOptions(
        output=Path(args.output),
        workers=args.workers,
        chunk_size=args.chunk_size,
        setting=args.setting,
        timeout=args.timeout,
        output_format=args.format,
        restart=args.restart,
        model=args.model,
    )
    rows = iter_notes(
        args.input,
        id_col=args.id_col,
        text_col=args.text_col,
        db=args.db,
        table=args.table,
        query=args.query,
        date_col=args.date_col,
    )
    source = describe(args.input, db=args.db, table=args.table, query=args.query)
    summary = run_batch(rows, options, source=source)
    if args.note_nlp_db:
        from notecoder.batch import write_note_nlp_sql

        write_note_nlp_sql(options.output, args.note_nlp_db)
    if args.report:
        from notecoder.batch import write_report

        write_report(options.output, args.report)
    print_summary(summary, args.output)
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``notecoder evaluate``: read gold, predict or read predictions, print the report.

    Every input is read and checked before the pipeline loads, so a wrong file
    fails at once, as a one-line user error (see :func:`run_command`).
    """
    from notecoder import evaluate
    from notecoder.io import read_gold, read_predictions
    from notecoder.io.brat import write_brat
    from notecoder.io.gold import note_from_json, write_jsonl

    gold = read_gold(args.gold, mapping=args.mapping, strict=args.strict, span_key=args.span_key)
    pred = read_predictions(args.pred, strict=args.strict) if args.pred else None
    other = read_predictions(args.compare, strict=args.strict) if args.compare else None
    if pred is None:
        results = evaluate.predict(gold.notes, setting=args.setting)
        pred = evaluate.Corpus([note_from_json(r, "pipeline")[0] for r in results])
        if args.write_pred:
            write_jsonl(results, args.write_pred)
        if args.write_brat:
            write_brat(results, args.write_brat)
    problems = [str(p) for p in gold.problems + pred.problems]
    scores = evaluate.score(gold, pred, n_boot=args.bootstrap)
    comparison = None
    if other is not None:
        comparison = evaluate.compare(gold, pred, other, n_boot=args.bootstrap or 1000)
    if args.html:
        from notecoder.report import write_html

        write_html(scores, {n.id: n.text for n in gold.notes}, args.html)
    if args.json:
        report = scores.to_json() | {"problems": problems}
        if comparison is not None:
            report["compare"] = evaluate.records(comparison)
        print(json.dumps(report, indent=2))
    else:
        print(evaluate.render(scores, problems))
        if comparison is not None:
            print("\nPaired bootstrap, B (--compare) minus A (--pred)")
            print(comparison.to_string(index=False, float_format="{:.3f}".format))
    return 0


def render_text(result: dict[str, Any], text: str) -> str:
    """What a coder reads: codes with descriptions, flags, evidence quoted in context."""
    lines = [f"Note {result['note_id'] or '-'} ({result.get('setting', 'outpatient')})"]
    if result["error"]:
        lines.append(f"ERROR: {result['error']}")
        return "\n".join(lines)
    lines.append("")
    lines.append("Suggested codes:" if result["codes"] else "Suggested codes: none")
    for code in result["codes"]:
        lines.append(
            f"  {code['code']:<9} {code['description']}  (confidence {code['confidence']})"
        )
        lines.extend(_evidence_lines(code["evidence"], text))
    lines.append("")
    lines.append("Documentation-gap flags:" if result["flags"] else "Documentation-gap flags: none")
    for flag in result["flags"]:
        on = f" [{flag['code']}]" if flag.get("code") else ""
        lines.append(f"  {flag['flag']} ({flag['kind']}){on}: {flag['message']}")
        lines.extend(_evidence_lines(flag["evidence"], text))
        if flag.get("query"):
            query = flag["query"]
            lines.append(f"      Draft query, {query['title']}: {query['question']}")
            lines.extend(f"        [ ] {option}" for option in query["options"])
    return "\n".join(lines)


def _evidence_lines(evidence: list[dict[str, Any]], text: str) -> list[str]:
    out = []
    for ev in evidence:
        before = text[max(0, ev["start"] - _CONTEXT_CHARS) : ev["start"]]
        after = text[ev["end"] : ev["end"] + _CONTEXT_CHARS]
        quote = " ".join(f"...{before}[{text[ev['start'] : ev['end']]}]{after}...".split())
        section = ev.get("section") or "no section"
        context = ", ".join(f"{m['attribute']} by '{m['text']}'" for m in ev.get("modifiers", []))
        out.append(
            f"      {ev['label']} in {section}: {quote}" + (f" ({context})" if context else "")
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
