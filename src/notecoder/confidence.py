"""Calibrated confidence: the probability that a coder keeps a suggested code (issue 14).

The coder's own score was made by hand (0.92 less penalties, 0.85 for pain), so
it took about five values and right and wrong codes shared 0.85. This component
replaces it with a model fitted on annotated notes (``notecoder calibrate``)
from what the coder already knows of each code, features a reviewer can read:

- ``statement``: some of its evidence is in the diagnostic statement
  (assessment, impression, diagnoses, postoperative diagnosis...:
  code_families.json's ``diagnostic_statement``, copied into the model when it
  is fitted, so the model says what it was fitted with);
- ``uncertain``: none of its evidence is affirmed (an inpatient "probable" diagnosis);
- ``evidence``: how many mentions support it (counted up to ``evidence_cap``);
- ``pain``: a pain code, not a condition;
- ``family=``: M53.8- (other specified dorsopathies), M54 (pain, radiculopathy),
  M46.4- (discitis), or any other code;
- ``region=``: how the coder found its region (``notecoder.coder.REGION_SOURCES``):
  its own precise level, its region word only, its sentence's levels, the same
  condition elsewhere, the procedure's levels, the note's only region, none
  (pain codes take no region, and no region term).

The model is an L2-regularised logistic regression over those features,
optionally followed by an isotonic map, kept in ``confidence_model.json`` (a
rule file saved with the pipeline). Applying it is a dot product, a logistic
and a bisect: coding a note never imports scikit-learn (start-up cost), which
only :func:`fit` does. Each note weighs one in the fit, whatever the number of
its codes: a note's codes are wrong together (one dictation misread gives seven
wrong codes), so counted one by one, a single note would set everyone's
confidence. ``notecoder evaluate`` reports how well calibrated the method is,
by cross-validation over notes (``notecoder.evaluate``).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacy.language import Language
from spacy.tokens import Doc

from notecoder.coder import REGION_SOURCES
from notecoder.extensions import mention
from notecoder.rulefile import RuleFileComponent
from notecoder.sections import section_of

if TYPE_CHECKING:
    from notecoder.coder import Candidate

#: The family groups a model may name, by code prefix; any other code is "other".
DEFAULT_FAMILY_GROUPS = ("M53.8", "M54", "M46.4")
DEFAULT_EVIDENCE_CAP = 4
#: Decimals of the confidence a result shows.
DECIMALS = 2


def feature_names(family_groups: Sequence[str]) -> list[str]:
    """The model's inputs, in order: binary indicators, and the capped evidence count."""
    return [
        "statement",
        "uncertain",
        "evidence",
        "pain",
        *(f"family={g}" for g in (*family_groups, "other")),
        *(f"region={s}" for s in REGION_SOURCES),
    ]


def describe(
    candidate: Candidate, statement_sections: Iterable[str], family_groups: Sequence[str]
) -> dict[str, Any]:
    """The features of one code (its evidence, family and how its region was found), as
    the model reads them and as ``notecoder evaluate`` keeps them with a prediction."""
    sections = set(statement_sections)
    evidence = candidate.evidence
    return {
        "code": candidate.code,
        "statement": any(section_of(s) in sections for s in evidence),
        "uncertain": bool(evidence) and all(mention(s).is_uncertain for s in evidence),
        "evidence": len(evidence),
        "family": next((g for g in family_groups if candidate.code.startswith(g)), "other"),
        "kind": candidate.kind,
        "region_source": candidate.region_source if candidate.kind != "pain" else None,
    }


def vector(item: Mapping[str, Any], names: Sequence[str], cap: int) -> list[float]:
    """The model's input for one code (:func:`describe`): one number per feature name."""
    values = {
        "statement": float(bool(item["statement"])),
        "uncertain": float(bool(item["uncertain"])),
        "evidence": float(min(int(item["evidence"]), cap)),
        "pain": float(item["kind"] == "pain"),
        f"family={item['family']}": 1.0,
        f"region={item['region_source']}": 1.0,
    }
    return [values.get(name, 0.0) for name in names]


class Model:
    """A fitted model, applied with plain Python: logistic, then the isotonic map if any."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.names: list[str] = list(data["features"])
        self.statement_sections: list[str] = list(data["statement_sections"])
        self.family_groups: list[str] = list(data["family_groups"])
        self.cap: int = data["evidence_cap"]
        known = set(feature_names(self.family_groups))
        unknown = [n for n in self.names if n not in known]
        if unknown:
            raise ValueError(f"features {unknown} are none of {sorted(known)}")
        if len(data["coefficients"]) != len(self.names):
            raise ValueError(
                f"{len(data['coefficients'])} coefficients for {len(self.names)} features"
            )
        self.weights: list[float] = [float(w) for w in data["coefficients"]]
        self.intercept = float(data["intercept"])
        isotonic = data.get("isotonic")
        self.x: list[float] = list(isotonic["x"]) if isotonic else []
        self.y: list[float] = list(isotonic["y"]) if isotonic else []
        if len(self.x) != len(self.y) or any(b < a for a, b in pairwise(self.x)):
            raise ValueError("isotonic x must be increasing, and as many as y")

    def describe(self, candidate: Candidate) -> dict[str, Any]:
        return describe(candidate, self.statement_sections, self.family_groups)

    def probability(self, item: Mapping[str, Any]) -> float:
        """P(kept): the logistic of the features, through the isotonic map if there is one."""
        z = self.intercept + sum(
            w * v for w, v in zip(self.weights, vector(item, self.names, self.cap), strict=True)
        )
        p = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return _interpolate(self.x, self.y, p) if self.x else p


def _interpolate(x: list[float], y: list[float], p: float) -> float:
    """scikit-learn's ``IsotonicRegression.predict`` (linear between thresholds, clipped)."""
    if p <= x[0]:
        return y[0]
    if p >= x[-1]:
        return y[-1]
    k = bisect_right(x, p)
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (p - x0) / (x1 - x0)


class Confidence(RuleFileComponent):
    """Sets the ``confidence`` of every ``doc._.codes`` candidate from the fitted model."""

    rules_file = "confidence_model.json"

    def __init__(self, name: str = "notecoder_confidence") -> None:
        self.name = name
        self.rules: dict[str, Any] = {}
        self.model: Model | None = None

    def rules_data(self) -> dict[str, Any]:
        return self.rules

    def set_rules(self, data: dict[str, Any]) -> None:
        model = Model(data)  # (checks the features before taking anything)
        self.rules, self.model = dict(data), model

    def __call__(self, doc: Doc) -> Doc:
        if self.model is None:
            raise ValueError(
                "notecoder_confidence has no model: call nlp.initialize() or load a pipeline"
            )
        for candidate in doc._.codes or []:
            p = self.model.probability(self.model.describe(candidate))
            candidate.confidence = round(p, DECIMALS)
        return doc

    def features(self, doc: Doc) -> list[dict[str, Any]]:
        """The features of each of a coded Doc's codes, in ``doc._.codes`` order."""
        if self.model is None:
            return []
        return [self.model.describe(c) for c in doc._.codes or []]


# -- fitting (scikit-learn, imported here only) --------------------------------------
#: Inverse L2 strength of the logistic regression. Strong: the development set has 180
#: notes and 20 codes a coder did not keep, too few to move many weights far from 0.
REGULARIZATION = 0.1
#: Where ``notecoder calibrate`` reads gold and writes the model, from a checkout.
DEFAULT_GOLD = (Path("..") / "shared" / "corpora" / "mtsamples_dev_gold.jsonl",)
DEFAULT_OUTPUT = Path("pipelines") / "spine" / "confidence_model.json"
_DESCRIPTION = (
    "The probability that a coder keeps a suggested code: a logistic regression over "
    "the features (then the isotonic map, if any), written by `notecoder calibrate` "
    "(src/notecoder/confidence.py); do not edit by hand."
)


def note_weights(groups: Sequence[str]) -> list[float]:
    """Each code's weight in the fit: one over the number of codes of its note, scaled
    so that the weights add up to the number of codes (each note weighs the same)."""
    counts: dict[str, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    raw = [1.0 / counts[g] for g in groups]
    scale = len(raw) / sum(raw) if raw else 1.0
    return [w * scale for w in raw]


def fit(
    items: Sequence[dict[str, Any]],
    kept: Sequence[int],
    notes: Sequence[str],
    *,
    statement_sections: Sequence[str],
    family_groups: Sequence[str] = DEFAULT_FAMILY_GROUPS,
    evidence_cap: int = DEFAULT_EVIDENCE_CAP,
    isotonic: bool = False,
    regularization: float = REGULARIZATION,
) -> dict[str, Any]:
    """The model file's content: a logistic regression of ``kept`` (1: the coder kept the
    code) on the features of ``items`` (:func:`describe`), each of ``notes``
    (one id per item) weighing one.

    With one class only (every code kept, say), there is nothing to regress: the
    model is the constant (kept + 0.5) / (codes + 1).
    """
    import numpy as np
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    names = feature_names(family_groups)
    x = np.array([vector(i, names, evidence_cap) for i in items], dtype=float).reshape(
        len(items), len(names)
    )
    y = np.asarray(kept, dtype=int)
    weights = np.asarray(note_weights(notes))
    if len(set(y.tolist())) < 2:
        rate = (y.sum() + 0.5) / (len(y) + 1)
        coefficients, intercept = [0.0] * len(names), math.log(rate / (1 - rate))
        isotonic = False
    else:
        model = LogisticRegression(C=regularization, max_iter=1000)
        model.fit(x, y, sample_weight=weights)
        coefficients, intercept = model.coef_[0].tolist(), float(model.intercept_[0])
    data: dict[str, Any] = {
        "description": _DESCRIPTION,
        "method": "logistic+isotonic" if isotonic else "logistic",
        "statement_sections": list(statement_sections),
        "family_groups": list(family_groups),
        "evidence_cap": evidence_cap,
        "features": names,
        "coefficients": [round(c, 6) for c in coefficients],
        "intercept": round(intercept, 6),
        "isotonic": None,
        "training": {
            "codes": len(y),
            "kept": int(y.sum()),
            "notes": len(set(notes)),
            "regularization": regularization,
            "note_weighted": True,
        },
    }
    if isotonic:
        logistic = Model(data)
        p = np.array([logistic.probability(i) for i in items])
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(p, y, sample_weight=weights)
        data["isotonic"] = {
            "x": [round(float(v), 6) for v in iso.X_thresholds_],
            "y": [round(float(v), 6) for v in iso.y_thresholds_],
        }
    return data


def describing_pipeline(nlp: Language) -> Language:
    """``nlp`` with a confidence component that describes codes as a new fit will: by the
    coder's current diagnostic statement and the default family groups (added after the
    coder where the pipeline has none). Its confidences mean nothing until refitted."""
    sections = nlp.get_pipe("notecoder_coder").rules["diagnostic_statement"]["sections"]
    if "notecoder_confidence" not in nlp.pipe_names:
        nlp.add_pipe("notecoder_confidence", after="notecoder_coder")
    names = feature_names(DEFAULT_FAMILY_GROUPS)
    nlp.get_pipe("notecoder_confidence").set_rules(
        {
            "method": "logistic",
            "statement_sections": list(sections),
            "family_groups": list(DEFAULT_FAMILY_GROUPS),
            "evidence_cap": DEFAULT_EVIDENCE_CAP,
            "features": names,
            "coefficients": [0.0] * len(names),
            "intercept": 0.0,
        }
    )
    return nlp


def calibrate(
    gold: Iterable[str | Path] = DEFAULT_GOLD,
    output: str | Path | None = DEFAULT_OUTPUT,
    *,
    model: str | Path | None = None,
    isotonic: bool = False,
) -> dict[str, Any]:
    """Fit the confidence model on annotated notes and write it to ``output`` (None: not
    written); returns the model file's content.

    The pipeline (``model``, default: the installed one) codes every note with
    document-level gold in its own setting; each suggested code is labelled 1 when
    the gold codes keep it (``notecoder.evaluate.match_names``: "M54.*" keeps any
    M54 code), else 0.
    """
    from notecoder import evaluate
    from notecoder.io import read_gold
    from notecoder.pipeline import load

    notes = [n for path in gold for n in read_gold(path).notes if n.codes is not None]
    nlp = describing_pipeline(load(model))
    results = evaluate.predict(notes, nlp=nlp)
    rows = evaluate.calibration_rows(evaluate.pair(notes, results)[0]) or []
    sections = nlp.get_pipe("notecoder_confidence").rules["statement_sections"]
    data = fit(
        [r["features"] for r in rows],
        [r["kept"] for r in rows],
        [r["note_id"] for r in rows],
        statement_sections=sections,
        isotonic=isotonic,
    )
    data["training"]["corpora"] = [Path(p).name for p in gold]
    if output is not None:
        Path(output).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
