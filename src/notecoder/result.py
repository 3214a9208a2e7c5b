"""A processed Doc as the result JSON of docs/formats.md (field names are fixed there)."""

from __future__ import annotations

from typing import Any

from spacy.tokens import Doc, Span

from notecoder.codes import description
from notecoder.context import CATEGORY_ATTRIBUTE
from notecoder.extensions import SPANS_KEY, doc_text, mention, restore, sentence_bounds
from notecoder.sections import section_of


def empty_result(note_id: str | None, error: str | None = None) -> dict[str, Any]:
    """The result of a note with nothing found, or that could not be processed."""
    return {"note_id": note_id, "codes": [], "flags": [], "entities": [], "error": error}


#: Words that belong to a diagnostic phrase before its condition ("left paracentral",
#: "severe multilevel") or between it and its levels ("at", "of the", ", C2").
_PHRASE_WORDS = frozenset(
    {
        "left", "right", "bilateral", "mild", "moderate", "severe", "marked", "minimal",
        "chronic", "acute", "subacute", "recurrent", "residual", "multilevel", "diffuse",
        "focal", "central", "paracentral", "foraminal", "large", "small", "significant",
        "at", "of", "the", "in", "from", "to", "through", "and", ",", "-", "–", "/",
    }
)  # fmt: skip

#: Those a phrase takes before its first word ("severe", "the"): not the connectors.
_LEADING_WORDS = _PHRASE_WORDS - {",", "and", "-"}


def diagnostic_phrase(span: Span) -> tuple[int, int]:
    """The token bounds of a mention's whole diagnostic phrase: "fracture dislocation,
    C2", "severe foraminal narrowing at L4-5 and L5-S1", not "Fracture"
    (docs/coding-rules.md section 4).

    The mention grows over its own linked levels and region words where only
    qualifiers and connectors stand between them, within its sentence.
    """
    doc = span.doc
    sent_start, sent_end = sentence_bounds(span)
    anchors = mention(span).linked_levels or []
    if len(anchors) > 1:
        anchors = sorted(anchors, key=lambda a: a.start)
    start, end = span.start, span.end

    def joined(lo: int, hi: int) -> bool:
        return hi - lo <= 4 and all(doc[i].lower_ in _PHRASE_WORDS for i in range(lo, hi))

    for anchor in anchors:  # to the right: "at L4-5", "at L4-5 and L5-S1"
        if anchor.start >= end and anchor.end <= sent_end and joined(end, anchor.start):
            end = anchor.end
    for anchor in reversed(anchors):  # to the left: "L4-5 left paracentral", "lumbar"
        if anchor.end <= start and anchor.start >= sent_start and joined(anchor.end, start):
            start = anchor.start
    while start > sent_start and doc[start - 1].lower_ in _LEADING_WORDS:
        start -= 1
    while start < span.start and doc[start].lower_ in {"at", "of", "the", "in", "to", "/"}:
        start += 1
    return start, end


def _char_bounds(doc: Doc, start: int, end: int) -> tuple[int, int]:
    """The character offsets of tokens [start, end) (a Span's ``start_char``/``end_char``
    without building it)."""
    last = doc[end - 1]
    return doc[start].idx, last.idx + len(last)


def evidence(span: Span, found: Triggers) -> dict[str, Any]:
    """One evidence entry: the mention's whole diagnostic phrase (offsets and text),
    label and section; ``mention`` gives the offsets of the matched words alone."""
    doc = span.doc
    if span.label_ == "SPINAL_LEVEL":
        begin, end = span.start_char, span.end_char
    else:
        begin, end = _char_bounds(doc, *diagnostic_phrase(span))
    return {
        "start": begin,
        "end": end,
        "text": doc_text(doc)[begin:end],
        "label": span.label_,
        "section": section_of(span),
        "mention": {"start": span.start_char, "end": span.end_char},
        "modifiers": modifiers(span, found),
    }


#: ConText's triggers by the offsets of the mention they modify.
Triggers = dict[tuple[int, int], list[Any]]


def triggers(doc: Doc) -> Triggers:
    """The ConText triggers of every mention, from the Doc's context graph.

    Its edges are what ConText adds to each target's ``span._.modifiers``; read
    once per note rather than through ``span._`` per mention (2 us each).
    """
    graph = doc._.context_graph if Doc.has_extension("context_graph") else None
    found: Triggers = {}
    for target, modifier in graph.edges if graph is not None else ():
        found.setdefault((target.start_char, target.end_char), []).append(modifier)
    return found


def modifiers(span: Span, found: Triggers) -> list[dict[str, Any]]:
    """The ConText triggers that set this mention's attributes, with their offsets."""
    out = []
    for modifier in found.get((span.start_char, span.end_char), ()):
        attribute = CATEGORY_ATTRIBUTE.get(modifier.category)
        if attribute is None:
            continue
        start, end = _char_bounds(span.doc, *modifier.modifier_span)
        out.append(
            {
                "attribute": attribute,
                "category": modifier.category,
                "text": doc_text(span.doc)[start:end],
                "start": start,
                "end": end,
            }
        )
    return out


def entity(span: Span, found: Triggers) -> dict[str, Any]:
    """One mention as a docs/formats.md entity."""
    attrs = mention(span)
    start, end, label = span.start_char, span.end_char, span.label_
    out: dict[str, Any] = {
        "start": start,
        "end": end,
        "text": doc_text(span.doc)[start:end],
        "label": label,
        "negated": bool(attrs.is_negated),
        "historical": bool(attrs.is_historical),
        "hypothetical": bool(attrs.is_hypothetical),
        "uncertain": bool(attrs.is_uncertain),
        "family": bool(attrs.is_family),
        "section": section_of(span),
    }
    if label == "SPINAL_LEVEL":
        out["levels"] = list(attrs.levels or [])
        out["region"] = attrs.region
    else:
        linked = [a for a in attrs.linked_levels or [] if a.label_ == "SPINAL_LEVEL"]
        out["levels"] = list(dict.fromkeys(v for a in linked for v in mention(a).levels or []))
        regions = list(attrs.regions or [])
        out["region"] = regions[0] if regions else None
        out["regions"] = regions
        out["concept"] = attrs.concept
    for extra, value in (
        ("modality", attrs.modality),
        ("side", attrs.side),
        ("duration", attrs.duration),
        ("response", attrs.response),
    ):
        if value:
            out[extra] = value
    out["modifiers"] = modifiers(span, found)
    return out


def doc_to_result(doc: Doc, note_id: str | None) -> dict[str, Any]:
    """The docs/formats.md result for a Doc the full pipeline has processed."""
    restore(doc)  # (a Doc from nlp.pipe(n_process=...) or a DocBin was read from bytes)
    context = triggers(doc)
    found: dict[Span, dict[str, Any]] = {}

    def evidence_of(spans: list[Span]) -> list[dict[str, Any]]:
        # A mention is often the evidence of several codes and flags: read once.
        return [dict(found.get(s) or found.setdefault(s, evidence(s, context))) for s in spans]

    codes = [
        {
            "code": c.code,
            "description": description(c.code),
            "confidence": c.confidence,
            "region": c.region,
            "evidence": evidence_of(c.evidence),
        }
        for c in doc._.codes or []
    ]
    flags = []
    for f in doc._.flags or []:
        flag = {k: v for k, v in f.items() if k not in ("evidence", "fields", "query")}
        flag["evidence"] = evidence_of(f["evidence"])
        query = f.get("query")
        if query is not None:
            cited = evidence_of(query["indicators"])
            indicators = [{k: e[k] for k in ("start", "end", "text", "section")} for e in cited]
            query = {**query, "indicators": indicators}
        flag["query"] = query
        flags.append(flag)
    spans = doc.spans.get(SPANS_KEY, [])
    return {
        "note_id": note_id,
        "setting": doc._.setting,
        "codes": codes,
        "flags": flags,
        "entities": [
            entity(s, context) for s in sorted(spans, key=lambda s: (s.start_char, -s.end_char))
        ],
        "error": None,
    }
