"""Entity rules: CONDITION, PAIN, IMAGING_FINDING and TREATMENT mentions.

A subclass of spaCy's own ``SpanRuler``, so the patterns (pipelines/spine/
entity_patterns.jsonl) are loaded at ``initialize`` and saved with the pipeline
by its ``to_disk``/``from_disk``. Unlike ``doc.ents``, mentions go to the span
group ``doc.spans["notecoder"]`` where they may overlap the SPINAL_LEVEL spans
inside them. Within one label the longest match wins. Each span's pattern id
becomes ``span._.concept``; the coder reads that, never the surface text.

After matching, short forms that scispaCy's AbbreviationDetector tied to a
long form ("degenerative disc disease (DDD)" ... "DDD") get the long form's
label and concept, and attributes that live beside the mention are read off its
sentence: imaging modality, treatment duration and response, and side.
"""

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import srsly
from spacy.language import Language
from spacy.pipeline import SpanRuler
from spacy.tokens import Doc, Span
from spacy.util import ensure_path, filter_spans

from notecoder.extensions import REGION_WORDS_KEY, SPANS_KEY, sentence_of
from notecoder.rulefile import RULES_DIR, read_rule_file
from notecoder.spans import Containing

_ATTRS_FILE = "entity_attributes.json"

#: Pattern ids ending so match a phrase ("pain at T12-L1") but mark only its first
#: token ("pain"); the level or region word after it is linked like any other.
_HEAD_ONLY = "_at"
#: Pattern ids ending so are words that name a spine condition only in spinal
#: context ("stenosis", "degenerative changes", "herniation"): the mention is kept
#: only where its sentence names a level, a region or a spine word (aortic
#: stenosis, degenerative changes of the knee and brain herniation are not ours).
_ANCHORED = "_anchored"


def _trim(span: Span) -> Span:
    if not span.id_.endswith(_HEAD_ONLY):
        return span
    return Span(
        span.doc, span.start, span.start + 1, span.label_, span_id=span.id_[: -len(_HEAD_ONLY)]
    )


@Language.factory(
    "notecoder_entities",
    default_config={
        "spans_key": SPANS_KEY,
        "phrase_matcher_attr": "LOWER",
        "validate": False,
    },
)
def make_entity_ruler(
    nlp: Language, name: str, spans_key: str, phrase_matcher_attr: str, validate: bool
) -> "EntityRuler":
    """Build the entity ruler; patterns come at ``initialize`` or ``from_disk``."""
    return EntityRuler(
        nlp, name, spans_key=spans_key, phrase_matcher_attr=phrase_matcher_attr, validate=validate
    )


class EntityRuler(SpanRuler):
    """SpanRuler that keeps overlapping labels and sets notecoder attributes.

    Besides the patterns, it keeps the attribute rules of entity_attributes.json
    and saves them beside the patterns.
    """

    def __init__(
        self, nlp: Language, name: str, *, spans_key: str, phrase_matcher_attr: str, validate: bool
    ) -> None:
        super().__init__(
            nlp,
            name,
            spans_key=spans_key,
            annotate_ents=False,
            phrase_matcher_attr=phrase_matcher_attr,
            validate=validate,
            overwrite=False,
        )
        self.attributes = AttributeRules({})

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Any]] | None = None,
        *,
        nlp: Language | None = None,
        patterns: Sequence[dict[str, Any]] | None = None,
        attributes_path: str | Path | None = None,
    ) -> None:
        """Load the patterns and the attribute rules (default: pipelines/spine's)."""
        super().initialize(get_examples, nlp=nlp, patterns=patterns)
        path = attributes_path or RULES_DIR / _ATTRS_FILE
        self.attributes = read_rule_file(path, AttributeRules)

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        super().to_disk(path, exclude=exclude)
        srsly.write_json(ensure_path(path) / _ATTRS_FILE, self.attributes.data)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "EntityRuler":
        super().from_disk(path, exclude=exclude)
        self.attributes = read_rule_file(ensure_path(path) / _ATTRS_FILE, AttributeRules)
        return self

    def __call__(self, doc: Doc) -> Doc:
        matches = [_trim(s) for s in self.match(doc)] if self.patterns else []
        spans: list[Span] = []
        for label in ("CONDITION", "PAIN", "IMAGING_FINDING", "TREATMENT"):
            spans.extend(filter_spans([s for s in matches if s.label_ == label]))
        defining = self._defining_short_forms(doc)
        spans = [s for s in spans if (s.start, s.end) not in defining]
        spans = self._in_spinal_context(doc, spans)
        spans = [s for s in spans if not self._not_spinal(s)]
        spans.extend(self._abbreviations(doc, spans))
        for span in spans:
            span._.concept = span.id_.removesuffix(_ANCHORED) or None
            self._set_attributes(span)
        group = list(doc.spans.get(self.key, []))
        doc.spans[self.key] = sorted([*group, *spans], key=lambda s: (s.start, -s.end))
        return doc

    def _in_spinal_context(self, doc: Doc, spans: list[Span]) -> list[Span]:
        """Drop the context-dependent mentions whose sentence says nothing spinal."""
        anchored = [s for s in spans if s.id_.endswith(_ANCHORED)]
        if not anchored:
            return spans
        # A level or region word inside another mention ("neck" of "neck pain") is that
        # mention's: it puts "positive for arthritis and neck pain" in no spine.
        taken = Containing([s for s in spans if not s.id_.endswith(_ANCHORED)])
        spinal = {
            sentence_of(a).start
            for key in (self.key, REGION_WORDS_KEY)
            for a in doc.spans.get(key, [])
            if a.label_ in ("SPINAL_LEVEL", "REGION") and taken.first(a) is None
        }
        spine_word = self.attributes.spine_context
        keep = []
        for span in spans:
            if span.id_.endswith(_ANCHORED):
                sent = sentence_of(span)
                if sent.start not in spinal and not spine_word.search(sent.text):
                    continue
            keep.append(span)
        return keep

    def _not_spinal(self, span: Span) -> bool:
        """Not a spine condition: a curve named as normal anatomy ("the natural lumbar
        lordosis", "lordosis is normal") or a condition of a limb joint ("degenerative
        disk disease of the right hip")."""
        if span.label_ != "CONDITION":
            return False
        rules = self.attributes
        before = span.doc[max(0, span.start - 6) : span.start].text + " "
        after = span.doc[span.end : span.end + 6].text
        return bool(
            rules.normal_anatomy.search(before)
            or rules.normal_anatomy_after.search(after)
            or rules.non_spinal_site_after.search(after)
        )

    @staticmethod
    def _defining_short_forms(doc: Doc) -> set[tuple[int, int]]:
        """The "(DDD)" right after its long form: part of that mention, not another one."""
        if not Doc.has_extension("abbreviations"):
            return set()
        return {
            (short.start, short.end)
            for short in doc._.abbreviations
            if 0 <= short.start - short._.long_form.end <= 2
        }

    @staticmethod
    def _abbreviations(doc: Doc, spans: list[Span]) -> Iterable[Span]:
        """Short forms whose long form is a mention become that mention too."""
        if not Doc.has_extension("abbreviations"):
            return []
        by_offsets = {(s.start, s.end): s for s in spans}
        covered = {i for s in spans for i in range(s.start, s.end)}
        containing = Containing(spans)
        found: list[Span] = []
        for short in doc._.abbreviations:
            long_form = short._.long_form
            source = by_offsets.get((long_form.start, long_form.end)) or containing.first(long_form)
            defining = 0 <= short.start - long_form.end <= 2
            if (
                source is None
                or defining
                or any(i in covered for i in range(short.start, short.end))
            ):
                continue
            span = Span(doc, short.start, short.end, label=source.label_, span_id=source.id_)
            span._.abbreviation_of = source
            found.append(span)
            covered.update(range(short.start, short.end))
        return found

    def _set_attributes(self, span: Span) -> None:
        """Read modality, duration, response and side off the mention's sentence."""
        rules = self.attributes
        sent = sentence_of(span)
        text = sent.text
        if span.label_ in ("IMAGING_FINDING", "CONDITION"):
            span._.modality = next((name for name, rx in rules.modalities if rx.search(text)), None)
        if span.label_ == "TREATMENT":
            duration = rules.duration.search(text)
            span._.duration = duration.group(0) if duration else None
            span._.response = next((name for name, rx in rules.responses if rx.search(text)), None)
        if span.label_ in ("CONDITION", "PAIN"):
            window = span.doc[max(span.start - 3, sent.start) : min(span.end + 6, sent.end)].text
            side = rules.side.search(window)
            word = side.group(1).lower() if side else None
            span._.side = rules.side_names.get(word, word) if word else None


class AttributeRules:
    """The compiled rules of entity_attributes.json."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.modalities = [(name, re.compile(rx)) for name, rx in data.get("modalities", [])]
        self.responses = [(name, re.compile(rx)) for name, rx in data.get("responses", [])]
        self.duration = re.compile(data.get("duration", r"(?!)"))
        self.side = re.compile(data.get("side", r"(?!)"))
        self.side_names: dict[str, str] = data.get("side_names", {})
        self.spine_context = re.compile(data.get("spine_context", r"(?!)"))
        self.normal_anatomy = re.compile(data.get("normal_anatomy", r"(?!)"))
        self.normal_anatomy_after = re.compile(data.get("normal_anatomy_after", r"(?!)"))
        self.non_spinal_site_after = re.compile(data.get("non_spinal_site_after", r"(?!)"))
