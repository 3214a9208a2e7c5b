"""Score predictions against annotated notes, in the conventions of clinical NLP evaluation.

- Spans, per label: strict (same offsets and label) and lenient (overlapping,
  same label; each gold and each predicted span matched at most once),
  precision, recall and F1 per label, micro and macro.
- Attributes (negated, historical, hypothetical, uncertain, family) on the
  lenient matches: P/R/F1 of the positive class and accuracy. Only attributes
  the gold states are scored.
- Regions: accuracy of ``region`` on matched SPINAL_LEVEL and CONDITION spans.
- Documents: codes and flags, P/R/F1 micro and macro and per code / flag, with
  docs/formats.md's ``*`` wildcards (a gold "M54.*" matches any predicted M54 code).
- A 95% bootstrap interval (notes resampled with replacement) on every F1, and a
  paired bootstrap between two prediction files (``compare``).
- Calibration of the codes' ``confidence`` (the probability that a coder keeps
  the code, ``notecoder.confidence``): expected calibration error over 10
  equal-width bins, Brier score beside that of the constant 0.9, and a
  reliability table and plot, all from cross-validation by note: every code's
  confidence comes from a model fitted on the other notes' codes only, never
  on its own note's. It needs the features ``predict`` records with each
  prediction (``confidence_features``).

Every table is a pandas DataFrame, counts as integers; ``errors`` lists every
false positive and false negative with its note, for a report. A level no gold
note annotates (no note has ``entities``, say) has no rows: its zeros would read
as a score, so reports leave it out and say why (``Scores.omitted``).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from notecoder.io.gold import ATTRIBUTES, Corpus, Note, note_from_json

__all__ = ["Corpus", "Scores", "compare", "formatted", "predict", "records", "render", "score"]

MODES = ("strict", "lenient")
_RNG_SEED = 20261124
#: Each gold field, the tables scored from it, and what a report says when no gold note has it.
_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "entities": (
        ("spans", "attributes", "regions"),
        "no span annotations in the gold: span, attribute and region scores omitted",
    ),
    "codes": (("codes",), "no codes in the gold: code scores omitted"),
    "flags": (("flags",), "no flags in the gold: flag scores omitted"),
}
_TITLES = {
    "summary": "Summary (95% bootstrap interval of F1)",
    "spans": "Spans per label",
    "attributes": "Attributes on matched spans (lenient)",
    "regions": "Region assignment on matched spans",
    "codes": "Codes",
    "flags": "Flags",
    "calibration": "Calibration of confidence (cross-validated by note; "
    "ECE over 10 equal-width bins)",
    "reliability": "Reliability of the held-out confidence (10 equal-width bins)",
}
#: Bins of the expected calibration error and the reliability table and plot.
CALIBRATION_BINS = 10
#: The constant confidence whose Brier score the calibration table shows for comparison.
CONSTANT_CONFIDENCE = 0.9
#: Most folds of the calibration's cross-validation: up to this many notes with codes,
#: one fold per note (leave-one-note-out, nothing left to the shuffle: on the 180
#: notes of the development set, 10 shuffled folds gave ECEs from 0.02 to 0.10).
MAX_FOLDS = 200


@dataclass
class Counts:
    """tp/fp/fn per note for every row of a table: the unit of bootstrapping."""

    rows: list[tuple[str, ...]]
    per_note: np.ndarray  # (notes, rows, 3)


@dataclass
class Scores:
    """All tables of one evaluation."""

    spans: pd.DataFrame
    attributes: pd.DataFrame
    regions: pd.DataFrame
    codes: pd.DataFrame
    flags: pd.DataFrame
    errors: pd.DataFrame
    summary: pd.DataFrame
    missing: list[str]  # gold notes with no prediction
    unannotated: tuple[str, ...] = ()  # gold fields no gold note has
    #: Calibration of confidence (``calibration_tables``), None where not computed,
    #: and then why not (None where there was nothing to calibrate: no code gold).
    calibration: pd.DataFrame | None = None
    reliability: pd.DataFrame | None = None
    calibration_missing: str | None = None

    @property
    def omitted(self) -> list[str]:
        """One line per level left out of the report for want of gold, saying so."""
        return [_NEEDS[name][1] for name in self.unannotated]

    def _reported(self) -> list[str]:
        """Names of the tables a report shows, in reading order."""
        left_out = {table for name in self.unannotated for table in _NEEDS[name][0]}
        return [
            name for name in _TITLES if name not in left_out and getattr(self, name) is not None
        ]

    def figures(self) -> list[str]:
        """The report page's figures, as inline SVG (the page fetches nothing)."""
        if self.reliability is None:
            return []
        caption = (
            "Reliability of the held-out confidence: each bin's share of codes kept "
            "against its mean confidence (circle area: its number of codes); on the "
            "dashed diagonal, confidence is calibrated."
        )
        return [
            f"<figure>{reliability_svg(self.reliability)}"
            f"<figcaption>{caption}</figcaption></figure>"
        ]

    def titled_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """The report's tables in reading order, with their titles, less the omitted ones."""
        return [(_TITLES[name], getattr(self, name)) for name in self._reported()]

    def to_json(self) -> dict[str, Any]:
        """The report's tables (as in :meth:`titled_tables`) and errors as plain JSON values."""
        names = [*self._reported(), "errors"]
        out: dict[str, Any] = {name: records(getattr(self, name)) for name in names}
        out["omitted"] = self.omitted
        out["missing_predictions"] = self.missing
        return out


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of Python values (ints stay ints, a missing value is None), for JSON."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as a report prints it: counts as integers, the other numbers to three
    decimals, "-" where a cell has no value (the macro row has no counts).

    Formatted here once for the terminal and the HTML page alike: pandas' own
    ``float_format`` would print a count column as floats, and ``na_rep`` does
    not reach the missing cells of a nullable integer column.
    """

    def count(value: Any) -> str:
        return "-" if pd.isna(value) else str(int(value))

    def ratio(value: Any, places: int) -> str:
        return "-" if pd.isna(value) else f"{value:.{places}f}"

    #: Columns that need more decimals (Brier scores a few ten-thousandths apart).
    decimals = frame.attrs.get("decimals", {})
    shown = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_integer_dtype(frame[column]):
            shown[column] = frame[column].map(count)
        elif pd.api.types.is_float_dtype(frame[column]):
            places = decimals.get(column, 3)
            shown[column] = frame[column].map(lambda v, n=places: ratio(v, n))
    return shown


# -- matching ------------------------------------------------------------------
def _key(e: dict[str, Any]) -> tuple[int, int, str]:
    return (e["start"], e["end"], e["label"])


def match_spans(
    gold: list[dict[str, Any]], pred: list[dict[str, Any]], mode: str
) -> list[tuple[int, int]]:
    """Pairs (gold index, pred index), one-to-one, same label; strict or lenient."""
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    if mode == "strict":
        index = {_key(p): j for j, p in enumerate(pred)}
        for i, g in enumerate(gold):
            j = index.get(_key(g))
            if j is not None and j not in used:
                pairs.append((i, j))
                used.add(j)
        return pairs
    # Lenient: exact matches first, then the largest overlap.
    exact = dict(match_spans(gold, pred, "strict"))
    used = set(exact.values())
    for i, g in enumerate(gold):
        if i in exact:
            pairs.append((i, exact[i]))
            continue
        best, best_overlap = None, 0
        for j, p in enumerate(pred):
            if j in used or p["label"] != g["label"]:
                continue
            overlap = min(g["end"], p["end"]) - max(g["start"], p["start"])
            if overlap > best_overlap:
                best, best_overlap = j, overlap
        if best is not None:
            pairs.append((i, best))
            used.add(best)
    return pairs


def match_names(gold: list[str], pred: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Gold code/flag -> the predicted ones it matches (wildcards), and unmatched preds."""
    matched: dict[str, list[str]] = {}
    left = list(dict.fromkeys(pred))
    # Exact codes first, so that "M54.*" listed before "M54.16" cannot take its match.
    for g in sorted(dict.fromkeys(gold), key=lambda g: g.endswith("*")):
        if g.endswith("*"):
            hits = [p for p in left if p.startswith(g[:-1])]
        else:
            hits = [g] if g in left else []
        matched[g] = hits
        left = [p for p in left if p not in hits]
    return matched, left


# -- metrics -------------------------------------------------------------------
def prf(tp: Any, fp: Any, fn: Any) -> tuple[Any, Any, Any]:
    """Precision, recall, F1 (0 where undefined), elementwise for arrays."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return p, r, f


def _weights(n_notes: int, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap resamples as counts per note: (n_boot, n_notes)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_notes, np.full(n_notes, 1 / n_notes), size=n_boot).astype(float)


def _f1_samples(counts: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap F1 of every row (n_boot, rows) and of the micro and macro average (n_boot, 2).

    A row absent from a resample (no gold, no prediction) has no F1 there (NaN),
    rather than 0: it neither counts in that resample's macro average nor drags
    the row's interval down.
    """
    notes, rows, _ = counts.shape
    sums = (weights @ counts.reshape(notes, rows * 3)).reshape(-1, rows, 3)
    _, _, f1 = prf(sums[..., 0], sums[..., 1], sums[..., 2])
    f1 = np.where(sums.sum(axis=2) > 0, f1, np.nan)
    total = sums.sum(axis=1)
    _, _, micro = prf(total[:, 0], total[:, 1], total[:, 2])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        macro = np.nanmean(f1, axis=1) if rows else np.zeros(len(weights))
    return f1, np.stack([micro, macro], axis=1)


def _interval(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles per column; NaN where a column never occurs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)


def _table(counts: Counts, key: str, weights: np.ndarray | None) -> pd.DataFrame:
    """One row per item with tp/fp/fn, P/R/F1 and the bootstrap interval of F1,
    then "(micro)" and "(macro)" rows."""
    names = [r[-1] for r in counts.rows]
    sums = counts.per_note.sum(axis=0) if names else np.zeros((0, 3))
    p, r, f = prf(sums[:, 0], sums[:, 1], sums[:, 2])
    frame = pd.DataFrame({key: names})
    frame["tp"], frame["fp"], frame["fn"] = (sums[:, k].astype(int) for k in range(3))
    frame["precision"], frame["recall"], frame["f1"] = p, r, f
    total = sums.sum(axis=0)
    mp, mr, mf = prf(total[0], total[1], total[2])
    averages = pd.DataFrame(
        [
            {
                key: "(micro)",
                "tp": int(total[0]),
                "fp": int(total[1]),
                "fn": int(total[2]),
                "precision": float(mp),
                "recall": float(mr),
                "f1": float(mf),
            },
            {
                key: "(macro)",
                "precision": float(np.mean(p)) if names else 0.0,
                "recall": float(np.mean(r)) if names else 0.0,
                "f1": float(np.mean(f)) if names else 0.0,
            },
        ]
    )
    frame = pd.concat([frame, averages], ignore_index=True)
    for column in ("tp", "fp", "fn"):  # the macro row has none: nullable, not float
        frame[column] = frame[column].astype("Int64")
    if weights is not None and names:
        rows_f1, averages_f1 = _f1_samples(counts.per_note, weights)
        samples = np.concatenate([rows_f1, averages_f1], axis=1)
        frame["f1_low"], frame["f1_high"] = _interval(samples)
    return frame


# -- counting ------------------------------------------------------------------
def _span_counts(pairs: list[tuple[Note, Note]], mode: str, errors: list[dict]) -> Counts:
    labels = sorted({e["label"] for g, p in pairs for e in (g.entities or []) + (p.entities or [])})
    per_note = np.zeros((len(pairs), len(labels), 3))
    for n, (g, p) in enumerate(pairs):
        gold, pred = g.entities or [], p.entities or []
        matched = match_spans(gold, pred, mode)
        got = {i for i, _ in matched}
        hit = {j for _, j in matched}
        for i, e in enumerate(gold):
            k = labels.index(e["label"])
            per_note[n, k, 0 if i in got else 2] += 1
            if i not in got and mode == "lenient":
                errors.append(_error(g, "FN", "span", e["label"], e))
        for j, e in enumerate(pred):
            if j not in hit:
                per_note[n, labels.index(e["label"]), 1] += 1
                if mode == "lenient":
                    errors.append(_error(g, "FP", "span", e["label"], e))
    return Counts([(label,) for label in labels], per_note)


def _name_counts(pairs: list[tuple[Note, Note]], field: str, errors: list[dict]) -> Counts:
    per: list[dict[str, list[int]]] = []
    keys: set[str] = set()
    for g, p in pairs:
        row: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        matched, extra = match_names(getattr(g, field) or [], getattr(p, field) or [])
        for gold_name, hits in matched.items():
            row[gold_name][0 if hits else 2] += 1
            if not hits:
                errors.append(_error(g, "FN", field[:-1], gold_name, None))
        for name in extra:
            row[name][1] += 1
            errors.append(_error(g, "FP", field[:-1], name, _evidence_of(p, field, name)))
        keys |= row.keys()
        per.append(row)
    ordered = sorted(keys)
    per_note = np.array([[row.get(k, [0, 0, 0]) for k in ordered] for row in per], dtype=float)
    return Counts([(k,) for k in ordered], per_note.reshape(len(pairs), len(ordered), 3))


def _attribute_table(pairs: list[tuple[Note, Note]], weights: np.ndarray | None) -> pd.DataFrame:
    """P/R/F1 of the positive class and accuracy per attribute, F1 with its interval."""
    counts = np.zeros((len(pairs), len(ATTRIBUTES), 4))  # tp, fp, fn, tn per note
    for n, (g, p) in enumerate(pairs):
        gold, pred = g.entities or [], p.entities or []
        for i, j in match_spans(gold, pred, "lenient"):
            for k, attr in enumerate(ATTRIBUTES):
                if attr not in gold[i]:
                    continue
                truth, guess = bool(gold[i][attr]), bool(pred[j].get(attr, False))
                counts[n, k, 0 if truth and guess else 1 if guess else 2 if truth else 3] += 1
    sums = counts.sum(axis=0)
    precision, recall, f1 = prf(sums[:, 0], sums[:, 1], sums[:, 2])
    n = sums.sum(axis=1)
    frame = pd.DataFrame(
        {
            "attribute": list(ATTRIBUTES),
            "n": n.astype(int),
            "tp": sums[:, 0].astype(int),
            "fp": sums[:, 1].astype(int),
            "fn": sums[:, 2].astype(int),
            "tn": sums[:, 3].astype(int),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "accuracy": np.where(n > 0, (sums[:, 0] + sums[:, 3]) / np.maximum(n, 1), np.nan),
        }
    )
    if weights is not None and len(pairs):
        samples, _ = _f1_samples(counts[..., :3], weights)
        frame["f1_low"], frame["f1_high"] = _interval(samples)
    return frame


def _region_table(pairs: list[tuple[Note, Note]]) -> pd.DataFrame:
    rows = []
    for label in ("SPINAL_LEVEL", "CONDITION"):
        right = total = 0
        for g, p in pairs:
            gold, pred = g.entities or [], p.entities or []
            for i, j in match_spans(gold, pred, "lenient"):
                if gold[i]["label"] != label or "region" not in gold[i]:
                    continue
                total += 1
                right += pred[j].get("region") == gold[i]["region"]
        rows.append(
            {
                "label": label,
                "n": total,
                "correct": right,
                "accuracy": right / total if total else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _error(note: Note, kind: str, level: str, what: str, span: dict | None) -> dict[str, Any]:
    out: dict[str, Any] = {"note_id": note.id, "type": kind, "level": level, "item": what}
    if span is not None:
        out.update(start=span.get("start"), end=span.get("end"), text=span.get("text"))
    return out


def _evidence_of(note: Note, field: str, name: str) -> dict[str, Any] | None:
    """The first evidence span of a predicted code or flag, when the file carries it."""
    for item in note.extra.get(f"_{field}_detail", []):
        if item.get(field[:-1]) == name and item.get("evidence"):
            return item["evidence"][0]
    return None


# -- entry points ----------------------------------------------------------------
Notes = Corpus | Iterable[Note] | Iterable[dict[str, Any]] | str | Path


def as_notes(source: Notes) -> list[Note]:
    """Notes from a Corpus, Notes, result or gold dicts, or a path (JSONL file or BRAT folder)."""
    if isinstance(source, str | Path):
        from notecoder.io import read_annotated

        source = read_annotated(source)
    if isinstance(source, Corpus):
        return source.notes
    notes = []
    for item in source:
        note = (
            item if isinstance(item, Note) else note_from_json(item, "given", require_text=False)[0]
        )
        if note is not None:
            notes.append(note)
    return notes


def pair(gold: Notes, pred: Notes) -> tuple[list[tuple[Note, Note]], list[str]]:
    """Gold notes with their predictions (by id); ids of gold notes with none."""
    gold_notes, pred_notes = as_notes(gold), as_notes(pred)
    by_id = {n.id: n for n in pred_notes}
    pairs, missing = [], []
    for g in gold_notes:
        p = by_id.get(g.id)
        if p is None:
            missing.append(g.id)
            p = Note(id=g.id, text=g.text, codes=[], flags=[], entities=[])
        pairs.append((g, p))
    return pairs, missing


def score(
    gold: Notes,
    pred: Notes,
    *,
    n_boot: int = 1000,
    seed: int = _RNG_SEED,
) -> Scores:
    """Every table of the evaluation (``n_boot=0``: no confidence intervals)."""
    pairs, missing = pair(gold, pred)
    errors: list[dict[str, Any]] = []

    def weights(subset: list) -> np.ndarray | None:
        return _weights(len(subset), n_boot, seed) if n_boot and subset else None

    span_pairs = [(g, p) for g, p in pairs if g.entities is not None]
    span_tables = []
    for mode in MODES:
        table = _table(_span_counts(span_pairs, mode, errors), "label", weights(span_pairs))
        table.insert(0, "mode", mode)
        span_tables.append(table)
    code_pairs = [(g, p) for g, p in pairs if g.codes is not None]
    flag_pairs = [(g, p) for g, p in pairs if g.flags is not None]
    tables = {
        "spans": pd.concat(span_tables, ignore_index=True),
        "attributes": _attribute_table(span_pairs, weights(span_pairs)),
        "regions": _region_table(span_pairs),
        "codes": _table(_name_counts(code_pairs, "codes", errors), "code", weights(code_pairs)),
        "flags": _table(_name_counts(flag_pairs, "flags", errors), "flag", weights(flag_pairs)),
    }
    subsets = {"entities": span_pairs, "codes": code_pairs, "flags": flag_pairs}
    unannotated = tuple(name for name in _NEEDS if not subsets[name])
    for name in unannotated:  # zeros with no gold behind them: keep the columns, drop the rows
        for table in _NEEDS[name][0]:
            tables[table] = tables[table].iloc[0:0]
    error_frame = pd.DataFrame(
        errors, columns=["note_id", "type", "level", "item", "start", "end", "text"]
    ).astype({"start": "Int64", "end": "Int64"})  # offsets; None for codes and flags
    calibration = reliability = why_not = None
    if code_pairs:
        rows = calibration_rows(code_pairs)
        if rows is None:
            why_not = (
                "calibration of confidence not computed: the predictions carry no "
                "confidence features (run the pipeline: leave out --pred)"
            )
        elif len({r["note_id"] for r in rows}) < 2:
            why_not = "calibration of confidence not computed: fewer than 2 notes have codes"
        else:
            calibration, reliability = calibration_tables(cross_validate(rows, seed=seed))
    return Scores(
        **tables,
        errors=error_frame,
        summary=_summary(tables["spans"], tables["codes"], tables["flags"]),
        missing=missing,
        unannotated=unannotated,
        calibration=calibration,
        reliability=reliability,
        calibration_missing=why_not,
    )


def _summary(spans: pd.DataFrame, codes: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """The headline numbers: micro and macro F1 (with intervals) of each level."""
    parts = [
        ("spans strict", spans[spans["mode"] == "strict"], "label"),
        ("spans lenient", spans[spans["mode"] == "lenient"], "label"),
        ("codes", codes, "code"),
        ("flags", flags, "flag"),
    ]
    rows = []
    for name, frame, key in parts:
        for average in ("(micro)", "(macro)"):
            row = frame[frame[key] == average]
            if row.empty:
                continue
            rec = row.iloc[0]
            rows.append(
                {
                    "level": name,
                    "average": average.strip("()"),
                    "precision": rec["precision"],
                    "recall": rec["recall"],
                    "f1": rec["f1"],
                    "f1_low": rec.get("f1_low", np.nan),
                    "f1_high": rec.get("f1_high", np.nan),
                }
            )
    return pd.DataFrame(rows)


def compare(
    gold: Notes,
    pred_a: Notes,
    pred_b: Notes,
    *,
    n_boot: int = 1000,
    seed: int = _RNG_SEED,
) -> pd.DataFrame:
    """Paired bootstrap: is B's micro F1 really different from A's?

    Both systems are scored on the same resampled notes; the table gives each
    F1, the difference B - A with its 95% interval, and a two-sided p-value
    (twice the share of resamples where the difference has the other sign).
    """
    gold = as_notes(gold)
    pairs_a, _ = pair(gold, pred_a)
    pairs_b, _ = pair(gold, pred_b)
    rows = []
    levels = [
        ("spans strict", lambda ps: _span_counts(_with(ps, "entities"), "strict", [])),
        ("spans lenient", lambda ps: _span_counts(_with(ps, "entities"), "lenient", [])),
        ("codes", lambda ps: _name_counts(_with(ps, "codes"), "codes", [])),
        ("flags", lambda ps: _name_counts(_with(ps, "flags"), "flags", [])),
    ]
    for name, count in levels:
        a, b = count(pairs_a), count(pairs_b)
        if not len(a.per_note):
            continue
        totals = [c.per_note.sum(axis=1) for c in (a, b)]  # (notes, 3) per system
        f_a, f_b = (float(prf(*t.sum(axis=0))[2]) for t in totals)
        weights = _weights(len(totals[0]), n_boot, seed)
        boot = [prf(*(weights @ t).T)[2] for t in totals]
        delta = boot[1] - boot[0]
        p = min(1.0, 2 * min(np.mean(delta <= 0), np.mean(delta >= 0)))
        rows.append(
            {
                "level": name,
                "f1_a": f_a,
                "f1_b": f_b,
                "delta": f_b - f_a,
                "delta_low": float(np.percentile(delta, 2.5)),
                "delta_high": float(np.percentile(delta, 97.5)),
                "p_value": float(p),
            }
        )
    return pd.DataFrame(rows)


def _with(pairs: list[tuple[Note, Note]], field: str) -> list[tuple[Note, Note]]:
    return [(g, p) for g, p in pairs if getattr(g, field) is not None]


def predict(
    notes: Iterable[Note], *, setting: str | None = None, nlp: Any = None
) -> list[dict[str, Any]]:
    """Run the pipeline on annotated notes (each in its own setting unless one is given).

    Each prediction is ``suggest``'s result with the note's text and, where the
    pipeline has a confidence component, the features of its codes
    (``confidence_features``, one per code in the order of ``codes``), which the
    calibration is cross-validated from (and a saved predictions file keeps).
    """
    from notecoder.api import default_pipeline

    nlp = nlp or default_pipeline()
    return [_predict_one(n, setting or n.setting, nlp) for n in notes]


def _predict_one(note: Note, setting: str, nlp: Any) -> dict[str, Any]:
    """``suggest``'s result, with the confidence features read off the same Doc."""
    from notecoder.api import suggest
    from notecoder.result import doc_to_result

    def read(doc: Any, note_id: str | None) -> dict[str, Any]:
        result = doc_to_result(doc, note_id)
        if "notecoder_confidence" in nlp.pipe_names:
            result["confidence_features"] = nlp.get_pipe("notecoder_confidence").features(doc)
        return result

    return suggest(note.text, note_id=note.id, setting=setting, nlp=nlp, read=read) | {
        "text": note.text
    }


def render(scores: Scores, problems: list[str] | None = None) -> str:
    """The report as terminal tables, then a line for each level omitted for want of gold."""

    def table(frame: pd.DataFrame) -> str:
        if frame.empty:
            return "  (nothing to score)"
        return formatted(frame).to_string(index=False)

    out = []
    for title, frame in scores.titled_tables():
        out += [title, "-" * len(title), table(frame), ""]
    if scores.omitted:
        out += [*scores.omitted, ""]
    errors = scores.errors
    out.append(
        f"Errors: {int((errors['type'] == 'FP').sum())} false positives, "
        f"{int((errors['type'] == 'FN').sum())} false negatives (--json or --html lists them)"
    )
    if scores.missing:
        out.append(
            f"Gold notes with no prediction: {len(scores.missing)} "
            f"({', '.join(scores.missing[:10])}{' ...' if len(scores.missing) > 10 else ''})"
        )
    if scores.calibration_missing:
        out.append(scores.calibration_missing)
    for problem in problems or []:
        out.append(f"problem: {problem}")
    return "\n".join(out)


# -- calibration of confidence ---------------------------------------------------------
def calibration_rows(pairs: Iterable[tuple[Note, Note]]) -> list[dict[str, Any]] | None:
    """One row per code predicted for a note with code gold: ``note_id``, ``code``, its
    confidence ``features`` and ``kept`` (1 when the gold keeps it, by
    :func:`match_names`: a gold "M54.*" keeps any M54 code). None when a prediction
    with codes carries no features for them (predictions made elsewhere)."""
    rows: list[dict[str, Any]] = []
    for g, p in pairs:
        codes = p.codes or []
        if g.codes is None or not codes:
            continue
        features = p.extra.get("confidence_features")
        if not isinstance(features, list) or [f.get("code") for f in features] != codes:
            return None
        matched, _ = match_names(g.codes, codes)
        kept = {code for hits in matched.values() for code in hits}
        rows += [
            {"note_id": g.id, "code": code, "features": f, "kept": int(code in kept)}
            for code, f in zip(codes, features, strict=True)
        ]
    return rows


def cross_validate(
    rows: list[dict[str, Any]],
    *,
    max_folds: int = MAX_FOLDS,
    seed: int = _RNG_SEED,
    fit: Any = None,
) -> pd.DataFrame:
    """Each code's confidence from a model fitted on the codes of the other folds' notes.

    Folds are of notes (all of a note's codes in one fold): one per note up to
    ``max_folds`` notes, else ``max_folds`` folds of shuffled notes. ``fit`` is
    ``notecoder.confidence.fit`` (tests pass one that records what it was given).
    Returns one row per code: ``note_id``, ``code``, ``fold``, ``confidence``, ``kept``.
    """
    from notecoder import confidence

    fit = fit or confidence.fit
    notes = list(dict.fromkeys(r["note_id"] for r in rows))
    k = min(len(notes), max_folds)
    order = np.random.default_rng(seed).permutation(len(notes))
    fold_of = {notes[j]: i % k for i, j in enumerate(order)}
    folds = [fold_of[r["note_id"]] for r in rows]
    predicted = [0.0] * len(rows)
    for fold in range(k):
        train = [r for r, f in zip(rows, folds, strict=True) if f != fold]
        model = confidence.Model(
            fit(
                [r["features"] for r in train],
                [r["kept"] for r in train],
                [r["note_id"] for r in train],
                statement_sections=(),
            )
        )
        for i, (r, f) in enumerate(zip(rows, folds, strict=True)):
            if f == fold:
                predicted[i] = round(model.probability(r["features"]), confidence.DECIMALS)
    return pd.DataFrame(
        {
            "note_id": [r["note_id"] for r in rows],
            "code": [r["code"] for r in rows],
            "fold": folds,
            "confidence": predicted,
            "kept": [r["kept"] for r in rows],
        }
    )


def calibration_tables(predicted: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calibration summary and the reliability bins of held-out confidences.

    Expected calibration error: over ``CALIBRATION_BINS`` equal-width bins of
    confidence ([0, 0.1), ..., [0.9, 1]), the gap between a bin's mean confidence
    and the share of its codes kept, weighted by its share of the codes. Brier
    score: the mean squared gap between confidence and kept (1) or not (0),
    beside that of a constant ``CONSTANT_CONFIDENCE`` for every code.
    """
    p = predicted["confidence"].to_numpy(dtype=float)
    y = predicted["kept"].to_numpy(dtype=float)
    bins = np.minimum((p * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    rows, ece = [], 0.0
    for b in range(CALIBRATION_BINS):
        inside = bins == b
        n = int(inside.sum())
        confidence = float(p[inside].mean()) if n else np.nan
        kept = float(y[inside].mean()) if n else np.nan
        if n:
            ece += n / len(p) * abs(confidence - kept)
        rows.append(
            {
                "bin": f"{b / CALIBRATION_BINS:.1f}-{(b + 1) / CALIBRATION_BINS:.1f}",
                "codes": n,
                "confidence": confidence,
                "kept": kept,
            }
        )
    constant = f"brier_constant_{CONSTANT_CONFIDENCE}"
    summary = pd.DataFrame(
        [
            {
                "codes": len(p),
                "notes": int(predicted["note_id"].nunique()),
                "folds": int(predicted["fold"].nunique()),
                "kept": int(y.sum()),
                "mean_confidence": float(p.mean()),
                "kept_rate": float(y.mean()),
                "ece": ece,
                "brier": float(np.mean((p - y) ** 2)),
                constant: float(np.mean((CONSTANT_CONFIDENCE - y) ** 2)),
            }
        ]
    )
    summary.attrs["decimals"] = {"brier": 4, constant: 4}
    return summary, pd.DataFrame(rows)


def reliability_svg(bins: pd.DataFrame) -> str:
    """The reliability plot: each bin's share of codes kept against its mean held-out
    confidence (a circle whose area is its number of codes), and the diagonal of
    perfect calibration; inline SVG, drawn here (the page fetches nothing)."""
    size, left, bottom, top, right = 300, 50, 40, 20, 20
    width, height = left + size + right, top + size + bottom

    def x(v: float) -> float:
        return left + v * size

    def y(v: float) -> float:
        return top + (1 - v) * size

    most = max(int(bins["codes"].max()), 1) if len(bins) else 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" class="reliability" '
        'aria-label="Reliability plot of held-out confidence">',
        "<title>Reliability: share of codes kept against held-out confidence</title>",
        f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#999"/>',
        f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#999" '
        'stroke-dasharray="4 4"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{x(tick)}" y="{y(0) + 16}" text-anchor="middle" '
            f'font-size="11">{tick:g}</text>'
            f'<text x="{left - 6}" y="{y(tick) + 4}" text-anchor="end" '
            f'font-size="11">{tick:g}</text>'
        )
    parts.append(
        f'<text x="{x(0.5)}" y="{height - 6}" text-anchor="middle" font-size="12">'
        "confidence (held-out, mean of the bin)</text>"
        f'<text x="14" y="{y(0.5)}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 14 {y(0.5)})">share of codes kept</text>'
    )
    shown = bins[bins["codes"] > 0]
    points = " ".join(
        f"{x(c):.1f},{y(k):.1f}" for c, k in zip(shown.confidence, shown.kept, strict=True)
    )
    if points:
        parts.append(f'<polyline points="{points}" fill="none" stroke="#204a87"/>')
    for row in shown.itertuples(index=False):
        r = 3 + 9 * (row.codes / most) ** 0.5
        parts.append(
            f'<circle cx="{x(row.confidence):.1f}" cy="{y(row.kept):.1f}" r="{r:.1f}" '
            f'fill="#204a87" fill-opacity="0.6"><title>{row.bin}: {row.codes} codes, '
            f"mean confidence {row.confidence:.3f}, kept {row.kept:.3f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
