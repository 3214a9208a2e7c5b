"""The ``notecoder`` command: suggest, evaluate, batch, spark, serve, build."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from notecoder.api import SETTINGS, default_pipeline, suggest
from notecoder.errors import UserError
from notecoder.pipeline import DEFAULT_MODEL, build, load
from notecoder.serve import add_serve_parser, serve_command
from notecoder.spark import add_spark_parser, spark_command

_CONTEXT_CHARS = 40

#: Exit statuses: a run that could not do what was asked because of something the
#: user can fix (input, options, output, pipeline files), and a defect of ours.
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in the same one-line form as every other user error."""

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
    parser = Parser(prog="notecoder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_suggest = sub.add_parser("suggest", help="code one note (a file, or - for standard input)")
    p_suggest.add_argument("file", nargs="?", default="-", help="note text file, or - (default)")
    p_suggest.add_argument("--setting", choices=SETTINGS, default="outpatient")
    p_suggest.add_argument("--format", choices=("json", "text"), default="json")
    p_suggest.add_argument("--note-id", help="id to report (default: the file name)")
    p_suggest.add_argument("--model", help="pipeline folder (default: build from pipelines/)")
    p_eval = sub.add_parser("evaluate", help="score the pipeline (or predictions) on gold notes")
    p_eval.add_argument("gold", help="gold JSONL, folder of JSONL, BRAT folder or .spacy DocBin")
    p_eval.add_argument("--span-key", help="DocBin span group to read (default: doc.ents)")
    p_eval.add_argument("--pred", help="predictions JSONL (default: run the pipeline)")
    p_eval.add_argument("--setting", choices=SETTINGS, help="override each note's setting")
    p_eval.add_argument("--compare", help="second predictions JSONL: paired bootstrap vs --pred")
    p_eval.add_argument("--mapping", help="BRAT label/attribute mapping (JSON)")
    p_eval.add_argument("--strict", action="store_true", help="stop at the first malformed line")
    p_eval.add_argument("--bootstrap", type=int, default=1000, help="resamples (0: no intervals)")
    p_eval.add_argument("--json", action="store_true", help="print the report as JSON")
    p_eval.add_argument("--html", help="write a report page listing every error in context")
    p_eval.add_argument("--write-pred", help="save the predictions as JSONL")
    p_eval.add_argument("--write-brat", help="save the predictions as a BRAT folder")
    p_batch = sub.add_parser("batch", help="code a dump of notes, resumably, on every core")
    p_batch.add_argument("input", nargs="?", help=".jsonl, .csv, .parquet, .db or a folder of .txt")
    p_batch.add_argument(
        "--output", required=True, help="output folder (a run there is resumed, see --restart)"
    )
    p_batch.add_argument("--db", help="SQLAlchemy URL or SQLite file (OMOP NOTE by default)")
    p_batch.add_argument("--table", help="table to read from --db")
    p_batch.add_argument("--query", help="SQL query to read from --db")
    p_batch.add_argument("--id-col", help="note id column (default: note_id or id)")
    p_batch.add_argument("--text-col", help="note text column (default: note_text or text)")
    p_batch.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p_batch.add_argument(
        "--chunk-size", type=int, default=250, help="notes per output part (the unit of resume)"
    )
    p_batch.add_argument("--setting", choices=SETTINGS, default="outpatient")
    p_batch.add_argument("--timeout", type=float, default=60.0, help="seconds per note")
    p_batch.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    p_batch.add_argument("--note-nlp-db", help="also write NOTE_NLP rows into this database")
    p_batch.add_argument("--date-col", help="note date column (default: note_date or date)")
    p_batch.add_argument("--report", help="write an HTML report with charts")
    p_batch.add_argument("--model", help="pipeline folder (default: build from pipelines/)")
    p_batch.add_argument(
        "--restart", action="store_true", help="discard the output folder's run and start over"
    )
    p_build = sub.add_parser("build", help="assemble the pipeline into a folder")
    p_build.add_argument("output", nargs="?", default=str(DEFAULT_MODEL))
    add_serve_parser(sub)
    add_spark_parser(sub)
    for command in sub.choices.values():
        add_debug_option(command)
    args = parser.parse_args(argv)
    return run_command(COMMANDS[args.command], args, f"notecoder {args.command}")


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """``--debug``, which every command takes: see :func:`main`."""
    parser.add_argument(
        "--debug", action="store_true", help="on an internal error, show the traceback"
    )


def run_command(
    command: Callable[[argparse.Namespace], int], args: argparse.Namespace, name: str
) -> int:
    """Run one command under the error convention of :func:`main`."""
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
    print(f"pipeline saved to {build(args.output)}")
    return 0


def suggest_command(args: argparse.Namespace) -> int:
    """``notecoder suggest``: one note in, its result (JSON or text for a reader) out."""
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
        lines.append(f"  {flag['flag']}{on}: {flag['message']}")
        lines.extend(_evidence_lines(flag["evidence"], text))
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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "suggest": suggest_command,
    "evaluate": evaluate_command,
    "batch": batch_command,
    "serve": serve_command,
    "spark": spark_command,
    "build": build_command,
}

if __name__ == "__main__":
    sys.exit(main())
