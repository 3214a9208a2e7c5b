"""Documentation-gap flags (docs/coding-rules.md section 4), each with its evidence.

A flag is what a coder or auditor would query the provider about. The names
are fixed by docs/coding-rules.md section 4; the message says what is missing
in plain words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from spacy.tokens import Doc, Span

from notecoder.codes import excludes1
from notecoder.excludes import Dropped
from notecoder.extensions import mention, sentence_text
from notecoder.linker import is_precise
from notecoder.regions import REGION_PHRASE
from notecoder.sections import section_of

if TYPE_CHECKING:
    from notecoder.coder import Candidate

#: Families whose codes do not raise MORE_SPECIFIC_CODE.
GENERAL_FAMILIES = ("M53.8", "M54.", "M46.4")


#: How sure a flag is. Flags raised on what the note says are firm; flags raised
#: on what it does not say (no imaging, no treatment found) can be a mention our
#: rules missed, and say so by a lower confidence.
CONFIDENCE = {
    "PAIN_ONLY": 0.85,
    "REGION_UNSPECIFIED": 0.8,
    "REGION_CONFLICT": 0.8,
    "IMAGING_MISSING": 0.75,
    "CONSERVATIVE_CARE_MISSING": 0.7,
    "MULTI_REGION": 0.9,
    "DISCITIS_EXCLUDES1": 0.95,
    "MORE_SPECIFIC_CODE": 0.9,
    "UNCERTAIN_DX": 0.85,
    "EXCLUDES1": 0.9,
}


FLAGS: tuple[str, ...] = tuple(CONFIDENCE)


def _flag(name: str, message: str, evidence: list[Span], code: str | None = None) -> dict[str, Any]:
    flag: dict[str, Any] = {
        "flag": name,
        "message": message,
        "confidence": CONFIDENCE[name],
        "evidence": evidence,
    }
    if code:
        flag["code"] = code
    return flag


def compute_flags(
    doc: Doc,
    candidates: list[Candidate],
    uncertain: list[Span],
    mentions: list[Span],
    rules: dict[str, Any],
    dropped: Sequence[tuple[Candidate, Candidate, Dropped]] = (),
) -> list[dict[str, Any]]:
    """All flags that apply to the note, in the order of docs/coding-rules.md section 4."""
    flags: list[dict[str, Any]] = []
    pain_prefixes = tuple(rules["pain_codes"])
    conditions = [c for c in candidates if c.kind == "condition"]
    if candidates and all(c.code.startswith(pain_prefixes) for c in candidates):
        flags.append(
            _flag(
                "PAIN_ONLY",
                "Only pain is documented: no named spine condition supports a more specific "
                "code (M53.8- would not survive audit).",
                [s for c in candidates for s in c.evidence],
            )
        )
    for c in conditions:
        if c.region is None and c.site_coded:
            flags.append(
                _flag(
                    "REGION_UNSPECIFIED",
                    f"No spinal region or level is documented for {c.evidence[0].text!r}.",
                    c.evidence,
                    c.code,
                )
            )
    flags.extend(_region_conflicts(conditions, rules))
    for c in conditions:
        if not c.family_m53_8:
            continue
        imaging = _imaging_for(c.region, mentions, rules)
        if not imaging:
            flags.append(
                _flag(
                    "IMAGING_MISSING",
                    f"No imaging finding documented for {REGION_PHRASE[c.region]}.",
                    c.evidence,
                    c.code,
                )
            )
    m53 = [c for c in conditions if c.family_m53_8]
    if m53 and not [m for m in mentions if _treatment_done(m, rules)]:
        flags.append(
            _flag(
                "CONSERVATIVE_CARE_MISSING",
                "No conservative treatment (physical therapy, chiropractic, injections, bracing, "
                "medication trial) is documented.",
                [s for c in m53 for s in c.evidence],
                m53[0].code,
            )
        )
    regions = {c.region for c in conditions if c.region}
    if len(regions) > 1 or "multiple" in regions:
        flags.append(
            _flag(
                "MULTI_REGION",
                "Conditions are documented in more than one region: one code per region.",
                [s for c in conditions for s in c.evidence],
            )
        )
    for c in conditions:
        if rules["concepts"].get(c.concept, {}).get("discitis"):
            # Quote the tabular list's own note (block M50-M54, Excludes1).
            note = next((n for n in excludes1("M53.8") if "discitis" in n.lower()), "discitis")
            flags.append(
                _flag(
                    "DISCITIS_EXCLUDES1",
                    f"M50-M54 excludes1 '{note}': discitis is coded to {c.code}, never to "
                    "M53.8- or M54.-.",
                    c.evidence,
                    c.code,
                )
            )
    for c in conditions:
        if not c.code.startswith(GENERAL_FAMILIES):
            flags.append(
                _flag(
                    "MORE_SPECIFIC_CODE",
                    f"{c.code} is more specific than M53.8-/M54.- for {c.evidence[0].text!r}.",
                    c.evidence,
                    c.code,
                )
            )
    for lost, kept, why in dropped:
        if rules["concepts"].get(kept.concept, {}).get("discitis"):
            continue  # DISCITIS_EXCLUDES1 names this case
        flags.append(
            _flag(
                "EXCLUDES1",
                f"{lost.code} ({lost.evidence[0].text!r}) is not coded beside {kept.code}: "
                f"{why.note_of} Excludes1 '{why.note}'.",
                unique_spans([*kept.evidence, *lost.evidence]),
                lost.code,
            )
        )
    if uncertain:
        flags.append(
            _flag(
                "UNCERTAIN_DX",
                "A spine diagnosis is documented as uncertain"
                + (
                    ": it is coded as established (inpatient)."
                    if doc._.setting == "inpatient"
                    else ": the documented symptoms are coded instead (outpatient)."
                ),
                uncertain,
            )
        )
    return flags


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


def _region_conflicts(conditions: list[Candidate], rules: dict[str, Any]) -> list[dict[str, Any]]:
    compatible = rules["compatible_regions"]
    out = []
    for c in conditions:
        for span in c.evidence:
            anchors = mention(span).linked_levels or []
            words = {mention(a).region for a in anchors if not is_precise(a)}
            levels = {mention(a).region for a in anchors if is_precise(a)}
            clash = {
                w
                for w in words
                if levels and w not in levels and not levels & set(compatible.get(w, []))
            }
            if clash:
                out.append(
                    _flag(
                        "REGION_CONFLICT",
                        f"{span.text!r} names the {'/'.join(sorted(clash))} region but the "
                        f"documented levels are {', '.join(sorted(levels))}: the levels decide "
                        "the code.",
                        [span, *anchors],
                        c.code,
                    )
                )
                break
    return out


def unique_spans(spans: Iterable[Span]) -> list[Span]:
    """The spans once each (by offsets), in text order."""
    seen: dict[tuple[int, int], Span] = {}
    for s in spans:
        seen.setdefault((s.start_char, s.end_char), s)
    return sorted(seen.values(), key=lambda s: s.start_char)
