"""The coder: mentions in, ICD-10-CM candidates out (docs/coding-rules.md sections 2-3).

Reads the linked, context-marked mentions of ``doc.spans["notecoder"]`` and
sets ``doc._.codes``; then ``notecoder.flags`` sets ``doc._.flags``. Which
family a concept goes to is data (pipelines/spine/code_families.json, saved
with the pipeline); the codes themselves come from the tabular list through
``notecoder.codes``. The steps, in the order the rules apply them (version 3):

1. Scope: the diagnostic statement of the note type (assessment, impression,
   diagnoses, "Medical Reasoning", an operative note's postoperative diagnosis
   and, for a symptom, its cause), else the whole note; history sections,
   operative technique text and pain from non-spinal causes never count.
2. Status of each mention: excluded (negated, family, hypothetical,
   historical and not carried into the present), uncertain, or affirmed; a
   differential the note settles counts as affirmed, one it rules out as
   nothing.
3. Conditions: one code per concept and region (regions from the mention, its
   sentence, the same condition elsewhere or the procedure performed), with the
   "with" combinations (radiculopathy, myelopathy + disc disorder or spondylosis
   of the same region) and osteoporotic collapse beside M48.5-.
4. Pain: one code per region, combination (low back pain + sciatica), then
   dropped where a coded condition of the same region makes it integral.
5. Excludes1: every related pair of candidates is checked against the tabular
   notes (``notecoder.excludes``); the code a note points to is kept.
"""

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from spacy.tokens import Doc, Span

from notecoder import codes as icd
from notecoder import excludes
from notecoder.excludes import Dropped
from notecoder.extensions import (
    doc_text,
    mention,
    sentence_bounds,
    sentence_of,
    sentence_text,
)
from notecoder.flags import compute_flags, unique_spans
from notecoder.levels import VERTEBRAE, root_region
from notecoder.linker import anchor_regions, is_precise
from notecoder.regions import REGIONS
from notecoder.rulefile import RuleFileComponent
from notecoder.sections import section_of


@dataclass
class Candidate:
    """One suggested code with what supports it."""

    code: str
    concept: str
    region: str | None
    evidence: list[Span]
    kind: str  # "condition" | "pain"
    #: The probability that a coder keeps the code, set by ``notecoder_confidence``.
    confidence: float = 0.9
    #: Does the family code a region? A site-unspecified code of one that does
    #: asks for the level (REGION_UNSPECIFIED); M41.9 or M96.1 have no site to ask for.
    site_coded: bool = False
    #: How the region was found (``REGION_SOURCES``; None for pain, which takes none):
    #: a feature of the confidence model (``notecoder.confidence``).
    region_source: str | None = None

    @property
    def family_m53_8(self) -> bool:
        return self.code.startswith("M53.8")


#: How ``Coder._regions`` found a condition's region, the most direct first: the
#: mention's own precise level, its region word alone, its sentence's levels, the same
#: condition elsewhere in the note, the procedure's levels, the note's only region, none.
REGION_SOURCES = (
    "own_level",
    "region_word",
    "sentence",
    "same_condition",
    "procedure",
    "only_region",
    "none",
)


class _Item:
    """One mention as the coder reads it: its span, and what the coder asks of it, read once.

    The coder goes over a note's mentions a dozen times (status, scope, regions,
    combinations, pain) and asks each for its record, concept, label, sentence
    and section. Asked of a ``Span`` each answer is a lookup by the span's
    offsets or hash: 0.2-0.4 us, most of it cache misses, at 60,000 mentions a
    third of the coding. An item is hashed by identity and its answers are
    attributes.
    """

    __slots__ = (
        "attrs",
        "concept",
        "end",
        "index",
        "label",
        "section",
        "sentence",
        "span",
        "start",
    )

    def __init__(self, coder: "Coder", span: Span, index: int) -> None:
        self.span = span
        self.index = index  # (its place in the note's mentions)
        self.attrs = mention(span)
        self.label = span.label_
        self.start, self.end = span.start, span.end
        self.sentence = sentence_bounds(span)[0]  # (the sentence's first token)
        self.section = section_of(span)
        self.concept = coder._find_concept(self)


def _spans(items: Iterable[_Item]) -> list[Span]:
    """The mentions' spans once each (by offsets), in text order."""
    return unique_spans(m.span for m in items)


class _NoteIndex:
    """One note's mentions indexed once, for the questions the coder asks of each mention.

    "The regions of the same condition elsewhere in the note", "the mentions of
    this sentence", "a later negation of this concept": answered by scanning
    every mention for every mention, they cost time quadratic in the note's
    length (a minute and a half for 20 KB of repeated conditions). Built at the
    start of each ``Coder.code`` call; the answers are those of the scans.
    """

    def __init__(self, items: list[_Item], usable: list[_Item]) -> None:
        self.items = items
        self.precise: dict[str, dict[str, None]] = {}  # concept -> regions, in note order
        self.regions: dict[str, dict[str, None]] = {}  # the same, levels precise or not
        self.by_sentence: dict[tuple[str, int], list[_Item]] = {}
        self.last_negated: dict[str, int] = {}  # concept -> start of its last negated mention
        for m in items:
            concept, attrs = m.concept, m.attrs
            if not (attrs.is_family or attrs.is_negated) and any(
                is_precise(a) for a in attrs.linked_levels or []
            ):
                self.precise.setdefault(concept, {}).update(dict.fromkeys(attrs.regions or []))
            if not attrs.excluded():
                self.regions.setdefault(concept, {}).update(dict.fromkeys(attrs.regions or []))
            self.by_sentence.setdefault((m.label, m.sentence), []).append(m)
            if attrs.is_negated:
                self.last_negated[concept] = max(self.last_negated.get(concept, -1), m.start)
        self.certain = {
            m.concept for m in usable if m.label == "CONDITION" and not m.attrs.is_uncertain
        }
        self.procedure: dict[bool, list[str]] = {}  # by "roots", as Coder finds them
        self._only_region: list[str | None] | None = None
        self._level_regions: dict[int, list[str]] = {}

    def settled(self, m: _Item) -> bool:
        """Is an uncertain mention's concept documented as established elsewhere in the
        note (a differential the note settles, "consistent with" a herniation the MRI
        shows)?"""
        return m.concept in self.certain

    def ruled_out(self, m: _Item) -> bool:
        """Does the note later negate the concept ("probable instability" ... "no evidence
        of instability")? A differential settled that way is neither coded nor uncertain."""
        return self.last_negated.get(m.concept, -1) > m.end

    def only_region(self) -> list[str | None]:
        """The note's one region, when its levels and mentions name only one."""
        if self._only_region is None:
            anchors = {
                a.attrs.region
                for a in self.items
                if a.label == "SPINAL_LEVEL" and a.attrs.region and not a.attrs.is_family
            }
            anchors |= {
                r
                for m in self.items
                if m.label in ("CONDITION", "PAIN")
                for r in m.attrs.regions or []
            }
            self._only_region = [anchors.pop()] if len(anchors) == 1 else [None]
        return self._only_region

    def level_regions(self, sentence: int) -> list[str]:
        """The regions of the spinal levels of a sentence (by its first token), not a
        relative's, in note order (asked for each mention of the sentence: found once)."""
        found = self._level_regions.get(sentence)
        if found is None:
            records = [a.attrs for a in self.by_sentence.get(("SPINAL_LEVEL", sentence), [])]
            found = self._level_regions[sentence] = list(
                dict.fromkeys(r.region for r in records if r.region and not r.is_family)
            )
        return list(found)

    def sentence_levels(self, items: list[_Item]) -> list[_Item]:
        """The spinal levels of the sentences of these mentions."""
        sentences = dict.fromkeys(m.sentence for m in items)
        levels = [a for k in sentences for a in self.by_sentence.get(("SPINAL_LEVEL", k), [])]
        return sorted(levels, key=attrgetter("index")) if len(sentences) > 1 else levels


class Coder(RuleFileComponent):
    """Sets ``doc._.codes`` and ``doc._.flags`` from the mentions."""

    rules_file = "code_families.json"

    def __init__(self, spans_key: str) -> None:
        self.spans_key = spans_key
        self.rules: dict[str, Any] = {}
        self._forget()

    def _forget(self) -> None:
        """No note being coded. What is kept of a note lasts only while it is coded:
        it holds the note's Spans, so kept after it would keep its whole Doc alive
        until the next note, and leave a cycle for the garbage collector to find."""
        #: The note being coded, indexed (``code`` builds it; one note at a time, as
        #: with any spaCy component).
        self._note: _NoteIndex | None = None
        #: Whether a sentence's assessment entry names a non-spinal cause, by (sentence
        #: start, section).
        self._causes: dict[tuple[int, str | None], bool] = {}
        #: Whether a sentence matches a pattern, by (sentence start, pattern): asked for
        #: every mention of the sentence, answered once.
        self._sentence_hits: dict[tuple[int, str], bool] = {}
        #: Whether the note documents a list of cues (trauma, osteoporosis), by the list.
        self._cues: dict[tuple[str, ...], bool] = {}

    def rules_data(self) -> dict[str, Any]:
        return self.rules

    def set_rules(self, data: dict[str, Any]) -> None:
        self.rules = dict(data)

    def code_table(self, concepts: Iterable[str] = ()) -> dict[str, tuple[str, str | None]]:
        """Every code this coder can emit, with the concept and region that give it.

        Walks the same path as coding (families, region aliases, qualifiers), so
        a test can check each one against the tabular list. ``concepts`` adds the
        mention concepts the coder has no rule of its own for: the terminology
        concepts ("icd:M40.20") of the entity patterns.
        """
        table: dict[str, tuple[str, str | None]] = {}
        qualifiers = [
            icd.Qualifiers(level=level, pain=pain, claudication=claudication, side=side)
            for level in (None, "C2-C3", "C4-C5", "C5-C6", "C6-C7")
            for pain in ("unset", "back", "leg", "both", None)
            for claudication in (False, True)
            for side in ("unset", "right", "left", None)
        ]
        specs = dict(self.rules["concepts"])
        specs.update({c: spec for c in concepts if c not in specs and (spec := self._spec(c))})
        for concept, spec in specs.items():
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
        candidates, dropped = self._excludes1(candidates)
        doc._.codes = candidates
        doc._.flags = compute_flags(doc, candidates, uncertain, mentions, self.rules, dropped)
        return doc

    def _excludes1(
        self, candidates: list[Candidate]
    ) -> tuple[list[Candidate], list[tuple[Candidate, Candidate, Dropped]]]:
        """Drop the candidates a tabular Excludes1 note forbids beside another (section 2).

        Two codes count as related (Guidelines I.A.12.a: unrelated conditions are
        both coded) when they rest on the same mention or concern the same
        region; a pain code concerns the regions it covers.
        """
        by_code = {c.code: c for c in candidates}

        def regions(c: Candidate) -> set[str | None]:
            if c.kind == "pain":
                covers = self.rules["pain"].get(c.concept, {}).get("covers", [])
                return set(REGIONS) if covers == "any" else set(covers)
            return {c.region}

        def related(a: str, b: str) -> bool:
            ca, cb = by_code[a], by_code[b]
            shared = {(s.start, s.end) for s in ca.evidence} & {
                (s.start, s.end) for s in cb.evidence
            }
            return bool(shared or regions(ca) & regions(cb))

        kept, dropped = excludes.resolve(list(by_code), related)
        return [by_code[c] for c in kept], [(by_code[d.code], by_code[d.kept], d) for d in dropped]

    def code(
        self, doc: Doc, mentions: list[Span], setting: str
    ) -> tuple[list[Candidate], list[Span]]:
        """The candidates and the diagnoses left uncertain (for UNCERTAIN_DX)."""
        try:
            return self._code(doc, mentions, setting)
        finally:
            self._forget()

    def _code(
        self, doc: Doc, mentions: list[Span], setting: str
    ) -> tuple[list[Candidate], list[Span]]:
        history = set(self.rules["history_sections"])
        # Template technique text names no diagnosis (section 3); its levels still count.
        technique = set(self.rules["non_diagnostic_sections"])
        items = [_Item(self, m, i) for i, m in enumerate(mentions)]
        usable = [
            m
            for m in items
            if m.section not in history
            and not (m.section in technique and m.label in ("CONDITION", "PAIN"))
            and not self._not_current(m)
            and not self._non_spinal(m)
        ]
        clinical = [m for m in usable if m.label in ("CONDITION", "PAIN") and self._coded(m)]
        self._note = _NoteIndex(items, usable)
        scope = self._diagnostic_scope(doc, clinical)

        conditions: list[_Item] = []
        uncertain: list[_Item] = []
        for m in scope:
            if m.label != "CONDITION" and m.concept not in self.rules["concepts"]:
                continue
            if not m.attrs.is_uncertain or self._note.settled(m):
                conditions.append(m)
            elif self._note.ruled_out(m):
                continue
            else:
                uncertain.append(m)
                if setting == "inpatient":
                    conditions.append(m)
        uncertain += self._uncertain_indications(doc, clinical, scope)
        condition_codes = self._condition_codes(doc, conditions, usable)
        pain = self.rules["pain"]
        pains = [m for m in scope if m.label == "PAIN" and m.concept in pain]
        affirmed_pain = [p for p in pains if not p.attrs.is_uncertain]
        if uncertain and setting != "inpatient" and not affirmed_pain:
            # Outpatient: symptoms are coded instead of the uncertain diagnosis.
            pains = [m for m in usable if m.label == "PAIN" and m.concept in pain]
        pains = [p for p in pains if not p.attrs.is_uncertain]
        pain_codes = self._pain_codes(pains, condition_codes)
        return condition_codes + pain_codes, [m.span for m in uncertain]

    def _diagnostic_scope(self, doc: Doc, clinical: list[_Item]) -> list[_Item]:
        """The mentions of the diagnostic statement, by note type (docs/coding-rules.md section 3).

        Clinic, AI-scribe and radiology notes: their assessment, impression,
        diagnosis and "Medical Reasoning" sections. Operative notes: the
        postoperative diagnosis, or the preoperative one where the postoperative
        says "Same" (names nothing); where that diagnosis is only a symptom, the
        cause named in the indication or preoperative diagnosis. A note with no
        diagnostic statement is coded from the whole text.
        """
        policy = self.rules["diagnostic_statement"]
        present = {
            section.category
            for section in doc._.sections
            if section.body_span[1] > section.body_span[0]
        }
        statement = set(policy["sections"]) & present
        operative = policy["operative"]
        with_mentions = {m.section for m in clinical}
        for primary, fallback in operative["same_as"].items():
            if primary in with_mentions:  # else "Same": the fallback stays in the statement
                statement.discard(fallback)
        if not statement:
            return clinical
        scope = [m for m in clinical if m.section in statement]
        if scope and all(m.label == "PAIN" for m in scope):
            causes = [
                m
                for m in clinical
                if m.label == "CONDITION" and m.section in operative["cause_sections"]
            ]
            scope.extend(causes)
        return scope

    def _uncertain_indications(
        self, doc: Doc, clinical: list[_Item], scope: list[_Item]
    ) -> list[_Item]:
        """An operative note's indication left uncertain ("exam consistent with
        radiculopathy") and never settled: a diagnosis that stays uncertain (UNCERTAIN_DX)."""
        operative = self.rules["diagnostic_statement"]["operative"]
        if not any(s.category in operative["same_as"] for s in doc._.sections):
            return []
        sections = set(operative["uncertain_sections"])
        in_scope = set(scope)
        return [
            m
            for m in clinical
            if m.label == "CONDITION"
            and m not in in_scope
            and m.section in sections
            and m.attrs.is_uncertain
            and not self._note.settled(m)
            and not self._note.ruled_out(m)
        ]

    def _not_current(self, m: _Item) -> bool:
        """Negated, a relative's, hypothetical, or historical and not carried into the present.

        Section 3 (v3): "history of chronic low back pain, worse this week" and a
        condition "since 2019, still" are current; a dated mention the sentence
        does not bring forward stays historical.
        """
        status = m.attrs
        if not status.excluded():
            return False
        if status.is_negated or status.is_family or status.is_hypothetical:
            return True
        span = m.span
        sent = sentence_of(span)
        window = span.doc[max(sent.start, span.start - 4) : min(sent.end, span.end + 4)]
        return re.search(self.rules["present_cues"], window.text) is None

    def _non_spinal(self, m: _Item) -> bool:
        """Pain the note places at a non-spinal site or puts down to a non-spinal cause."""
        if m.label != "PAIN":
            return False
        rules = self.rules["non_spinal_pain"]
        span = m.span
        after = doc_text(span.doc)[span.end_char : sentence_of(span).end_char]
        if re.search(rules["site"], after):
            return True
        # The same for every pain of one sentence: looked for once per sentence and section.
        key = (m.sentence, m.section)
        if key not in self._causes:
            entry = _entry_text(span, rules["entry_sections"])
            self._causes[key] = re.search(rules["cause"], entry) is not None
        return self._causes[key]

    def _cue_documented(self, doc: Doc, cues: list[str]) -> bool:
        """:func:`_cue_documented` of the note, asked once per note (not per fracture)."""
        key = tuple(cues)
        if key not in self._cues:
            self._cues[key] = _cue_documented(doc_text(doc), cues)
        return self._cues[key]

    def _sentence_matches(self, m: _Item, pattern: str) -> bool:
        key = (m.sentence, pattern)
        if key not in self._sentence_hits:
            self._sentence_hits[key] = re.search(pattern, sentence_text(m.span)) is not None
        return self._sentence_hits[key]

    def _coded(self, m: _Item) -> bool:
        return self._spec(m.concept) is not None or m.concept in self.rules["pain"]

    def _spec(self, concept: str) -> dict[str, Any] | None:
        """The family rules of a concept; terminology concepts ("icd:M40.20") name their stem."""
        spec = self.rules["concepts"].get(concept)
        prefix = self.rules["terminology_prefix"]
        if spec is None and concept.startswith(prefix):
            return {"family": concept[len(prefix) :]}
        return spec

    def _find_concept(self, m: _Item) -> str:
        """The mention's concept, with back pain of a known region made that region's pain."""
        attrs = m.attrs
        concept = attrs.concept or ""
        if concept == "back_pain" and attrs.regions:
            return self.rules["back_pain_by_region"].get(attrs.regions[0], concept)
        if concept == "back_pain" and self._sentence_matches(m, self.rules["leg_radiation"]):
            # "Back pain radiating to the leg" is low back pain (section 2, v3).
            return "low_back_pain"
        if concept == "discitis" and _sentence_mentions(m.span, self.rules["pyogenic_cues"]):
            return "discitis_pyogenic"
        return concept

    # -- conditions ------------------------------------------------------------
    def _condition_codes(
        self, doc: Doc, conditions: list[_Item], usable: list[_Item]
    ) -> list[Candidate]:
        by_key: dict[tuple[str, str | None], list[_Item]] = {}
        # (mention, region) -> how found; by Span, as the candidates' evidence is.
        sources: dict[tuple[Span, str | None], str] = {}
        for m in conditions:
            regions, source = self._regions(m)
            for region in regions:
                by_key.setdefault((m.concept, region), []).append(m)
                sources.setdefault((m.span, region), source)
        by_key = self._combine(by_key, usable)
        pain_detail = self._pain_detail(usable)
        claudication = any(m.concept == "neurogenic_claudication" for m in usable)
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
            spec = self._spec(concept) or {"family": concept}
            if spec.get("fracture"):
                out.extend(self._fractures(doc, spec, region, spans))
                continue
            if spec.get("collapse"):
                out.extend(self._osteoporotic(doc, region, spans))
            level = _cervical_level(spans) or _cervical_level(self._note.sentence_levels(spans))
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
                        evidence=_spans(spans),
                        kind="condition",
                        site_coded=not spec.get("no_region") and icd.has_regions(family),
                    )
                )
        for c in out:  # the most direct way any of its mentions found the region
            found = [sources[s, c.region] for s in c.evidence if (s, c.region) in sources]
            c.region_source = min(found, key=REGION_SOURCES.index, default=None)
        return _dedupe(out)

    def _fractures(
        self, doc: Doc, spec: dict[str, Any], region: str | None, spans: list[_Item]
    ) -> list[Candidate]:
        """Traumatic fractures by vertebra; without trauma a compression fracture is a
        collapsed vertebra (M48.5-), and a fracture with no spinal level is not coded."""
        text = " ".join(s.span.text.lower() for s in spans)
        vertebral = any(w in text for w in ("vertebra", "compression", "burst", "wedge", "chance"))
        if region is None or not (vertebral or _vertebrae(spans)):
            return []
        if not self._cue_documented(doc, self.rules["trauma_cues"]):
            if "compression" not in text and "wedge" not in text:
                return []
            collapsed = self.rules["concepts"]["collapsed_vertebra"]
            code = icd.resolve(collapsed["family"], region)
            return [
                Candidate(code, "collapsed_vertebra", region, _spans(spans), "condition"),
                *self._osteoporotic(doc, region, spans),
            ]
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
            out.append(Candidate(code, "fracture", region, _spans(spans), "condition"))
        return out

    def _osteoporotic(self, doc: Doc, region: str | None, spans: list[_Item]) -> list[Candidate]:
        """A collapsed vertebra with osteoporosis documented is also M80.08X- (section 2).

        Both candidates are returned: the Excludes1 note at M48.5 then keeps the
        osteoporotic fracture and says which code it dropped.
        """
        rule = self.rules["osteoporotic_collapse"]
        if not self._cue_documented(doc, rule["cues"]):
            return []
        code = icd.resolve(rule["family"])
        return [Candidate(code, "osteoporotic_collapse", region, _spans(spans), "condition")]

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

    def _regions(self, m: _Item) -> tuple[list[str | None], str]:
        """The regions of a condition, with levels documented elsewhere where it has none,
        and how they were found (one of ``REGION_SOURCES``).

        Section 1 (v3): a condition of the diagnostic statement with no level of
        its own takes the levels documented for it anywhere in the note (the same
        condition in the findings or HPI, then the procedure performed); one named
        only by a region word takes the levels of the same condition in that
        region. Only where the note names no level or region for it is it site
        unspecified; limb words are no region.
        """
        concept = m.concept
        spec = self._spec(concept) or {}
        attrs = m.attrs
        own = list(attrs.regions or [])
        if own and any(is_precise(a) for a in attrs.linked_levels or []):
            return own, "own_level"
        combining = concept in self.rules["combinations"]
        if (spec.get("no_region") and not combining) or (spec.get("injury") and not own):
            # An injury's region is its own ("hip fracture" is not a spine fracture).
            return (own, "region_word") if own else ([None], "none")
        # The regions of the same condition where the note gives it precise levels (this
        # mention adds none of its own: with regions and precise levels it returned above).
        same = list(self._note.precise.get(concept, {}))
        if own:
            # Each region word is refined by the levels of the same condition in it,
            # else by those of the procedure performed.
            # A junction word ("lumbosacral") is already as precise as a level.
            compatible = self.rules["compatible_regions"]
            junctions = self.rules["junction_neighbours"]
            levels = same or self._procedure_regions(spec)
            refined = [
                r
                for word in own
                for r in [
                    r
                    for r in levels
                    if r == word or (word not in junctions and r in compatible.get(word, []))
                ]
                or [word]
            ]
            source = "region_word"
            if set(refined) & set(levels):
                source = "same_condition" if same else "procedure"
            return list(dict.fromkeys(refined)), source
        sentence = self._sentence_regions(m)
        if sentence:
            return sentence, "sentence"
        same += self._note.regions.get(concept, {})  # (this mention has no regions)
        if same:
            return list(dict.fromkeys(same)), "same_condition"
        procedure = self._procedure_regions(spec)
        if procedure:
            return procedure, "procedure"
        only = self._note.only_region()
        return only, "none" if only == [None] else "only_region"

    def _sentence_regions(self, m: _Item) -> list[str]:
        """Regions for a mention with none of its own, from its sentence: those of the
        condition it is coordinated with ("spondylolisthesis and stenosis at L4-5 and
        L5-S1"), else those of the sentence's levels ("at L4-L5 ... impingement by a
        disc protrusion")."""
        doc = m.span.doc
        same = self._note.by_sentence.get((m.label, m.sentence), [])
        k = bisect_left(same, m.end, key=attrgetter("start"))  # (in note order)
        after = same[k] if k < len(same) else None
        if after and all(doc[i].lower_ in _COORDINATION for i in range(m.end, after.start)):
            regions = [
                r
                for a in after.attrs.linked_levels or []
                if is_precise(a)
                for r in anchor_regions(a)
                if r
            ]
            if regions:
                return list(dict.fromkeys(regions))
        return self._note.level_regions(m.sentence)

    def _procedure_regions(self, spec: dict[str, Any]) -> list[str]:
        """Regions of the levels of the procedure performed; single levels as nerve
        roots for a root condition ("L4, L5 and S1 transforaminal" -> lumbar, lumbosacral).
        The same for every mention of a note: found once per note."""
        roots = bool(spec.get("roots"))
        if roots not in self._note.procedure:
            self._note.procedure[roots] = self._find_procedure_regions(roots)
        return self._note.procedure[roots]

    def _find_procedure_regions(self, roots: bool) -> list[str]:
        sections = set(self.rules["procedure_sections"])
        regions: list[str] = []
        for a in self._note.items:
            if a.label != "SPINAL_LEVEL" or a.section not in sections:
                continue
            levels = a.attrs.levels or []
            if roots and len(levels) == 1 and levels[0][0] in "CTLS":
                regions.append(root_region(levels[0]))
            elif a.attrs.region:
                regions.append(a.attrs.region)
        return list(dict.fromkeys(regions))

    def _combine(
        self, by_key: dict[tuple[str, str | None], list[_Item]], usable: list[_Item]
    ) -> dict[tuple[str, str | None], list[_Item]]:
        """ICD-10-CM's "with" convention: radiculopathy or myelopathy with a disc disorder
        or spondylosis of its region is one combination code (section 2).

        The partner may be documented anywhere in the note; where partners share
        the sentence of the condition ("herniation at C5-6 with myelopathy"), only
        those combine. A partner that combines is not coded alone; a condition
        with no partner keeps its own code (M54.1-, G95.9) unless it has none.
        """
        combinations = self.rules["combinations"]
        compatible = self.rules["compatible_regions"]
        out = dict(by_key)
        partners: dict[tuple[str, str | None], list[_Item]] = {
            k: v for k, v in by_key.items() if self._partner_kind(k[0])
        }
        for m in usable:
            if m.label != "CONDITION":
                continue
            if m.attrs.is_uncertain or not self._partner_kind(m.concept):
                continue
            for region in m.attrs.regions or []:
                partners.setdefault((m.concept, region), [m])
        sciatica = [m for m in usable if m.concept == "sciatica"]
        hedged = {m.concept for m in self._note.items if m.attrs.is_uncertain or m.attrs.is_negated}
        for key, spans in by_key.items():
            rule = combinations.get(key[0])
            if rule is None:
                continue
            if rule.get("unless_hedged") in hedged:
                # "Cord compression" is not read as myelopathy where the note itself
                # calls the myelopathy uncertain or absent.
                out.pop(key, None)
                continue
            region = key[1]
            fits = [
                k
                for k in partners
                if k[1] is not None
                and (k[1] == region or (region and k[1] in compatible.get(region, [])))
                and self._partner_kind(k[0]) in rule["with"]
                and (k in by_key or rule["partners_from"] == "note")
            ]
            # A partner of the very region beats one of a neighbouring junction.
            fits = [k for k in fits if k[1] == region] or fits
            sentences = {s.sentence for s in spans}
            close = [k for k in fits if any(p.sentence in sentences for p in partners[k])]
            for k in close or fits:
                combined = rule["with"][self._partner_kind(k[0])]
                out.setdefault((combined, k[1]), []).extend([*partners[k], *spans])
                out.pop(k, None)
            if close or fits or not rule["coded_alone"]:
                out.pop(key, None)
        for key, spans in list(out.items()):
            # Sciatica with a lumbar disc displacement: the disc with radiculopathy.
            spec = self._spec(key[0]) or {}
            if (
                sciatica
                and spec.get("disc")
                and key[0] != "disc_degeneration"
                and key[1] in ("lumbar", "lumbosacral")
            ):
                out.pop(key)
                out.setdefault(("disc_with_radiculopathy", key[1]), []).extend([*spans, *sciatica])
        return out

    def _partner_kind(self, concept: str) -> str | None:
        """ "disc" or "spondylosis" for the partners of the "with" combinations."""
        spec = self._spec(concept) or {}
        return spec.get("partner")

    def _pain_detail(self, usable: list[_Item]) -> str | None:
        """The M51.36-/M51.37- split: back pain, leg pain, both or neither."""
        concepts = {m.concept for m in usable if m.label in ("PAIN", "CONDITION")}
        back = bool(concepts & set(self.rules["back_pain_concepts"]))
        leg = bool(concepts & set(self.rules["leg_pain_concepts"])) or "radiculopathy" in concepts
        leg = leg or any(
            m.attrs.concept == "back_pain"
            and self._sentence_matches(m, self.rules["leg_radiation"])
            for m in usable
        )
        return "both" if back and leg else "back" if back else "leg" if leg else None

    # -- pain -------------------------------------------------------------------
    def _pain_codes(self, pains: list[_Item], conditions: list[Candidate]) -> list[Candidate]:
        """Pain codes, one per region (section 2, v3), less those integral to a condition."""
        rules = self.rules["pain"]
        by_concept: dict[str, list[_Item]] = {}
        for p in pains:
            by_concept.setdefault(p.concept, []).append(p)
        if "back_pain" in by_concept:
            # Back pain NOS takes its region from the note's other back pain ("backbone
            # pain" in the impression, "chronic low back pain" in the HPI).
            borrows = set(self.rules["back_pain_borrows"])
            regional = {
                m.concept
                for m in self._note.items
                if m.label == "PAIN"
                and m.concept in borrows
                and not (m.attrs.is_negated or m.attrs.is_family)
            }
            if len(regional) == 1:
                concept = regional.pop()
                by_concept.setdefault(concept, []).extend(by_concept.pop("back_pain"))
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
                    evidence=_spans(spans),
                    kind="pain",
                )
            )
        return _dedupe(out)


def _vertebrae(spans: list[_Item]) -> list[str]:
    """The single vertebrae ("L1", not "L4-L5") linked to these mentions, in order."""
    found = [
        mention(a).levels[0]
        for s in spans
        for a in s.attrs.linked_levels or []
        if a.label_ == "SPINAL_LEVEL" and len(mention(a).levels or []) == 1
    ]
    return list(dict.fromkeys(found))


_VERTEBRA_REGION = {"C": "cervical", "T": "thoracic", "L": "lumbar"}
_NO_TRAUMA = re.compile(
    r"(?:\bno|\bdenies|\bwithout|\bnegative for|\bnon-?|\batraumatic)\W*(?:\w+\W+)?$"
)


def _cue_documented(text: str, cues: list[str]) -> bool:
    """Does the note document one of the cues (trauma, osteoporosis), not negated just before?"""
    lowered = text.lower()
    for cue in cues:
        for match in re.finditer(rf"\b{re.escape(cue)}", lowered):
            if not _NO_TRAUMA.search(lowered[max(0, match.start() - 25) : match.start()]):
                return True
    return False


#: A numbered list item ("2. Hypertension."): the next entry of an assessment.
_LIST_ITEM = re.compile(r"\s*\(?\d{1,2}[.)]\s")
#: How far an assessment entry runs: sentences after the first, and characters (a note
#: with no sentence ends has sentences of 200 tokens, and each of its pains would
#: otherwise have nine of them, 10 KB, searched for a cause).
_ENTRY_SENTENCES = 8
_ENTRY_CHARS = 1500


def _entry_text(span: Span, sections: list[str]) -> str:
    """The span's sentence and the rest of its assessment entry: the following
    sentences up to the next numbered item or a section other than ``sections``
    (an AI-scribe "1. Back pain." followed by its "Medical Reasoning:"), while
    the entry is under ``_ENTRY_CHARS``."""
    doc = span.doc
    if not doc.has_annotation("SENT_START"):
        return doc_text(doc)
    text = doc_text(doc)
    sent = sentence_of(span)
    parts = [text[sent.start_char : sent.end_char]]
    length = len(parts[0])
    allowed = {section_of(span), *sections}
    for _ in range(_ENTRY_SENTENCES):
        if sent.end >= len(doc) or length >= _ENTRY_CHARS:
            break
        sent = sentence_of(doc[sent.end : sent.end + 1])
        part = text[sent.start_char : sent.end_char]
        if _LIST_ITEM.match(part) or section_of(sent) not in allowed:
            break
        parts.append(part)
        length += len(part)
    return " ".join(parts)


def _sentence_mentions(span: Span, cues: list[str]) -> bool:
    text = sentence_text(span).lower()
    return any(cue in text for cue in cues)


def _family_side(region: str | None) -> str:
    return {"occipito-atlanto-axial": "cervical", "cervicothoracic": "cervical"}.get(
        region or "", "default"
    )


#: Words that coordinate two conditions sharing their levels ("spondylolisthesis and
#: stenosis at L4-5").
_COORDINATION = {"and", "or", ",", "/", "&", "with"}


def _cervical_level(spans: list[_Item]) -> str | None:
    """The most superior cervical disc level of the mentions (tabular note at M50)."""
    found = [
        (VERTEBRAE.index(levels[0]), f"{levels[0]}-{levels[1]}")
        for m in spans
        for anchor in (m.attrs.linked_levels or [] if m.label != "SPINAL_LEVEL" else [m.span])
        for levels in [mention(anchor).levels or []]
        if len(levels) == 2 and all(v.startswith("C") for v in levels)
    ]
    return min(found)[1] if found else None


def _side(spans: list[_Item]) -> str | None:
    sides = {s.attrs.side for s in spans if s.attrs.side}
    return sides.pop() if len(sides) == 1 and sides <= {"right", "left"} else None


def _dedupe(candidates: list[Candidate]) -> list[Candidate]:
    by_code: dict[str, Candidate] = {}
    for c in candidates:
        if c.code in by_code:
            by_code[c.code].evidence = unique_spans(by_code[c.code].evidence + c.evidence)
        else:
            by_code[c.code] = c
    return list(by_code.values())
