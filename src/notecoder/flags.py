"""Documentation-gap flags (docs/coding-rules.md section 4), each with its evidence.

A ``query`` flag is a documentation gap a clinical documentation specialist
would take back to the provider (``notecoder.queries`` drafts the query); a
``coding`` flag explains a coding decision. Each flag's kind, confidence and
message template are data (code_families.json ``flags``); this module decides
when a flag applies and fills its message with what the result holds: the
codes, regions and levels concerned and the mention it rests on, never a claim
the result does not bear out (no "symptoms coded instead" where none were).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from spacy.tokens import Doc, Span

from notecoder.codes import description, excludes1
from notecoder.excludes import Dropped
from notecoder.extensions import mention, sentence_text
from notecoder.linker import is_precise
from notecoder.regions import REGION_PHRASE
from notecoder.schemas import FLAG_FIELDS
from notecoder.sections import section_of

if TYPE_CHECKING:
    from notecoder.coder import Candidate

#: Families whose codes do not raise MORE_SPECIFIC_CODE.
GENERAL_FAMILIES = ("M53.8", "M54.", "M46.4")

#: The flag names docs/coding-rules.md section 4 fixes (code_families.json defines each).
FLAGS: tuple[str, ...] = tuple(FLAG_FIELDS)


def quoted(spans: Iterable[Span]) -> str:
    """The mentions as the note words them, each once: 'disc herniation', 'stenosis'."""
    texts = dict.fromkeys(" ".join(s.text.split()) for s in spans)
    return ", ".join(f"'{t}'" for t in texts)


def _levels(spans: Iterable[Span]) -> list[str]:
    """The spinal levels documented for the mentions, as written ("L4-5"), each once."""
    return list(
        dict.fromkeys(
            " ".join(a.text.split())
            for s in spans
            for a in mention(s).linked_levels or []
            if is_precise(a)
        )
    )


def _at_levels(spans: Iterable[Span]) -> str:
    levels = _levels(spans)
    return f" at {', '.join(levels)}" if levels else ""


def _coded(candidates: Iterable[Candidate]) -> str:
    """Codes with the mentions they code: M54.50 ('low back pain')."""
    return "; ".join(f"{c.code} ({quoted(c.evidence[:1])})" for c in candidates)


class _Flags:
    """The flags of one note, built from the flag rules of code_families.json."""

    def __init__(self, rules: dict[str, Any]) -> None:
        self.rules = rules["flags"]
        self.flags: list[dict[str, Any]] = []

    def add(
        self,
        name: str,
        evidence: list[Span],
        code: str | None = None,
        case: str | None = None,
        **fields: Any,
    ) -> None:
        rule = self.rules[name]
        template = rule["message"] if case is None else rule["message"][case]
        flag: dict[str, Any] = {
            "flag": name,
            "kind": rule["kind"],
            "message": template.format(code=code, **fields),
            "confidence": rule["confidence"],
            "evidence": evidence,
            # What the message says, for the provider query (notecoder.queries).
            "fields": fields,
        }
        if code:
            flag["code"] = code
        self.flags.append(flag)


def compute_flags(
    doc: Doc,
    candidates: list[Candidate],
    uncertain: list[Span],
    mentions: list[Span],
    rules: dict[str, Any],
    dropped: Sequence[tuple[Candidate, Candidate, Dropped]] = (),
) -> list[dict[str, Any]]:
    """All flags that apply to the note, in the order of docs/coding-rules.md section 4."""
    out = _Flags(rules)
    pain_prefixes = tuple(rules["pain_codes"])
    conditions = [c for c in candidates if c.kind == "condition"]
    if candidates and all(c.code.startswith(pain_prefixes) for c in candidates):
        evidence = [s for c in candidates for s in c.evidence]
        # (About one code when there is one: then its FHIR Condition is the query's focus.)
        only = candidates[0].code if len(candidates) == 1 else None
        out.add("PAIN_ONLY", evidence, only, coded=_coded(candidates), mentions=quoted(evidence))
    for c in conditions:
        if c.region is None and c.site_coded:
            out.add("REGION_UNSPECIFIED", c.evidence, c.code, mention=quoted(c.evidence[:1]))
    _region_conflicts(out, conditions, rules)
    for c in conditions:
        if c.family_m53_8 and not _imaging_for(c.region, mentions, rules):
            out.add(
                "IMAGING_MISSING",
                c.evidence,
                c.code,
                mention=quoted(c.evidence[:1]),
                at_levels=_at_levels(c.evidence),
                region=REGION_PHRASE[c.region],
            )
    m53 = [c for c in conditions if c.family_m53_8]
    if m53 and not [m for m in mentions if _treatment_done(m, rules)]:
        evidence = [s for c in m53 for s in c.evidence]
        out.add(
            "CONSERVATIVE_CARE_MISSING",
            evidence,
            m53[0].code,
            coded=_coded(m53),
            mentions=quoted(evidence),
        )
    regions = list(dict.fromkeys(c.region for c in conditions if c.region))
    if len(regions) > 1 or "multiple" in regions:
        coded = [c for c in conditions if c.region]
        out.add(
            "MULTI_REGION",
            unique_spans(s for c in coded for s in c.evidence),
            count=len(regions),
            regions=", ".join(regions),
            coded=_coded(coded),
        )
    for c in conditions:
        if rules["concepts"].get(c.concept, {}).get("discitis"):
            # Quote the tabular list's own note (block M50-M54, Excludes1).
            note = next((n for n in excludes1("M53.8") if "discitis" in n.lower()), "discitis")
            out.add(
                "DISCITIS_EXCLUDES1", c.evidence, c.code, mention=quoted(c.evidence[:1]), note=note
            )
    for c in conditions:
        if not c.code.startswith(GENERAL_FAMILIES):
            out.add(
                "MORE_SPECIFIC_CODE",
                c.evidence,
                c.code,
                description=description(c.code),
                mention=quoted(c.evidence[:1]),
                at_levels=_at_levels(c.evidence),
            )
    for lost, kept, why in dropped:
        if rules["concepts"].get(kept.concept, {}).get("discitis"):
            continue  # DISCITIS_EXCLUDES1 names this case
        out.add(
            "EXCLUDES1",
            unique_spans([*kept.evidence, *lost.evidence]),
            lost.code,
            lost=lost.code,
            lost_mention=quoted(lost.evidence[:1]),
            kept=kept.code,
            kept_mention=quoted(kept.evidence[:1]),
            note_of=why.note_of,
            note=why.note,
        )
    if uncertain:
        _uncertain(out, doc, candidates, uncertain)
    return out.flags


def _uncertain(out: _Flags, doc: Doc, candidates: list[Candidate], uncertain: list[Span]) -> None:
    """UNCERTAIN_DX, saying what the result did with the diagnosis: outpatient, its
    symptoms coded instead (if any were); inpatient, the codes resting on it."""
    bounds = {(s.start, s.end) for s in uncertain}
    if doc._.setting == "inpatient":
        coded = [c for c in candidates if any((s.start, s.end) in bounds for s in c.evidence)]
        case = "inpatient" if coded else "inpatient_uncoded"
    else:
        coded = [c for c in candidates if c.kind == "pain"]
        case = "outpatient_symptoms" if coded else "outpatient"
    out.add("UNCERTAIN_DX", uncertain, case=case, mentions=quoted(uncertain), coded=_coded(coded))


def _documented(span: Span) -> bool:
    """Documented as done (now or before): not negated, planned, or a relative's."""
    status = mention(span)
    return not (status.is_negated or status.is_hypothetical or status.is_family)


def _treatment_done(span: Span, rules: dict[str, Any]) -> bool:
    """A treatment tried or under way; one in the plan counts only if it continues."""
    if span.label_ != "TREATMENT" or not _documented(span):
        return False
    attrs = mention(span)
    if section_of(span) != "plan" or attrs.response or attrs.duration:
        return True
    sentence = sentence_text(span).lower()
    return any(cue in sentence for cue in rules["ongoing_treatment_cues"])


def _imaging_for(region: str | None, mentions: list[Span], rules: dict[str, Any]) -> list[Span]:
    """Imaging findings that document ``region`` (a finding with no region counts for all)."""
    sections = set(rules["imaging_sections"])
    found = []
    for m in mentions:
        attrs = mention(m)
        is_finding = m.label_ == "IMAGING_FINDING" or (
            m.label_ == "CONDITION" and (attrs.modality or section_of(m) in sections)
        )
        if is_finding and _documented(m) and (not attrs.regions or region in attrs.regions):
            found.append(m)
    return found


def _region_conflicts(out: _Flags, conditions: list[Candidate], rules: dict[str, Any]) -> None:
    compatible = rules["compatible_regions"]
    for c in conditions:
        for span in c.evidence:
            anchors = mention(span).linked_levels or []
            words = [a for a in anchors if not is_precise(a)]
            levels = [a for a in anchors if is_precise(a)]
            level_regions = {mention(a).region for a in levels}
            clash = [
                w
                for w in words
                if level_regions
                and mention(w).region not in level_regions
                and not level_regions & set(compatible.get(mention(w).region, []))
            ]
            if clash:
                out.add(
                    "REGION_CONFLICT",
                    [span, *anchors],
                    c.code,
                    mention=quoted([span]),
                    words=quoted(clash),
                    word_regions="/".join(sorted({mention(w).region for w in clash})),
                    levels=", ".join(_levels([span])),
                    level_regions="/".join(sorted(r for r in level_regions if r)),
                )
                break


def unique_spans(spans: Iterable[Span]) -> list[Span]:
    """The spans once each (by offsets), in text order."""
    seen: dict[tuple[int, int], Span] = {}
    for s in spans:
        seen.setdefault((s.start_char, s.end_char), s)
    return sorted(seen.values(), key=lambda s: s.start_char)
