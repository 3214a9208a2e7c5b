"""The coder: mentions in, ICD-10-CM candidates out (coding-rules.md sections 2-3).

Reads the linked, context-marked mentions of ``doc.spans["notecoder"]`` and
sets ``doc._.codes``; then ``notecoder.flags`` sets ``doc._.flags``. Which
family a concept goes to is data (pipelines/spine/code_families.json, saved
with the pipeline); the codes themselves come from the tabular list through
``notecoder.codes``. The steps, in the order the rules apply them:

1. Scope: the diagnostic statement (assessment, impression, diagnoses) when it
   mentions the spine, else the whole note; history sections never count.
2. Status of each mention: excluded (negated, family, hypothetical,
   historical), uncertain, or affirmed; a differential settled later in the
   note counts as affirmed.
3. Conditions: one code per concept and region, with the "with" combinations
   (radiculopathy + disc disorder or spondylosis of the same region).
4. Pain: combination (low back pain + sciatica), then dropped where a coded
   condition of the same region makes it integral.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from notecoder import codes as icd
from notecoder.extensions import SPANS_KEY, doc_text
from notecoder.flags import compute_flags
from notecoder.regions import REGIONS
from notecoder.rulefile import RuleFileComponent
from notecoder.sections import DIAGNOSTIC_SECTIONS, section_of

EXCLUDING_ATTRS = ("is_negated", "is_family", "is_hypothetical", "is_historical")


@dataclass
class Candidate:
    """One suggested code with what supports it."""

    code: str
    concept: str
    region: str | None
    evidence: list[Span]
    kind: str  # "condition" | "pain"
    confidence: float = 0.9

    @property
    def family_m53_8(self) -> bool:
        return self.code.startswith("M53.8")


@Language.factory("notecoder_coder", default_config={"spans_key": SPANS_KEY})
def make_coder(nlp: Language, name: str, spans_key: str) -> "Coder":
    """Build the coder; its rules come at ``initialize`` or ``from_disk``."""
    return Coder(spans_key)


class Coder(RuleFileComponent):
    """Sets ``doc._.codes`` and ``doc._.flags`` from the mentions."""

    rules_file = "code_families.json"

    def __init__(self, spans_key: str) -> None:
        self.spans_key = spans_key
        self.rules: dict[str, Any] = {}

    def rules_data(self) -> dict[str, Any]:
        return self.rules

    def set_rules(self, data: dict[str, Any]) -> None:
        self.rules = dict(data)

    def code_table(self) -> dict[str, tuple[str, str | None]]:
        """Every code this coder can emit, with the concept and region that give it.

        Walks the same path as coding (families, region aliases, qualifiers), so
        a test can check each one against the tabular list.
        """
        table: dict[str, tuple[str, str | None]] = {}
        qualifiers = [
            icd.Qualifiers(level=level, pain=pain, claudication=claudication, side=side)
            for level in (None, "C2-C3", "C4-C5", "C5-C6", "C6-C7")
            for pain in ("unset", "back", "leg", "both", None)
            for claudication in (False, True)
            for side in ("unset", "right", "left", None)
        ]
        for concept, spec in self.rules["concepts"].items():
            for region in (None, *REGIONS, "multiple"):
                for code_region, family in self._families(concept, spec, region):
                    for q in qualifiers:
                        try:
                            table.setdefault(icd.resolve(family, code_region, q), (concept, region))
                        except icd.CodeNotFound:
                            continue
        for region, family in self.rules["concepts"]["fracture"]["family"].items():
            letter = {"thoracic": "T", "lumbar": "L"}.get(region, "C")
            count = {"T": 12, "L": 5, "C": 7}[letter]
            for vertebra in [None, *(f"{letter}{n}" for n in range(1, count + 1))]:
                for kind in icd.FRACTURE_KINDS:
                    try:
                        table.setdefault(
                            icd.fracture(family, vertebra, region, kind), ("fracture", region)
                        )
                    except icd.CodeNotFound:
                        continue
        for concept, spec in self.rules["pain"].items():
            sides = ("right", "left", None) if spec.get("by_side") else ("unset",)
            for side in sides:
                code = icd.resolve(spec["code"], None, icd.Qualifiers(side=side))
                table.setdefault(code, (concept, None))
        return table

    # -- coding ----------------------------------------------------------------
    def __call__(self, doc: Doc) -> Doc:
        if not self.rules:
            raise ValueError("notecoder_coder has no rules: call nlp.initialize() or load a model")
        mentions = list(doc.spans.get(self.spans_key, []))
        candidates, uncertain = self.code(doc, mentions, doc._.setting)
        doc._.codes = candidates
        doc._.flags = compute_flags(doc, candidates, uncertain, mentions, self.rules)
        return doc

    def code(
        self, doc: Doc, mentions: list[Span], setting: str
    ) -> tuple[list[Candidate], list[Span]]:
        """The candidates and the diagnoses left uncertain (for UNCERTAIN_DX)."""
        history = set(self.rules["history_sections"])
        usable = [m for m in mentions if section_of(m) not in history and not _excluded(m)]
        clinical = [m for m in usable if m.label_ in ("CONDITION", "PAIN") and self._coded(m)]
        dx_mode = has_diagnostic_statement(doc)
        scope = (
            [m for m in clinical if section_of(m) in DIAGNOSTIC_SECTIONS] if dx_mode else clinical
        )

        affirmed_concepts = {self._concept(m) for m in scope if not m._.is_uncertain}
        conditions: list[Span] = []
        uncertain: list[Span] = []
        for m in scope:
            if m.label_ != "CONDITION" and self._concept(m) not in self.rules["concepts"]:
                continue
            settled = self._concept(m) in affirmed_concepts or _settled_later(m, usable, self)
            if not m._.is_uncertain or settled:
                conditions.append(m)
            else:
                uncertain.append(m)
                if setting == "inpatient":
                    conditions.append(m)
        condition_codes = self._condition_codes(doc, conditions, mentions, usable)
        pains = [m for m in scope if m.label_ == "PAIN" and self._concept(m) in self.rules["pain"]]
        if uncertain and setting != "inpatient" and not [p for p in pains if not p._.is_uncertain]:
            # Outpatient: symptoms are coded instead of the uncertain diagnosis.
            pains = [
                m for m in usable if m.label_ == "PAIN" and self._concept(m) in self.rules["pain"]
            ]
        pains = [p for p in pains if not p._.is_uncertain]
        return condition_codes + self._pain_codes(pains, condition_codes), uncertain

    def _coded(self, span: Span) -> bool:
        concept = self._concept(span)
        return concept in self.rules["concepts"] or concept in self.rules["pain"]

    def _concept(self, span: Span) -> str:
        """The concept, with back pain of a known region made that region's pain."""
        concept = span._.concept or ""
        if concept == "back_pain" and span._.regions:
            return self.rules["back_pain_by_region"].get(span._.regions[0], concept)
        if concept == "discitis" and _sentence_mentions(span, self.rules["pyogenic_cues"]):
            return "discitis_pyogenic"
        return concept

    # -- conditions ------------------------------------------------------------
    def _condition_codes(
        self, doc: Doc, conditions: list[Span], mentions: list[Span], usable: list[Span]
    ) -> list[Candidate]:
        by_key: dict[tuple[str, str | None], list[Span]] = {}
        for m in conditions:
            for region in self._regions(m, mentions):
                by_key.setdefault((self._concept(m), region), []).append(m)
        by_key = self._combine_radiculopathy(by_key, usable)
        pain_detail = self._pain_detail(usable)
        claudication = any(self._concept(m) == "neurogenic_claudication" for m in usable)
        out: list[Candidate] = []
        multi = {
            concept
            for concept, spec in self.rules["concepts"].items()
            if spec.get("multiple_sites")
            and len({r for (c, r) in by_key if c == concept and r is not None}) > 1
        }
        for concept in multi:
            spans = [s for (c, _), ss in by_key.items() if c == concept for s in ss]
            by_key = {k: v for k, v in by_key.items() if k[0] != concept}
            by_key[(concept, "multiple")] = spans
        for (concept, region), spans in by_key.items():
            spec = self.rules["concepts"].get(concept) or {"family": concept}
            if spec.get("fracture"):
                out.extend(self._fractures(doc, spec, region, spans))
                continue
            level = _cervical_level(spans)
            q = icd.Qualifiers(
                level=level,
                pain=pain_detail if spec.get("pain_split") else "unset",
                claudication=claudication,
            )
            for code_region, family in self._families(concept, spec, region):
                try:
                    code = icd.resolve(family, code_region, q)
                except icd.CodeNotFound:
                    continue
                out.append(
                    Candidate(
                        code=code,
                        concept=concept,
                        region=region,
                        evidence=_unique(spans),
                        kind="condition",
                        confidence=_confidence(spans, region, doc._.setting),
                    )
                )
        return _dedupe(out)

    def _fractures(
        self, doc: Doc, spec: dict[str, Any], region: str | None, spans: list[Span]
    ) -> list[Candidate]:
        """Traumatic fractures by vertebra; without trauma a compression fracture is a
        collapsed vertebra (M48.5-), and a fracture with no spinal level is not coded."""
        text = " ".join(s.text.lower() for s in spans)
        vertebral = any(w in text for w in ("vertebra", "compression", "burst", "wedge", "chance"))
        if region is None or not (vertebral or _vertebrae(spans)):
            return []
        if not _trauma_documented(doc_text(doc), self.rules["trauma_cues"]):
            if "compression" not in text and "wedge" not in text:
                return []
            collapsed = self.rules["concepts"]["collapsed_vertebra"]
            code = icd.resolve(collapsed["family"], region)
            return [Candidate(code, "collapsed_vertebra", region, _unique(spans), "condition")]
        kind = next(
            (k for words, k in self.rules["fracture_kinds"].items() if words in text),
            "Unspecified",
        )
        out = []
        for vertebra in _vertebrae(spans) or [None]:
            # The vertebra names the family: L1 "at the thoracolumbar junction" is lumbar.
            own = _VERTEBRA_REGION.get(vertebra[0]) if vertebra else region
            family = spec["family"].get(own)
            if family is None:
                continue
            try:
                code = icd.fracture(family, vertebra, own, kind)
            except icd.CodeNotFound:
                continue
            out.append(
                Candidate(
                    code,
                    "fracture",
                    region,
                    _unique(spans),
                    "condition",
                    confidence=_confidence(spans, region, doc._.setting),
                )
            )
        return out

    def _families(
        self, concept: str, spec: dict[str, Any], region: str | None
    ) -> list[tuple[str | None, str]]:
        """(region as the family names it, family stem) pairs for a concept and region."""
        family = spec["family"]
        if spec.get("no_region"):
            return [(None, family)]
        regions = [region]
        if spec.get("split_junctions") and region in self.rules["junction_neighbours"]:
            regions = list(self.rules["junction_neighbours"][region])
        if spec.get("injury"):  # an injury is coded only where its region is documented
            aliases = self.rules["region_aliases"]["injury"]
            regions = [aliases.get(r, r) for r in regions if r]
        aliases = self.rules["region_aliases"].get(family, {}) if isinstance(family, str) else {}
        regions = [aliases.get(r, r) if r else r for r in regions]
        if isinstance(family, dict):
            return [
                (r, family.get(r) or family.get(_family_side(r), family.get("default")))
                for r in regions
                if family.get(r) or family.get(_family_side(r), family.get("default"))
            ]
        return [(r, family) for r in regions]

    def _regions(self, span: Span, mentions: list[Span]) -> list[str | None]:
        """The regions of a condition; fall back on the note when it names none."""
        if span._.regions:
            return list(span._.regions)
        concept = self._concept(span)
        spec = self.rules["concepts"].get(concept, {})
        if spec.get("no_region") or spec.get("injury"):
            # An injury's region is its own ("hip fracture" is not a spine fracture).
            return [None]
        same = [
            r
            for m in mentions
            if self._concept(m) == concept and not m._.is_family and not m._.is_negated
            for r in (m._.regions or [])
        ]
        if same:
            return list(dict.fromkeys(same))
        anchors = {
            a._.region
            for a in mentions
            if a.label_ == "SPINAL_LEVEL" and a._.region and not a._.is_family
        }
        anchors |= {
            r for m in mentions if m.label_ in ("CONDITION", "PAIN") for r in m._.regions or []
        }
        return [anchors.pop()] if len(anchors) == 1 else [None]

    def _combine_radiculopathy(
        self, by_key: dict[tuple[str, str | None], list[Span]], usable: list[Span]
    ) -> dict[tuple[str, str | None], list[Span]]:
        """Radiculopathy (and sciatica) with a disc disorder or spondylosis of its region."""
        compatible = self.rules["compatible_regions"]
        sciatica = [m for m in usable if self._concept(m) == "sciatica"]
        radics = {k: v for k, v in by_key.items() if k[0] == "radiculopathy"}
        partners = {
            k: v
            for k, v in by_key.items()
            if self.rules["concepts"].get(k[0], {}).get("disc") or k[0] == "spondylosis"
        }
        out = dict(by_key)
        for (pconcept, pregion), pspans in partners.items():
            is_disc = bool(self.rules["concepts"][pconcept].get("disc"))
            matched = [
                k
                for k in radics
                if k[1] == pregion or (k[1] and pregion in compatible.get(k[1], []))
            ]
            leg = (
                sciatica
                if is_disc
                and pconcept != "disc_degeneration"
                and pregion in ("lumbar", "lumbosacral")
                else []
            )
            if not matched and not leg:
                continue
            combined = "disc_with_radiculopathy" if is_disc else "spondylosis_with_radiculopathy"
            spans = list(pspans) + [s for k in matched for s in radics[k]] + leg
            out.pop((pconcept, pregion), None)
            for k in matched:
                out.pop(k, None)
            out.setdefault((combined, pregion), []).extend(spans)
        return out

    def _pain_detail(self, usable: list[Span]) -> str | None:
        """The M51.36-/M51.37- split: back pain, leg pain, both or neither."""
        concepts = {self._concept(m) for m in usable if m.label_ in ("PAIN", "CONDITION")}
        back = bool(concepts & set(self.rules["back_pain_concepts"]))
        leg = bool(concepts & set(self.rules["leg_pain_concepts"])) or "radiculopathy" in concepts
        return "both" if back and leg else "back" if back else "leg" if leg else None

    # -- pain -------------------------------------------------------------------
    def _pain_codes(self, pains: list[Span], conditions: list[Candidate]) -> list[Candidate]:
        rules = self.rules["pain"]
        by_concept: dict[str, list[Span]] = {}
        for p in pains:
            by_concept.setdefault(self._concept(p), []).append(p)
        if "sciatica" in by_concept and by_concept.keys() & {"low_back_pain", "back_pain"}:
            spans = by_concept.pop("sciatica") + by_concept.pop("low_back_pain", [])
            spans += by_concept.pop("back_pain", [])
            by_concept["low_back_pain_with_sciatica"] = spans
        coded_regions = {c.region for c in conditions}
        out: list[Candidate] = []
        for concept, spans in by_concept.items():
            spec = rules[concept]
            covers = spec["covers"]
            if conditions and (covers == "any" or coded_regions & set(covers)):
                continue  # integral to a coded condition of the same region
            side = _side(spans) if spec.get("by_side") else "unset"
            code = icd.resolve(spec["code"], None, icd.Qualifiers(side=side))
            out.append(
                Candidate(
                    code=code,
                    concept=concept,
                    region=None,
                    evidence=_unique(spans),
                    kind="pain",
                    confidence=0.85,
                )
            )
        return _dedupe(out)


def _vertebrae(spans: list[Span]) -> list[str]:
    """The single vertebrae ("L1", not "L4-L5") linked to these mentions, in order."""
    found = [
        a._.levels[0]
        for s in spans
        for a in s._.linked_levels or []
        if a.label_ == "SPINAL_LEVEL" and len(a._.levels or []) == 1
    ]
    return list(dict.fromkeys(found))


def has_diagnostic_statement(doc: Doc) -> bool:
    """Does the note have an assessment, impression or diagnosis section with content?"""
    return any(
        section.category in DIAGNOSTIC_SECTIONS and section.body_span[1] > section.body_span[0]
        for section in doc._.sections
    )


_VERTEBRA_REGION = {"C": "cervical", "T": "thoracic", "L": "lumbar"}
_NO_TRAUMA = re.compile(
    r"(?:\bno|\bdenies|\bwithout|\bnegative for|\bnon-?|\batraumatic)\W*(?:\w+\W+)?$"
)


def _trauma_documented(text: str, cues: list[str]) -> bool:
    """Does the note document trauma (a cue not negated just before it)?"""
    lowered = text.lower()
    for cue in cues:
        for match in re.finditer(rf"\b{re.escape(cue)}", lowered):
            if not _NO_TRAUMA.search(lowered[max(0, match.start() - 25) : match.start()]):
                return True
    return False


def _excluded(span: Span) -> bool:
    return any(getattr(span._, attr, False) for attr in EXCLUDING_ATTRS)


def _settled_later(span: Span, usable: list[Span], coder: Coder) -> bool:
    concept = coder._concept(span)
    return any(
        m.start > span.end
        and m.label_ == "CONDITION"
        and coder._concept(m) == concept
        and not m._.is_uncertain
        for m in usable
    )


def _sentence_mentions(span: Span, cues: list[str]) -> bool:
    text = (span.sent if span.doc.has_annotation("SENT_START") else span.doc[:]).text.lower()
    return any(cue in text for cue in cues)


def _family_side(region: str | None) -> str:
    return {"occipito-atlanto-axial": "cervical", "cervicothoracic": "cervical"}.get(
        region or "", "default"
    )


def _cervical_level(spans: list[Span]) -> str | None:
    for span in spans:
        for anchor in span._.linked_levels or []:
            levels = anchor._.levels or []
            if len(levels) == 2 and all(v.startswith("C") for v in levels):
                return f"{levels[0]}-{levels[1]}"
    return None


def _side(spans: list[Span]) -> str | None:
    sides = {s._.side for s in spans if s._.side}
    return sides.pop() if len(sides) == 1 and sides <= {"right", "left"} else None


def _confidence(spans: list[Span], region: str | None, setting: str) -> float:
    score = 0.92
    if any(s._.is_uncertain for s in spans):
        score -= 0.3
    if region is None:
        score -= 0.25
    elif not any(a.label_ == "SPINAL_LEVEL" for s in spans for a in s._.linked_levels or []):
        score -= 0.07
    if not any(section_of(s) in DIAGNOSTIC_SECTIONS for s in spans):
        score -= 0.05
    return round(max(score, 0.1), 2)


def _unique(spans: Iterable[Span]) -> list[Span]:
    seen: dict[tuple[int, int], Span] = {}
    for s in spans:
        seen.setdefault((s.start_char, s.end_char), s)
    return sorted(seen.values(), key=lambda s: s.start_char)


def _dedupe(candidates: list[Candidate]) -> list[Candidate]:
    by_code: dict[str, Candidate] = {}
    for c in candidates:
        if c.code in by_code:
            by_code[c.code].evidence = _unique(by_code[c.code].evidence + c.evidence)
        else:
            by_code[c.code] = c
    return list(by_code.values())
