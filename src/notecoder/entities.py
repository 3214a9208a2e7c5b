"""Entity rules: CONDITION, PAIN, IMAGING_FINDING and TREATMENT mentions.

A subclass of spaCy's own ``SpanRuler``, so the patterns (pipelines/spine/
entity_patterns.jsonl) are loaded at ``initialize`` and saved with the pipeline
by its ``to_disk``/``from_disk``. Unlike ``doc.ents``, mentions go to the span
group ``doc.spans["notecoder"]`` where they may overlap the SPINAL_LEVEL spans
inside them; the outermost of them are also set as ``doc.ents``, for displaCy
and medspaCy's tools, which read nothing else. Within one label the longest
match wins. Each span's pattern id becomes ``span._.concept``; the coder reads
that, never the surface text.

After matching, short forms that scispaCy's AbbreviationDetector tied to a
long form ("degenerative disc disease (DDD)" ... "DDD") get the long form's
label and concept, and attributes that live beside the mention are read off its
sentence: imaging modality, treatment duration and response, and side.
"""

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, get_args

import numpy
import srsly
from spacy import util
from spacy.attrs import LOWER, ORTH
from spacy.language import Language
from spacy.pipeline import SpanRuler
from spacy.pipeline.span_ruler import overlapping_labeled_spans_score
from spacy.strings import StringStore
from spacy.tokens import Doc, Span

from notecoder.extensions import REGION_WORDS_KEY, mention
from notecoder.rulefile import RULES_DIR, load_rules, read_rule_file
from notecoder.schemas import Label
from notecoder.spans import Containing, DocView

_ATTRS_FILE = "entity_attributes.json"
#: The saved patterns (SpanRuler's "patterns" file) are read as a pattern file.
_PATTERNS_KIND = "entity_patterns.jsonl"
#: Phrase-matcher attributes the tokenizer alone sets (SpanRuler takes a name or an id).
_TOKENIZER_ATTRS = frozenset({"ORTH", "LOWER", ORTH, LOWER})

#: Pattern ids ending so match a phrase ("pain at T12-L1") but mark only its first
#: token ("pain"); the level or region word after it is linked like any other.
_HEAD_ONLY = "_at"
#: Pattern ids ending so are words that name a spine condition only in spinal
#: context ("stenosis", "degenerative changes", "herniation"): the mention is kept
#: only where its sentence names a level, a region or a spine word (aortic
#: stenosis, degenerative changes of the knee and brain herniation are not ours).
_ANCHORED = "_anchored"


#: A match before it is a Span: token bounds, label and pattern id.
_Match = tuple[int, int, str, str]


def _trim(match: _Match) -> _Match:
    if not match[3].endswith(_HEAD_ONLY):
        return match
    return (match[0], match[0] + 1, match[2], match[3][: -len(_HEAD_ONLY)])


def _longest(matches: list[_Match]) -> list[_Match]:
    """``spacy.util.filter_spans`` on matches in order of their start: the (first)
    longest of overlapping ones.

    spaCy's order (longest first, then by start; the order given among equals)
    is each length's matches as given, from the longest length down: no sort of
    the matches (at 100,000 of them, a sort in random order through memory was
    the ruler's most growing cost), no ``Span`` for each match that loses.
    """
    by_length: dict[int, list[int]] = {}
    for i, match in enumerate(matches):
        by_length.setdefault(match[1] - match[0], []).append(i)
    kept: set[int] = set()
    seen: set[int] = set()
    for length in sorted(by_length, reverse=True):
        for i in by_length[length]:
            start, end = matches[i][0], matches[i][1]
            if start not in seen and end - 1 not in seen:
                kept.add(i)
                seen.update(range(start, end))
    return [match for i, match in enumerate(matches) if i in kept]


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
            annotate_ents=True,
            phrase_matcher_attr=phrase_matcher_attr,
            validate=validate,
            overwrite=False,
            # SpanRuler's scorer, of our span group (its default scores "ruler").
            scorer=partial(overlapping_labeled_spans_score, spans_key=spans_key),
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
        read_rule_file(path, self.set_attribute_rules, kind=_ATTRS_FILE)

    def set_attribute_rules(self, data: dict[str, Any]) -> None:
        """Take the rules of entity_attributes.json."""
        self.attributes = AttributeRules(data)

    # SpanRuler's serialisation, with the attribute rules beside the patterns and
    # both checked by their schemas when read.
    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        serializers = {
            "patterns": lambda: "\n".join(srsly.json_dumps(p) for p in self.patterns),
            _ATTRS_FILE: lambda: srsly.json_dumps(self.attributes.data),
        }
        return util.to_bytes(serializers, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> "EntityRuler":
        self.clear()
        deserializers = {
            "patterns": lambda text: load_rules(
                text, "patterns (from bytes)", self.add_patterns, kind=_PATTERNS_KIND
            ),
            _ATTRS_FILE: lambda text: load_rules(
                text, f"{_ATTRS_FILE} (from bytes)", self.set_attribute_rules, kind=_ATTRS_FILE
            ),
        }
        util.from_bytes(bytes_data, deserializers, exclude)
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        serializers = {
            "patterns": lambda p: srsly.write_jsonl(p, self.patterns),
            _ATTRS_FILE: lambda p: srsly.write_json(p, self.attributes.data),
        }
        util.to_disk(path, serializers, exclude)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "EntityRuler":
        self.clear()
        deserializers = {
            "patterns": lambda p: read_rule_file(p, self.add_patterns, kind=_PATTERNS_KIND),
            _ATTRS_FILE: lambda p: read_rule_file(p, self.set_attribute_rules, kind=_ATTRS_FILE),
        }
        util.from_disk(path, deserializers, exclude)
        return self

    def add_patterns(self, patterns: Iterable[dict[str, Any]]) -> None:
        patterns = list(patterns)  # (may be a generator)
        if self.phrase_matcher_attr in _TOKENIZER_ATTRS:
            # SpanRuler runs every component before it on each of the ~3,000
            # phrase patterns, for attributes a component may set (POS, LEMMA);
            # the tokenizer alone sets these, so the components add only time.
            with self.nlp.select_pipes(disable=self.nlp.pipe_names):
                super().add_patterns(patterns)
        else:
            super().add_patterns(patterns)
        self._first_tokens.add(patterns, self.nlp.vocab.strings)

    def clear(self) -> None:
        super().clear()
        self._first_tokens = _FirstTokens(self.patterns, self.nlp.vocab.strings)

    def remove(self, label: str) -> None:
        super().remove(label)
        self._first_tokens = _FirstTokens(self.patterns, self.nlp.vocab.strings)

    def remove_by_id(self, pattern_id: str) -> None:
        super().remove_by_id(pattern_id)
        self._first_tokens = _FirstTokens(self.patterns, self.nlp.vocab.strings)

    def match(self, doc: Doc) -> list[Span]:
        """``SpanRuler.match``: the matches as spans, in spaCy's order."""
        return [Span(doc, s, e, label=label, span_id=i) for s, e, label, i in self._matches(doc)]

    def _matches(self, doc: Doc) -> list[_Match]:
        """``SpanRuler.match``'s matches, in its order, without comparing ``Span`` objects.

        spaCy puts one ``Span`` per match in a set and sorts the set, each
        comparison building two tuples; with thousands of mentions that cost
        more than the matching. Matches are told apart by their pattern key
        (one per label and id) and bounds, and ordered by what spaCy compares:
        offsets, then the label's and the id's hashes (the knowledge-base id
        is none).
        """
        self._require_patterns()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="\\[W036")
            by_tokens = self.matcher(doc) if self._first_tokens.occur_in(doc) else []
            # (In the matchers' order, each in the note's: the sort below then merges
            # two runs, where a set's order sent it back and forth through memory.)
            found = dict.fromkeys(
                m for m in [*by_tokens, *self.phrase_matcher(doc)] if m[1] != m[2]
            )
        strings = doc.vocab.strings
        kinds: dict[int, tuple[int, int, str, str]] = {}
        ranked = []
        for key, start, end in found:
            kind = kinds.get(key)
            if kind is None:
                entry = self._match_label_id_map[key]
                label, pattern_id = entry["label"], entry["id"]
                kind = kinds[key] = (strings.add(label), strings.add(pattern_id), label, pattern_id)
            ranked.append((start, end, *kind))
        ranked.sort()
        return [(start, end, label, pattern_id) for start, end, _, _, label, pattern_id in ranked]

    def __call__(self, doc: Doc) -> Doc:
        matches = [_trim(m) for m in self._matches(doc)] if self.patterns else []
        by_label: dict[str, list[_Match]] = {label: [] for label in _LABELS}
        for match in matches:
            same = by_label.get(match[2])
            if same is not None:
                same.append(match)
        hashes = _Hashes(doc.vocab.strings)
        spans = [
            Span(doc, start, end, label=hashes[label], span_id=hashes[pattern_id])
            for label in _LABELS
            for start, end, _, pattern_id in _longest(by_label[label])
        ]
        short_forms = self._short_forms(doc)
        # The "(DDD)" right after its long form: part of that mention, not another one.
        defining = {
            (s.start, s.end) for s, long_form in short_forms if _defines(s.start, long_form)
        }
        spans = [s for s in spans if (s.start, s.end) not in defining]
        context = _Context(doc)
        spans = self._in_spinal_context(doc, spans, context)
        spans = [s for s in spans if not self._not_spinal(s, context)]
        spans.extend(self._abbreviations(doc, spans, short_forms))
        for span in spans:
            self._set_attributes(span, context)
        group = list(doc.spans.get(self.key, []))
        mentions = sorted([*group, *spans], key=lambda s: (s.start, -s.end))
        doc.spans[self.key] = mentions
        # As SpanRuler.set_annotations: its ents_filter (the first longest of overlapping
        # spans) leaves the outermost mentions; a level inside its condition stays in
        # the group alone. Every mention exists here: levels are found before entities.
        # (set_ents is what ``doc.ents = ...`` calls, after building a second Span for
        # each entity: half the cost in a note of thousands of levels.)
        ents = self.ents_filter([] if self.overwrite else doc.ents, mentions)
        doc.set_ents(ents, default="outside")
        return doc

    def _in_spinal_context(self, doc: Doc, spans: list[Span], context: "_Context") -> list[Span]:
        """Drop the context-dependent mentions whose sentence says nothing spinal."""
        anchored = [s for s in spans if s.id_.endswith(_ANCHORED)]
        if not anchored:
            return spans
        # A level or region word inside another mention ("neck" of "neck pain") is that
        # mention's: it puts "positive for arthritis and neck pain" in no spine.
        taken = Containing([s for s in spans if not s.id_.endswith(_ANCHORED)])
        first = context.first
        spinal = {
            first[a.start]
            for key in (self.key, REGION_WORDS_KEY)
            for a in doc.spans.get(key, [])
            if a.label_ in ("SPINAL_LEVEL", "REGION") and taken.first(a) is None
        }
        spine_word = self.attributes.spine_context
        said: dict[int, bool] = {}  # sentence start -> it has a spine word
        keep = []
        for span in spans:
            if span.id_.endswith(_ANCHORED):
                start = first[span.start]
                if start not in spinal:
                    if start not in said:
                        said[start] = bool(spine_word.search(context.sentence_text(span.start)))
                    if not said[start]:
                        continue
            keep.append(span)
        return keep

    def _not_spinal(self, span: Span, context: "_Context") -> bool:
        """Not a spine condition: a curve named as normal anatomy ("the natural lumbar
        lordosis", "lordosis is normal") or a condition of a limb joint ("degenerative
        disk disease of the right hip")."""
        if span.label_ != "CONDITION":
            return False
        rules = self.attributes
        start, end = span.start, span.end
        before = context.text(max(0, start - 6), start) + " "
        after = context.text(end, end + 6)
        key = (before, after)
        if key not in context.not_spinal:
            context.not_spinal[key] = bool(
                rules.normal_anatomy.search(before)
                or rules.normal_anatomy_after.search(after)
                or rules.non_spinal_site_after.search(after)
            )
        return context.not_spinal[key]

    @staticmethod
    def _short_forms(doc: Doc) -> list[tuple[Span, Span]]:
        """Each short form scispaCy's detector found, with its long form (read once)."""
        if not Doc.has_extension("abbreviations"):
            return []
        return [(short, short._.long_form) for short in doc._.abbreviations]

    @staticmethod
    def _abbreviations(
        doc: Doc, spans: list[Span], short_forms: list[tuple[Span, Span]]
    ) -> Iterable[Span]:
        """Short forms whose long form is a mention become that mention too."""
        if not short_forms:
            return []
        by_offsets = {(s.start, s.end): s for s in spans}
        covered = {i for s in spans for i in range(s.start, s.end)}
        containing = Containing(spans)
        found: list[Span] = []
        for short, long_form in short_forms:
            start, end = short.start, short.end
            source = by_offsets.get((long_form.start, long_form.end)) or containing.first(long_form)
            if (
                source is None
                or _defines(start, long_form)
                or any(i in covered for i in range(start, end))
            ):
                continue
            span = Span(doc, start, end, label=source.label, span_id=source.id)
            mention(span).abbreviation_of = source
            found.append(span)
            covered.update(range(start, end))
        return found

    def _set_attributes(self, span: Span, context: "_Context") -> None:
        """Set the concept; read modality, duration, response and side off the sentence.

        Every mention of a sentence reads the same modality, duration and
        response (the sentence's), so each is found once per sentence; a
        sentence may hold a hundred mentions.
        """
        rules = self.attributes
        label = span.label_
        start, end = span.start, span.end
        sent_start = context.first[start]
        found = context.found(sent_start)
        m = mention(span)  # one record for the four attributes, not a span._ per write
        m.concept = span.id_.removesuffix(_ANCHORED) or None
        if label in ("IMAGING_FINDING", "CONDITION"):
            if "modality" not in found:
                text = context.sentence_text(start)
                found["modality"] = next(
                    (name for name, rx in rules.modalities if rx.search(text)), None
                )
            m.modality = found["modality"]
        if label == "TREATMENT":
            if "duration" not in found:
                text = context.sentence_text(start)
                duration = rules.duration.search(text)
                found["duration"] = duration.group(0) if duration else None
                found["response"] = next(
                    (name for name, rx in rules.responses if rx.search(text)), None
                )
            m.duration = found["duration"]
            m.response = found["response"]
        if label in ("CONDITION", "PAIN"):
            sent_end = context.end[start]
            window = context.text(max(start - 3, sent_start), min(end + 6, sent_end))
            if window not in context.side:
                side = rules.side.search(window)
                word = side.group(1).lower() if side else None
                context.side[window] = rules.side_names.get(word, word) if word else None
            m.side = context.side[window]


def _defines(short_start: int, long_form: Span) -> bool:
    """A short form in brackets right after its long form: "disc disease (DDD)"."""
    return 0 <= short_start - long_form.end <= 2


class _Hashes(dict[str, int]):
    """The string store's hash of each label and pattern id, asked of it once per note.

    A ``Span`` made with strings hashes and adds both to the store again (half
    the cost of making it, thousands of times in a note dense with mentions).
    """

    def __init__(self, strings: StringStore) -> None:
        super().__init__()
        self.strings = strings

    def __missing__(self, key: str) -> int:
        value = self[key] = self.strings.add(key)
        return value


class _FirstTokens:
    """The words that can start a token pattern, to skip spaCy's ``Matcher`` on a
    note that has none of them.

    The ``Matcher`` builds two Python ``Token`` objects for every token of the
    note, whatever its patterns, which costs more than the phrase patterns
    together; ours are a few acronyms ("DDD", "ESI") and "pain at ...". A
    pattern whose first token is not an exact ``ORTH``/``TEXT``/``LOWER`` value
    (or an ``IN`` list of them) can start anywhere: the matcher then always runs.
    """

    def __init__(self, patterns: Iterable[dict[str, Any]], strings: StringStore) -> None:
        self.anywhere = False
        self.orth: set[int] = set()
        self.lower: set[int] = set()
        self.add(patterns, strings)

    def add(self, patterns: Iterable[dict[str, Any]], strings: StringStore) -> None:
        """Note the first tokens of more patterns (phrase patterns have none)."""
        for entry in patterns:
            pattern = entry["pattern"]
            if isinstance(pattern, str):
                continue
            attr, values = _exact_values(pattern[0] if pattern else {})
            if attr is None:
                self.anywhere = True
            else:  # (the hashes the Matcher compares tokens with)
                (self.orth if attr == "ORTH" else self.lower).update(strings.add(v) for v in values)

    def occur_in(self, doc: Doc) -> bool:
        """Could a token pattern match in this Doc?"""
        if self.anywhere:
            return True
        if not self.orth and not self.lower:
            return False
        words = doc.to_array([ORTH, LOWER])
        return bool(
            numpy.isin(words[:, 0], numpy.array(list(self.orth), dtype="uint64")).any()
            or numpy.isin(words[:, 1], numpy.array(list(self.lower), dtype="uint64")).any()
        )


def _exact_values(spec: dict[str, Any]) -> tuple[str | None, list[str]]:
    """("ORTH" or "LOWER", the values) when a token spec is one attribute equal to a
    string or in a list of strings; (None, []) for anything else (an operator too)."""
    if len(spec) != 1:
        return None, []
    ((key, value),) = spec.items()
    attr = {"ORTH": "ORTH", "TEXT": "ORTH", "LOWER": "LOWER"}.get(str(key).upper())
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, dict) and list(value) == ["IN"] and isinstance(value["IN"], list):
        values = value["IN"]
    else:
        return None, []
    if attr is None or not all(isinstance(v, str) for v in values):
        return None, []
    return attr, values


#: The labels of the entity rules, in the order their mentions are kept.
_LABELS: tuple[str, ...] = get_args(Label)


class _Context(DocView):
    """What one call of the ruler reads around its mentions: sentence bounds, the
    text of token runs, and what was already found in each sentence.

    A note with no sentence end has sentences of up to 200 tokens, each holding
    dozens of mentions that would each rebuild the sentence's text.
    """

    def __init__(self, doc: Doc) -> None:
        super().__init__(doc)
        self._found: dict[int, dict[str, str | None]] = {}
        #: The side read off a window of text, and whether the words around a
        #: condition make it not spinal: a templated note repeats its phrases.
        self.side: dict[str, str | None] = {}
        self.not_spinal: dict[tuple[str, str], bool] = {}

    def found(self, sent_start: int) -> dict[str, str | None]:
        """The attributes already read off the sentence starting at this token."""
        return self._found.setdefault(sent_start, {})


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
