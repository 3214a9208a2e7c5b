"""The ``notecoder`` command: suggest, evaluate, batch, spark, serve, build."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from notecoder.api import SETTINGS, suggest
from notecoder.pipeline import DEFAULT_MODEL, build, load
from notecoder.serve import add_serve_parser, serve_command
from notecoder.spark import add_spark_parser, spark_command

_CONTEXT_CHARS = 40


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="notecoder", description=__doc__)
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
    p_batch.add_argument("--output", required=True, help="output folder (resumed if it exists)")
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
    p_build = sub.add_parser("build", help="assemble the pipeline into a folder")
    p_build.add_argument("output", nargs="?", default=str(DEFAULT_MODEL))
    add_serve_parser(sub)
    add_spark_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "build":
        print(f"pipeline saved to {build(args.output)}")
        return 0
    if args.command == "evaluate":
        return evaluate_command(args)
    if args.command == "batch":
        return batch_command(args)
    if args.command == "serve":
        return serve_command(args)
    if args.command == "spark":
        return spark_command(args)
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as err:
        print(f"notecoder: cannot read {args.file}: {err.strerror}", file=sys.stderr)
        return 2
    note_id = args.note_id or (None if args.file == "-" else Path(args.file).stem)
    nlp = load(args.model) if args.model else None
    result = suggest(raw, note_id=note_id, setting=args.setting, nlp=nlp)
    if args.format == "json":
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        text = raw.decode("utf-8-sig", errors="replace")
        print(render_text(result, text))
    return 1 if result["error"] else 0


def batch_command(args: argparse.Namespace) -> int:
    """``notecoder batch``: code every note of a source into an output folder."""
    from notecoder.batch import BatchOptions, print_summary, run_batch
    from notecoder.io.sources import SourceError, iter_notes

    options = BatchOptions(
        output=Path(args.output),
        workers=args.workers,
        chunk_size=args.chunk_size,
        setting=args.setting,
        timeout=args.timeout,
        output_format=args.format,
    )
    try:
        rows = iter_notes(
            args.input,
            id_col=args.id_col,
            text_col=args.text_col,
            db=args.db,
            table=args.table,
            query=args.query,
            date_col=args.date_col,
        )
        summary = run_batch(rows, options)
        if args.note_nlp_db:
            from notecoder.batch import write_note_nlp_sql

            write_note_nlp_sql(options.output, args.note_nlp_db)
        if args.report:
            from notecoder.batch import write_report

            write_report(options.output, args.report)
    except SourceError as err:
        print(f"notecoder: {err}", file=sys.stderr)
        return 2
    print_summary(summary, args.output)
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``notecoder evaluate``: read gold, predict or read predictions, print the report."""
    from notecoder import evaluate
    from notecoder.io import read_annotated
    from notecoder.io.brat import write_brat
    from notecoder.io.gold import GoldError, note_from_json, read_jsonl, write_jsonl

    try:
        gold = read_annotated(
            args.gold, mapping=args.mapping, strict=args.strict, span_key=args.span_key
        )
        if args.pred:
            pred = read_jsonl(args.pred, strict=args.strict, predictions=True)
        else:
            results = evaluate.predict(gold.notes, setting=args.setting)
            pred = evaluate.Corpus([note_from_json(r, "pipeline")[0] for r in results])
            if args.write_pred:
                write_jsonl(results, args.write_pred)
            if args.write_brat:
                write_brat(results, args.write_brat)
    except (GoldError, FileNotFoundError) as err:
        print(f"notecoder: {err}", file=sys.stderr)
        return 2
    problems = [str(p) for p in gold.problems + pred.problems]
    scores = evaluate.score(gold, pred, n_boot=args.bootstrap)
    comparison = None
    if args.compare:
        other = read_jsonl(args.compare, strict=args.strict, predictions=True)
        comparison = evaluate.compare(gold, pred, other, n_boot=args.bootstrap or 1000)
    if args.html:
        from notecoder.report import write_html

        write_html(scores, {n.id: n.text for n in gold.notes}, args.html)
    if args.json:
        report = scores.to_json() | {"problems": problems}
        if comparison is not None:
            report["compare"] = comparison.to_dict(orient="records")
        print(json.dumps(report, indent=2, default=float))
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


if __name__ == "__main__":
    sys.exit(main())
