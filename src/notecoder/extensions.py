"""Custom attributes that notecoder's components set on ``Doc`` and ``Span``.

Registered once, on import, with ``force=True`` so that reloading a pipeline in
the same process never fails. Everything a component tells the next one travels
here, never through component state, so any component can be replaced alone.
"""

from __future__ import annotations

import numpy
from spacy.attrs import SENT_START
from spacy.tokens import Doc, Span

#: The span group every notecoder mention lives in (spans may overlap there,
#: unlike ``doc.ents``: a CONDITION can contain its SPINAL_LEVEL).
SPANS_KEY = "notecoder"
#: Region words ("lumbar", "low back", "neck") found by the level component.
#: They are not entities of their own; linking reads them.
REGION_WORDS_KEY = "notecoder_region_words"

_SPAN_ATTRS: dict[str, object] = {
    # SPINAL_LEVEL / region words: the normalised vertebra span and region.
    "levels": None,  # list[str], e.g. ["T12", "L1"]
    "region": None,  # str, one of notecoder.regions.REGIONS
    # CONDITION / PAIN / ... : what linking tied the mention to.
    "linked_levels": None,  # list[Span] of SPINAL_LEVEL spans
    "regions": None,  # list[str], one per region the mention is tied to
    "concept": None,  # str: the rule id, e.g. "disc_degeneration"
    "side": None,  # "right" | "left" | "bilateral" | None
    "modality": None,  # IMAGING_FINDING: "MRI" | "CT" | "X-ray"
    "duration": None,  # TREATMENT: "6 weeks"
    "response": None,  # TREATMENT: "failed" | "improved" | ...
    "abbreviation_of": None,  # Span: the long form this short form stands for
}

_DOC_ATTRS: dict[str, object] = {
    "codes": None,  # list[notecoder.coder.Candidate]: code, evidence spans, confidence
    "flags": None,  # list[dict]: flag, message, confidence, evidence spans, code
    "setting": "outpatient",
    # The mentions ConText modifies: spinal levels are never asserted or denied.
    "context_targets": None,  # list[Span]
}


_TEXT_KEY = "notecoder.text"


def doc_text(doc: Doc) -> str:
    """``doc.text``, computed once per Doc.

    ``Doc.text`` joins a new Python Token per token on every call; the level
    finder, the sectionizer's heading rules and the coder all read the text.
    """
    text = doc.user_data.get(_TEXT_KEY)
    if text is None:
        text = doc.user_data[_TEXT_KEY] = doc.text
    return text


_SENTENCES_KEY = "notecoder.sentences"


def sentence_of(item: Span) -> Span:
    """The sentence of a span, or the whole Doc when no sentence splitter ran.

    Components read a mention's sentence for context (attributes, cues, levels);
    a pipeline built without ``notecoder_sentences`` still works, coarsely.
    ``Span.sent`` walks the tokens to the sentence's ends on every call, so the
    sentence bounds of every token are computed once per Doc (after the
    splitter: they never change afterwards) and looked up.
    """
    doc = item.doc
    if not doc.has_annotation("SENT_START"):
        return doc[:]
    bounds = doc.user_data.get(_SENTENCES_KEY)
    if bounds is None or len(bounds[0]) != len(doc):
        starts = doc.to_array(SENT_START) == 1
        starts[0] = True
        first = numpy.maximum.accumulate(numpy.where(starts, numpy.arange(len(doc)), 0))
        ends = numpy.append(numpy.flatnonzero(starts)[1:], len(doc))
        bounds = doc.user_data[_SENTENCES_KEY] = (first, ends[numpy.cumsum(starts) - 1])
    first, ends = bounds
    return doc[int(first[item.start]) : int(ends[item.start])]  # its first token's, as Span.sent


def register() -> None:
    """Register every notecoder extension (idempotent)."""
    for name, default in _SPAN_ATTRS.items():
        Span.set_extension(name, default=default, force=True)
    for name, default in _DOC_ATTRS.items():
        Doc.set_extension(name, default=default, force=True)


register()
