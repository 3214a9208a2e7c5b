"""Accuracy of ``notecoder.suggest`` against document-level gold: codes, flags, whole notes.

Every gold file is run through the pipeline (loaded once, each note in its own
``setting``) and scored with the project's evaluator (``notecoder.evaluate``),
so the numbers are those ``notecoder evaluate`` would give. For each set it
prints, as Markdown pipe tables ready for the README:

- codes and flags, precision/recall/F1 micro (with the evaluator's 95%
  bootstrap interval, notes resampled) and macro (mean over the codes or flags);
- the exact-note rate: the share of notes whose predicted code set and flag set
  both equal the gold, with docs/formats.md's ``*`` wildcards ("M54.*" is matched by
  any predicted M54 code);
- a per-family table for codes (family = category, the first 3 characters:
  M47, M48, M54, S22 ...) and a per-flag table.

Default sets: the development set ../shared/corpora/mtsamples_dev_gold.jsonl
(180 MTSamples notes labelled independently of the coder), the same set
restricted to its ``confident: true`` notes (a subset is added for any gold
file whose notes carry ``confident``), and our own corpus
corpora/gold/notes.jsonl (written with the coder's conventions: a regression
check rather than an accuracy estimate).

Note text is never printed: ``--errors`` lists the false positive and false
negative codes and flags by note id only.

Run: python benchmarks/accuracy.py [--gold PATH ...] [--n-boot N] [--json OUT] [--errors]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from spacy.language import Language

import notecoder
from notecoder.evaluate import Scores, match_names, pair, predict, prf, score
from notecoder.io import read_annotated
from notecoder.io.gold import Note

REPO = Path(__file__).resolve().parents[1]
DEV = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "mtsamples_dev_gold.jsonl"
OWN = REPO / "corpora" / "gold" / "notes.jsonl"
#: The dev set yields two sets (all notes, confident notes), ours one.
DEFAULT_GOLD = [DEV, OWN]
AVERAGES = ("(micro)", "(macro)")


@dataclass
class GoldSet:
    """Gold notes scored together, and where they came from (for the report)."""

    name: str
    path: Path
    notes: list[Note]
    subset: str | None = None  # "confident" for the confident-only subset


def display_name(path: Path) -> str:
    """A short, stable name: relative to the repo, or ../ for the shared corpora."""
    path = path.resolve()
    for base, prefix in ((REPO, ""), (REPO.parent, "../")):
        if path.is_relative_to(base):
            return prefix + path.relative_to(base).as_posix()
    return str(path)


def gold_sets(path: Path, notes: list[Note]) -> list[GoldSet]:
    """All notes of a file, plus its ``confident: true`` notes when the file marks them.

    ``confident`` is not a docs/formats.md field: the gold reader keeps it in
    ``Note.extra``, so the subset is taken from there.
    """
    name = display_name(path)
    sets = [GoldSet(name, path, notes)]
    if any("confident" in n.extra for n in notes):
        sure = [n for n in notes if n.extra.get("confident") is True]
        sets.append(GoldSet(f"{name}, confident only", path, sure, subset="confident"))
    return sets


# -- computing -------------------------------------------------------------------
def names_match(gold: list[str] | None, pred: list[str] | None) -> bool:
    """True when the predicted names equal the gold ones, under the evaluator's wildcards.

    The evaluator's own ``match_names`` decides, so a note is exact here exactly
    when it has no false positive and no false negative in the score tables.
    ``None`` gold (the file does not say) is not scored and so always matches.
    """
    if gold is None:
        return True
    matched, extra = match_names(gold, pred or [])
    return not extra and all(matched.values())


def exact_notes(pairs: Iterable[tuple[Note, Note]]) -> tuple[int, int]:
    """(exact notes, scored notes): codes and flags both right, over notes with either gold."""
    exact = total = 0
    for gold, pred in pairs:
        if gold.codes is None and gold.flags is None:
            continue
        total += 1
        exact += names_match(gold.codes, pred.codes) and names_match(gold.flags, pred.flags)
    return exact, total


def items(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """The per-code or per-flag rows of an evaluator table, without the averages."""
    return frame[~frame[key].isin(AVERAGES)].reset_index(drop=True)


def average(frame: pd.DataFrame, key: str, which: str) -> dict[str, Any]:
    """The micro or macro row of an evaluator table as plain numbers (None where absent)."""
    rows = frame[frame[key] == f"({which})"]
    rec = rows.iloc[0].to_dict() if len(rows) else {}
    out: dict[str, Any] = {}
    for column in ("tp", "fp", "fn", "precision", "recall", "f1", "f1_low", "f1_high"):
        value = rec.get(column)
        out[column] = None if value is None or pd.isna(value) else _plain(value, column)
    return out


def family_table(codes: pd.DataFrame) -> pd.DataFrame:
    """tp/fp/fn and P/R/F1 per code family (the category: the code's first 3 characters).

    Counts are summed over the evaluator's per-code rows; a wildcard gold
    ("M54.*") falls in its own family. P/R/F1 are from the summed counts.
    """
    rows = items(codes, "code")
    columns = ["family", "codes", "tp", "fp", "fn", "precision", "recall", "f1"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(family=rows["code"].str[:3])
    grouped = rows.groupby("family", sort=True).agg(
        codes=("code", "size"), tp=("tp", "sum"), fp=("fp", "sum"), fn=("fn", "sum")
    )
    p, r, f = prf(grouped["tp"], grouped["fp"], grouped["fn"])
    grouped["precision"], grouped["recall"], grouped["f1"] = p, r, f
    return grouped.reset_index()[columns]


def note_errors(scores: Scores) -> pd.DataFrame:
    """One row per note with an error: its false positive and false negative codes and flags.

    Built from the evaluator's error list, keeping only ids and names (the
    list also carries evidence text, which must not be printed).
    """
    columns = ["note_id", "codes FP", "codes FN", "flags FP", "flags FN"]
    errors = scores.errors[scores.errors["level"].isin(["code", "flag"])]
    out: dict[str, dict[str, list[str]]] = {}
    for rec in errors.itertuples(index=False):
        row = out.setdefault(rec.note_id, {c: [] for c in columns[1:]})
        row[f"{rec.level}s {rec.type}"].append(rec.item)
    return pd.DataFrame(
        [{"note_id": k, **{c: ", ".join(v) for c, v in row.items()}} for k, row in out.items()],
        columns=columns,
    )


def evaluate_set(gold: list[Note], predictions: Sequence[Any], n_boot: int) -> dict[str, Any]:
    """Every number of one set, as plain JSON-ready values."""
    scores = score(gold, predictions, n_boot=n_boot)
    pairs, missing = pair(gold, predictions)
    exact, total = exact_notes(pairs)
    errors = note_errors(scores)
    return {
        "notes": len(gold),
        "missing_predictions": missing,
        "pipeline_errors": sorted(
            (p.id for _, p in pairs if p.extra.get("error")), key=_natural_key
        ),
        "codes": {w: average(scores.codes, "code", w) for w in ("micro", "macro")},
        "flags": {w: average(scores.flags, "flag", w) for w in ("micro", "macro")},
        "exact_notes": {"exact": exact, "scored": total, "rate": exact / total if total else None},
        "families": _records(family_table(scores.codes)),
        "per_flag": _records(items(scores.flags, "flag")),
        "per_code": _records(items(scores.codes, "code")),
        "errors": _records(errors.sort_values("note_id", key=_natural, ignore_index=True)),
    }


def _natural_key(note_id: str) -> list[tuple[int, int, str]]:
    """Sort key putting "mts-171" before "mts-1127": digits compared as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", note_id)]


def _natural(ids: pd.Series) -> pd.Series:
    return ids.map(_natural_key)


COUNTS = frozenset({"tp", "fp", "fn", "codes"})


def _plain(value: Any, column: str = "") -> Any:
    """numpy scalars to Python ones, NaN to None, counts to int (the averages' NaN
    made the evaluator's count columns float), for JSON."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if column in COUNTS and isinstance(value, float):
        return int(value)
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v, k) for k, v in row.items()} for row in frame.to_dict(orient="records")]


# -- rendering -------------------------------------------------------------------
def num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def interval(row: dict[str, Any]) -> str:
    if row.get("f1_low") is None or row.get("f1_high") is None:
        return "-"
    return f"{row['f1_low']:.3f}-{row['f1_high']:.3f}"


def markdown(header: list[str], rows: list[list[Any]], numeric: set[str] | None = None) -> str:
    """A Markdown pipe table; columns named in ``numeric`` are right-aligned."""
    numeric = numeric or set()
    out = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---:" if h in numeric else "---" for h in header) + " |",
    ]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def counts(row: dict[str, Any]) -> list[str]:
    return ["" if row.get(k) is None else str(int(row[k])) for k in ("tp", "fp", "fn")]


def summary_table(result: dict[str, Any]) -> str:
    rows = [
        [
            level,
            which,
            *counts(row),
            num(row["precision"]),
            num(row["recall"]),
            num(row["f1"]),
            interval(row),
        ]
        for level in ("codes", "flags")
        for which, row in result[level].items()
    ]
    header = ["level", "average", "tp", "fp", "fn", "P", "R", "F1", "F1 95% CI"]
    return markdown(header, rows, {"tp", "fp", "fn", "P", "R", "F1"})


def item_table(records: list[dict[str, Any]], key: str, title: str) -> str:
    if not records:
        return "(nothing to score)"
    extra = ["codes"] if "codes" in records[0] else []
    rows = [
        [
            r[key],
            *(str(r[e]) for e in extra),
            *counts(r),
            num(r["precision"]),
            num(r["recall"]),
            num(r["f1"]),
        ]
        for r in records
    ]
    header = [title, *extra, "tp", "fp", "fn", "P", "R", "F1"]
    return markdown(header, rows, {"codes", "tp", "fp", "fn", "P", "R", "F1"})


def exact_cell(result: dict[str, Any]) -> str:
    e = result["exact_notes"]
    return f"{e['exact']}/{e['scored']} ({num(e['rate'])})"


def overview(results: list[tuple[GoldSet, dict[str, Any]]]) -> str:
    def f1(row: dict[str, Any]) -> str:
        ci = interval(row)
        return num(row["f1"]) + ("" if ci == "-" else f" ({ci})")

    rows = [
        [
            s.name,
            r["notes"],
            f1(r["codes"]["micro"]),
            num(r["codes"]["macro"]["f1"]),
            f1(r["flags"]["micro"]),
            num(r["flags"]["macro"]["f1"]),
            exact_cell(r),
        ]
        for s, r in results
    ]
    header = ["set", "notes", "codes micro F1 (95% CI)", "codes macro F1"]
    header += ["flags micro F1 (95% CI)", "flags macro F1", "exact notes"]
    return markdown(header, rows, {"notes", "codes macro F1", "flags macro F1"})


def render(gold_set: GoldSet, result: dict[str, Any], show_errors: bool) -> str:
    out = [f"## {gold_set.name}", "", f"Notes: {result['notes']}"]
    failed = result["pipeline_errors"]
    if failed:  # scored as predicting nothing; a few ids, the JSON has them all
        more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
        out.append(f"Pipeline errors: {len(failed)} notes ({', '.join(failed[:10])}{more})")
    if result["missing_predictions"]:
        out.append(f"Notes with no prediction: {len(result['missing_predictions'])}")
    out += [f"Exact notes (codes and flags): {exact_cell(result)}", "", summary_table(result)]
    title = "Codes per family (codes: distinct gold or predicted codes of the family)"
    out += ["", title, "", item_table(result["families"], "family", "family")]
    out += ["", "Flags", "", item_table(result["per_flag"], "flag", "flag")]
    if show_errors:
        rows = [[e[k] for k in e] for e in result["errors"]]
        header = ["note", "codes FP", "codes FN", "flags FP", "flags FN"]
        out += ["", "Errors per note", "", markdown(header, rows) if rows else "(none)"]
    return "\n".join(out)


# -- entry point -----------------------------------------------------------------
def run(paths: Iterable[Path], nlp: Language, n_boot: int) -> list[tuple[GoldSet, dict[str, Any]]]:
    """Predict every file once and score each of its sets."""
    results = []
    for path in paths:
        corpus = read_annotated(path)
        if corpus.problems:  # locations only: a problem message may quote annotated text
            where = ", ".join(f"{p.file}:{p.line}" for p in corpus.problems[:10])
            problems = f"{len(corpus.problems)} problem(s) reading {path}: {where}"
            print(f"warning: {problems}", file=sys.stderr)
        predictions = predict(corpus.notes, nlp=nlp)
        for gold_set in gold_sets(path, corpus.notes):
            results.append((gold_set, evaluate_set(gold_set.notes, predictions, n_boot)))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--gold",
        type=Path,
        nargs="+",
        action="extend",
        metavar="PATH",
        help="gold JSONL file(s), repeatable; a file marking `confident` also gets its"
        " confident-only subset (default: the dev set and corpora/gold/notes.jsonl)",
    )
    parser.add_argument(
        "--n-boot", type=int, default=1000, metavar="N", help="bootstrap resamples (0: none)"
    )
    parser.add_argument(
        "--json", type=Path, metavar="OUT", help="write every number (no note text) here"
    )
    parser.add_argument(
        "--errors", action="store_true", help="list FP/FN codes and flags per note id"
    )
    args = parser.parse_args(argv)
    nlp = notecoder.load()
    results = run(args.gold or DEFAULT_GOLD, nlp, args.n_boot)
    print(f"# notecoder accuracy ({args.n_boot} bootstrap resamples)")
    print()
    print(overview(results))
    failed = sum(len(r["pipeline_errors"]) for s, r in results if s.subset is None)
    if failed:
        print()
        print(f"**Warning: the pipeline failed on {failed} notes**, scored as predicting nothing.")
    for gold_set, result in results:
        print()
        print(render(gold_set, result, args.errors))
    if args.json:
        payload = {
            "n_boot": args.n_boot,
            "sets": [
                {"name": s.name, "path": str(s.path), "subset": s.subset, **r} for s, r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
