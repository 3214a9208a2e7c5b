"""Our ConText rules on the NegEx annotated test set (Chapman et al.), beside the anchors.

For each row of ../shared/corpora/negex/rsAnnotations-1-120-random.txt the
annotated condition is made the target span of its sentence, our sentence
splitter, sectionizer and ConText run over it (a mention under a history
heading is historical, as in the pipeline), and the negated, historical and experiencer
(family/other) answers are scored against the physician's labels. medspaCy's
default ConText rules run on the same targets for a live comparison; the other
anchors are published or were measured on this kit before.

Run: python benchmarks/negex.py. The last line reads "negation F1: 0.xxx".
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import medspacy  # noqa: F401  (registers medspacy_context)
from spacy.language import Language
from spacy.tokens import Doc, Span

from notecoder.evaluate import prf
from notecoder.extensions import SPANS_KEY
from notecoder.pipeline import load

KIT = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "corpora"
    / "negex"
    / "rsAnnotations-1-120-random.txt"
)
#: Published or previously measured numbers on this kit: (P, R, F1) per attribute.
ANCHORS = [
    (
        "medspaCy 1.3.1 default (measured before)",
        {"negated": (0.902, 0.959, 0.930), "historical": (None, None, 0.63)},
    ),
    ("GenNegEx, Java (published)", {"negated": (None, None, 0.947)}),
    ("genConText (published)", {"negated": (0.984, 0.978, 0.981)}),
]


def read_kit(path: Path) -> list[dict[str, str]]:
    """Rows of the kit: condition, sentence and the three gold labels."""
    with path.open(encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)
        return [
            {
                "condition": r[1],
                "sentence": r[2],
                "negation": r[3],
                "temporality": r[4],
                "experiencer": r[5],
            }
            for r in reader
            if len(r) >= 6
        ]


def target(doc: Doc, condition: str) -> Span | None:
    """The condition's span in its sentence, or None where the sentence lacks it.

    The kit writes the annotated mention in capitals inside its sentence, so an
    upper-case match is preferred to an earlier lower-case one ("ALLERGIES: He
    has no known ALLERGIES").
    """
    wanted = condition.strip()
    start = doc.text.find(wanted.upper())
    if start < 0:
        start = doc.text.lower().find(wanted.lower())
    if start < 0:
        return None
    return doc.char_span(start, start + len(wanted), alignment_mode="expand")


def run(nlp: Language, rows: list[dict[str, str]], context: str) -> list[dict[str, bool]]:
    """ConText answers for every row, from the component named ``context``."""
    tokenizer_and_sentences = [
        nlp.get_pipe("notecoder_sentences"),
        nlp.get_pipe("notecoder_sectionizer"),
    ]
    component = nlp.get_pipe(context)
    out = []
    for row in rows:
        doc = nlp.make_doc(row["sentence"])
        for pipe in tokenizer_and_sentences:
            doc = pipe(doc)
        span = target(doc, row["condition"])
        if span is None:  # not locatable: no modifier can apply, the answer is the default
            out.append({"negated": False, "historical": False, "other": False, "found": False})
            continue
        doc.spans[SPANS_KEY] = [Span(doc, span.start, span.end, label="CONDITION")]
        doc = component(doc)
        (found,) = doc.spans[SPANS_KEY]
        out.append(
            {
                "negated": found._.is_negated,
                "historical": found._.is_historical,
                "other": found._.is_family,
                "found": True,
            }
        )
    return out


def scores(rows: list[dict[str, str]], answers: list[dict[str, bool]]) -> dict[str, tuple]:
    gold = {
        "negated": [r["negation"].lower() == "negated" for r in rows],
        "historical": [r["temporality"].lower() == "historical" for r in rows],
        "other": [r["experiencer"].lower() != "patient" for r in rows],
    }
    out = {}
    for attr, truth in gold.items():
        guess = [a[attr] for a in answers]
        tp = sum(t and g for t, g in zip(truth, guess, strict=True))
        fp = sum(g and not t for t, g in zip(truth, guess, strict=True))
        fn = sum(t and not g for t, g in zip(truth, guess, strict=True))
        out[attr] = tuple(float(x) for x in prf(tp, fp, fn))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kit", type=Path, default=KIT)
    args = parser.parse_args()
    rows = read_kit(args.kit)
    nlp = load()
    nlp.add_pipe(
        "medspacy_context",
        name="medspacy_default",
        config={"input_span_type": "group", "span_group_name": SPANS_KEY},
    )
    answers = run(nlp, rows, "notecoder_context")
    ours = scores(rows, answers)
    medspacy_live = scores(rows, run(nlp, rows, "medspacy_default"))

    def cell(values: tuple | None) -> str:
        if values is None:
            return f"{'-':>21}"
        return "".join(f"{v:>7.3f}" if v is not None else f"{'-':>7}" for v in values)

    missing = sum(not a["found"] for a in answers)
    negated = sum(r["negation"].lower() == "negated" for r in rows)
    print(
        f"NegEx test set: {len(rows)} condition mentions ({negated} negated); {missing} not "
        "found in their sentence, answered affirmed/recent/patient"
    )
    header = f"{'system':<42}{'negated P/R/F1':>21}{'historical P/R/F1':>21}{'other P/R/F1':>21}"
    print(header)
    table = [
        ("notecoder rules (this run)", ours),
        ("medspaCy 1.3.1 default (this run)", medspacy_live),
        *ANCHORS,
    ]
    for name, result in table:
        print(
            f"{name:<42}" + "".join(cell(result.get(a)) for a in ("negated", "historical", "other"))
        )
    print(f"negation F1: {ours['negated'][2]:.3f}")


if __name__ == "__main__":
    main()
