"""Custom attributes that notecoder's components set on ``Doc`` and ``Span``.

Registered once, on import, with ``force=True`` so that reloading a pipeline in
the same process never fails. Everything a component tells the next one travels
here, never through component state, so any component can be replaced alone.
A mention's attributes, ConText's ``is_negated`` and the rest included (same
names and defaults as medspaCy's, which never registers over an existing one),
live in one :class:`Mention` record per span.

:data:`ATTRIBUTES` is the contract between the components: every custom attribute
and span group they pass on, with the component that sets it and those that read
it. The factories declare the same in their ``assigns`` and ``requires``, so
``nlp.analyze_pipes()`` can tell when a replaced or reordered component leaves one
unset (tests/test_conventions.py keeps the table and the factories in step).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import numpy
from spacy.attrs import SENT_START
from spacy.tokens import Doc, Span

#: The span group every notecoder mention lives in (spans may overlap there,
#: unlike ``doc.ents``: a CONDITION can contain its SPINAL_LEVEL).
SPANS_KEY = "notecoder"
#: Region words ("lumbar", "low back", "neck") found by the level component.
#: They are not entities of their own; linking reads them.
REGION_WORDS_KEY = "notecoder_region_words"


class Attribute(NamedTuple):
    """Who registers a custom attribute or span group, who sets it, who reads it."""

    #: The package that registers it ("notecoder", "medspaCy", "scispaCy"; "spaCy" for
    #: a span group, which needs no registering).
    owner: str
    #: Factory names; a dotted name is code outside the pipeline (``notecoder.api``).
    set_by: tuple[str, ...]
    read_by: tuple[str, ...]


#: What a mention's attributes are for: coding, and the result that explains it.
_CODER_AND_RESULT = ("notecoder_coder", "notecoder.result")

#: Every attribute and span group the pipeline's components pass on, named as in a
#: factory's ``assigns``/``requires``. ``notecoder.result`` builds ``suggest()``'s
#: output from them.
ATTRIBUTES: dict[str, Attribute] = {
    f'doc.spans["{SPANS_KEY}"]': Attribute(
        "spaCy",
        ("notecoder_levels", "notecoder_entities"),
        ("notecoder_entities", "notecoder_context", "notecoder_linker", *_CODER_AND_RESULT),
    ),
    f'doc.spans["{REGION_WORDS_KEY}"]': Attribute(
        "spaCy", ("notecoder_levels",), ("notecoder_entities", "notecoder_linker")
    ),
    "doc._.sections": Attribute(
        "medspaCy",
        ("notecoder_sectionizer",),
        ("notecoder_context", *_CODER_AND_RESULT, "notecoder_confidence"),
    ),
    "span._.section_category": Attribute("notecoder", ("notecoder_sectionizer",), ()),
    "token._.section_category": Attribute("notecoder", ("notecoder_sectionizer",), ()),
    "doc._.abbreviations": Attribute(
        "scispaCy", ("notecoder_abbreviations",), ("notecoder_entities",)
    ),
    "span._.long_form": Attribute(
        "scispaCy", ("notecoder_abbreviations",), ("notecoder_entities",)
    ),
    "span._.levels": Attribute("notecoder", ("notecoder_levels",), _CODER_AND_RESULT),
    "span._.region": Attribute(
        "notecoder", ("notecoder_levels",), ("notecoder_linker", *_CODER_AND_RESULT)
    ),
    "span._.regions": Attribute(
        "notecoder",
        ("notecoder_levels", "notecoder_linker"),
        ("notecoder_linker", *_CODER_AND_RESULT),
    ),
    "span._.concept": Attribute("notecoder", ("notecoder_entities",), _CODER_AND_RESULT),
    "span._.side": Attribute("notecoder", ("notecoder_entities",), _CODER_AND_RESULT),
    "span._.modality": Attribute("notecoder", ("notecoder_entities",), _CODER_AND_RESULT),
    "span._.duration": Attribute("notecoder", ("notecoder_entities",), _CODER_AND_RESULT),
    "span._.response": Attribute("notecoder", ("notecoder_entities",), _CODER_AND_RESULT),
    "span._.abbreviation_of": Attribute("notecoder", ("notecoder_entities",), ()),
    "span._.is_negated": Attribute("notecoder", ("notecoder_context",), _CODER_AND_RESULT),
    "span._.is_uncertain": Attribute(
        "notecoder", ("notecoder_context",), (*_CODER_AND_RESULT, "notecoder_confidence")
    ),
    "span._.is_historical": Attribute("notecoder", ("notecoder_context",), _CODER_AND_RESULT),
    "span._.is_hypothetical": Attribute("notecoder", ("notecoder_context",), _CODER_AND_RESULT),
    "span._.is_family": Attribute("notecoder", ("notecoder_context",), _CODER_AND_RESULT),
    "span._.modifiers": Attribute("medspaCy", ("notecoder_context",), ("notecoder.result",)),
    "doc._.context_graph": Attribute("medspaCy", ("notecoder_context",), ("notecoder.result",)),
    "doc._.context_targets": Attribute("notecoder", ("notecoder_context",), ()),
    "span._.linked_levels": Attribute("notecoder", ("notecoder_linker",), _CODER_AND_RESULT),
    "doc._.setting": Attribute("notecoder", ("notecoder.api",), _CODER_AND_RESULT),
    "doc._.codes": Attribute(
        "notecoder",
        ("notecoder_coder", "notecoder_confidence"),
        ("notecoder_confidence", "notecoder.result"),
    ),
    "doc._.flags": Attribute(
        "notecoder",
        ("notecoder_coder", "notecoder_queries"),
        ("notecoder_queries", "notecoder.result"),
    ),
}


class Mention:
    """Every attribute notecoder and ConText give one mention, in one record.

    ``span._.concept`` and the rest read and write this record (getter and
    setter extensions), so spaCy users and medspaCy see ordinary attributes.
    The pipeline's own readers take the record once with :func:`mention`:
    each ``span._.x`` builds an ``Underscore`` object and costs about 2 us, and
    the coder and the result ask a few dozen of them per mention, which made a
    note dense with mentions (thousands of levels) cost 20-35 ms per KB.
    """

    __slots__ = (  # noqa: RUF023 (grouped by what sets them)
        # SPINAL_LEVEL / region words: the normalised vertebra span and region.
        "levels",  # list[str], e.g. ["T12", "L1"]
        "region",  # str, one of notecoder.regions.REGIONS
        # CONDITION / PAIN / ... : what linking tied the mention to.
        "linked_levels",  # list[Span] of SPINAL_LEVEL spans
        "regions",  # list[str], one per region the mention is tied to
        "concept",  # str: the rule id, e.g. "disc_degeneration"
        "side",  # "right" | "left" | "bilateral" | None
        "modality",  # IMAGING_FINDING: "MRI" | "CT" | "X-ray"
        "duration",  # TREATMENT: "6 weeks"
        "response",  # TREATMENT: "failed" | "improved" | ...
        "abbreviation_of",  # Span: the long form this short form stands for
        # ConText's assertion attributes (medspaCy's names), set by notecoder_context.
        "is_negated",
        "is_uncertain",
        "is_historical",
        "is_hypothetical",
        "is_family",
    )

    def __init__(self) -> None:
        # (One assignment per group, not a loop of setattr: made for every mention.)
        self.levels = self.region = self.linked_levels = self.regions = self.concept = None
        self.side = self.modality = self.duration = self.response = self.abbreviation_of = None
        self.is_negated = self.is_uncertain = self.is_historical = False
        self.is_hypothetical = self.is_family = False

    def excluded(self) -> bool:
        """Negated, a relative's, hypothetical or historical: not the patient's current
        condition as it stands."""
        return self.is_negated or self.is_family or self.is_hypothetical or self.is_historical


_MENTIONS_KEY = "notecoder.mentions"


def mention(span: Span) -> Mention:
    """The attribute record of a span (made on first use).

    Keyed by character offsets, as spaCy keys span extensions: two Span objects
    over the same text share their attributes. The records are a dict of their
    own in ``doc.user_data``, keyed by one int: in ``user_data`` itself, beside
    spaCy's keys, a (name, start, end) key cost 0.8 us a lookup on a note of
    60,000 mentions (0.3 us here), and the pipeline asks about 20 per mention.
    """
    data = span.doc.user_data
    records = data.get(_MENTIONS_KEY)
    if records is None:
        records = data[_MENTIONS_KEY] = {}
        data.setdefault(_SPANS_STATE_KEY, SPANS_BOUND)  # (a Doc read from bytes keeps its state)
    key = span.start_char << 32 | span.end_char
    found = records.get(key)
    if found is None:
        found = records[key] = Mention()
    return found


#: ``doc.user_data[_SPANS_STATE_KEY]``: are the Span values of the Doc's records its own
#: Spans? A Doc read from bytes holds refs instead (see notecoder.serialization).
_SPANS_STATE_KEY = "notecoder.spans_bound"


class SpansBound:
    """The state of a Doc whose records hold its own Spans (packs as "unbound")."""


SPANS_BOUND = SpansBound()


def restore(doc: Doc) -> Doc:
    """The Doc, with the Spans of a Doc read from bytes found again (once; then free)."""
    if doc.user_data.get(_SPANS_STATE_KEY, SPANS_BOUND) is not SPANS_BOUND:
        from notecoder.serialization import bind_spans

        bind_spans(doc)
        doc.user_data[_SPANS_STATE_KEY] = SPANS_BOUND
    return doc


_DOC_ATTRS: dict[str, object] = {
    "codes": None,  # list[notecoder.coder.Candidate]: code, evidence spans, confidence
    "flags": None,  # list[dict]: flag, kind, message, confidence, evidence spans, code, query
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


def made_from(doc: Doc, text: str) -> Doc:
    """The Doc a tokenizer made of ``text``, noted as its :func:`doc_text`: spaCy's
    tokenizer keeps every character, so the Doc's text is the text it was given
    (without joining a Token per token again: 70 ms for a 1 MB note)."""
    doc.user_data[_TEXT_KEY] = text
    return doc


_SENTENCES_KEY = "notecoder.sentences"


def sentence_of(item: Span) -> Span:
    """The sentence of a span, or the whole Doc when no sentence splitter ran.

    Components read a mention's sentence for context (attributes, cues, levels);
    a pipeline built without ``notecoder_sentences`` still works, coarsely.
    """
    return item.doc[slice(*sentence_bounds(item))]


def sentence_bounds(item: Span) -> tuple[int, int]:
    """The token bounds of :func:`sentence_of` without building the Span."""
    table = _sentence_table(item.doc)
    if table is None:
        return 0, len(item.doc)
    return table[0].item(item.start), table[1].item(item.start)  # its first token's, as Span.sent


def sentence_table(doc: Doc) -> tuple[Sequence[int], Sequence[int]]:
    """The first token and the end of the sentence of every token of a Doc.

    For components that ask about thousands of mentions and their context:
    ``Span.sent`` walks the tokens to the sentence's ends on every call.
    Memoryviews, not lists: a list holds an int object per token (for a 1 MB
    note, memory the kernel hands over page by page).
    """
    table = _sentence_table(doc)
    if table is None:
        return [0] * len(doc), [len(doc)] * len(doc)
    return memoryview(table[0]), memoryview(table[1])


def _sentence_table(doc: Doc) -> tuple[numpy.ndarray, numpy.ndarray] | None:
    """:func:`sentence_table` as arrays, computed once per Doc after the splitter
    (sentences never change afterwards); None before it or without one."""
    table = doc.user_data.get(_SENTENCES_KEY)
    if table is not None and len(table[0]) == len(doc):
        return table
    if not len(doc) or not doc.has_annotation("SENT_START"):
        return None
    starts = doc.to_array(SENT_START) == 1
    starts[0] = True
    first = numpy.maximum.accumulate(numpy.where(starts, numpy.arange(len(doc)), 0))
    ends = numpy.append(numpy.flatnonzero(starts)[1:], len(doc))
    last = ends[numpy.cumsum(starts) - 1]
    table = doc.user_data[_SENTENCES_KEY] = (first, last)
    return table


def sentence_text(item: Span) -> str:
    """The text of a span's sentence (``Span.text`` builds a Token per word on every call)."""
    sentence = sentence_of(item)
    return doc_text(item.doc)[sentence.start_char : sentence.end_char]


def _get_span_attr(span: Span, name: str) -> object:
    # (restore: users may call the getters on a Doc read from bytes; the pipeline's own
    # readers restore once per Doc)
    restore(span.doc)
    return getattr(mention(span), name)


def _set_span_attr(span: Span, value: object, name: str) -> None:
    setattr(mention(span), name, value)


def _get_doc_attr(doc: Doc, key: tuple[str, str], default: object) -> object:
    return restore(doc).user_data.get(key, default)


def _set_doc_attr(doc: Doc, value: object, key: tuple[str, str]) -> None:
    doc.user_data[key] = value


def register() -> None:
    """Register every notecoder extension (idempotent).

    The getters and setters are partials of module functions, not lambdas: spaCy
    pickles the extensions into the worker processes of ``nlp.pipe(n_process=...)``
    where they are spawned, not forked.
    """
    for name in Mention.__slots__:
        Span.set_extension(
            name,
            getter=partial(_get_span_attr, name=name),
            setter=partial(_set_span_attr, name=name),
            force=True,
        )
    for name, default in _DOC_ATTRS.items():
        key = ("notecoder.doc", name)
        Doc.set_extension(
            name,
            getter=partial(_get_doc_attr, key=key, default=default),
            setter=partial(_set_doc_attr, key=key),
            force=True,
        )


register()
