"""A coded Doc survives ``Doc.to_bytes`` / ``from_bytes``, and so ``nlp.pipe(n_process=2)``.

spaCy hands each Doc of a worker process back as ``doc.to_bytes()``, which packs
``doc.user_data`` with msgpack: every value there must be msgpack data or have a
registered srsly encoder. Ours hold Spans (a mention's linked levels, the
evidence of a code, ConText's targets), records (:class:`Mention`,
:class:`Candidate`) and medspaCy's ConText modifiers. The encoders below write
a Span as its token bounds and label, and the records as their fields; a Span
cannot be rebuilt without its Doc, so decoding gives a :class:`SpanRef`, and
:func:`bind_spans` turns every ref of a Doc's ``user_data`` back into a Span of
that Doc. :func:`notecoder.extensions.restore` calls it once per Doc read from
bytes, and the readers of the pipeline's output call that (``doc_to_result``,
the span extensions, ``doc._.codes``), so a user never meets a ref; for a Doc
the pipeline made itself it costs one lookup.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import srsly
from spacy.tokens import Doc, Span

from notecoder._medspacy import ConTextGraph, ConTextModifier, Section, SectionRule
from notecoder.coder import Candidate
from notecoder.extensions import Mention, SpansBound


class SpanRef(NamedTuple):
    """A Span read back from bytes, before :func:`bind_spans` finds it its Doc."""

    start: int
    end: int
    label: str


def bind_spans(doc: Doc) -> None:
    """Turn every :class:`SpanRef` of a Doc's ``user_data`` into a Span of the Doc
    (called by :func:`notecoder.extensions.restore`)."""
    data = doc.user_data
    for key, value in data.items():
        data[key] = _bind(value, doc)


def _bind(value: Any, doc: Doc) -> Any:
    if isinstance(value, SpanRef):
        return Span(doc, value.start, value.end, label=value.label)
    if isinstance(value, list):
        return [_bind(v, doc) for v in value]
    if isinstance(value, tuple):
        return tuple(_bind(v, doc) for v in value)
    if isinstance(value, dict):
        return {k: _bind(v, doc) for k, v in value.items()}
    if isinstance(value, Mention):
        for name in Mention.__slots__:
            setattr(value, name, _bind(getattr(value, name), doc))
    elif isinstance(value, Candidate):
        value.evidence = _bind(value.evidence, doc)
    elif isinstance(value, ConTextGraph):
        value.targets = _bind(value.targets, doc)
        value.modifiers = _bind(value.modifiers, doc)
        value.edges = _bind(value.edges, doc)
    return value


# srsly calls the encoders registered last first, each passing what it does not
# know down the chain; decoders see every dict, innermost first.
def _chain(obj: Any, chain: Any) -> Any:
    return obj if chain is None else chain(obj)


@srsly.msgpack_encoders("notecoder")
def _encode(obj: Any, chain: Any = None) -> Any:
    if isinstance(obj, Span):
        return {"notecoder.span": [obj.start, obj.end, obj.label_]}
    if isinstance(obj, Mention):
        return {"notecoder.mention": {n: getattr(obj, n) for n in Mention.__slots__}}
    if isinstance(obj, Candidate):
        fields = dataclasses.fields(obj)
        return {"notecoder.candidate": {f.name: getattr(obj, f.name) for f in fields}}
    if isinstance(obj, SpansBound):
        return "unbound"  # read back, the Doc's Spans are refs until restore()
    # medspaCy's own encoders for these do not read back: its modifier encoder drops
    # the wrapper its decoder looks for, and its "modifiers" decoder fires again on
    # the graph's own "modifiers" key.
    if isinstance(obj, ConTextModifier):
        return {"notecoder.modifier": obj.serialized_representation()}
    if isinstance(obj, ConTextGraph):
        graph = [obj.targets, obj.modifiers, obj.edges, obj.prune_on_modifier_overlap]
        return {"notecoder.context_graph": graph}
    if isinstance(obj, Section):  # (medspaCy's fails on the rule-less opening section)
        bounds = [obj.title_start, obj.title_end, obj.body_start, obj.body_end]
        rule = obj.rule.to_dict() if obj.rule is not None else None
        return {"notecoder.section": [obj.category, *bounds, obj.parent, rule]}
    return _chain(obj, chain)


@srsly.msgpack_decoders("notecoder")
def _decode(obj: Any, chain: Any = None) -> Any:
    if "notecoder.span" in obj:
        return SpanRef(*obj["notecoder.span"])
    if "notecoder.mention" in obj:
        record = Mention()
        for name, value in obj["notecoder.mention"].items():
            setattr(record, name, value)
        return record
    if "notecoder.candidate" in obj:
        return Candidate(**obj["notecoder.candidate"])
    if "notecoder.modifier" in obj:
        return ConTextModifier.from_serialized_representation(obj["notecoder.modifier"])
    if "notecoder.context_graph" in obj:
        targets, modifiers, edges, prune = obj["notecoder.context_graph"]
        return ConTextGraph(targets, modifiers, [tuple(e) for e in edges], prune)
    if "notecoder.section" in obj:
        *fields, rule = obj["notecoder.section"]
        return Section(*fields, SectionRule.from_dict(rule) if rule is not None else None)
    return _chain(obj, chain)
