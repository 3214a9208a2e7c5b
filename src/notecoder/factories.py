"""The pipeline's factories, all registered here, each importing its component when called.

spaCy imports every package's ``spacy_factories`` entry points whenever it
makes a pipeline, any pipeline: ``spacy.blank("en")`` in an environment where
notecoder is installed imports what those entry points name. Naming the
component modules there made every spaCy user of the environment import
medspaCy, scispaCy and our rules (over a second); naming this module costs
them a few milliseconds, and a component's module loads only when a notecoder
pipeline is built. Each factory declares what it sets and needs
(``assigns``/``requires``), so ``nlp.analyze_pipes()`` checks the order.
(No ``from __future__ import annotations``: spaCy validates a factory's arguments
by their annotations, which must be classes, not strings.)
"""

import importlib
from typing import TYPE_CHECKING, Any

from spacy.language import Language

from notecoder.extensions import SPANS_KEY

if TYPE_CHECKING:
    from notecoder.abbreviations import ParenthesisAbbreviationDetector
    from notecoder.coder import Coder
    from notecoder.confidence import Confidence
    from notecoder.context import NotecoderContext
    from notecoder.entities import EntityRuler
    from notecoder.levels import LevelDetector
    from notecoder.linker import Linker
    from notecoder.queries import ProviderQueries
    from notecoder.sections import NotecoderSectionizer
    from notecoder.sentences import SentenceSplitter


def _component(module: str) -> Any:
    """The component module, imported now, with the srsly encoders that let the Docs
    its pipeline makes go through ``Doc.to_bytes`` (``nlp.pipe(n_process=...)``)."""
    import notecoder.serialization  # noqa: F401

    return importlib.import_module(f"notecoder.{module}")


@Language.factory("notecoder_sentences", assigns=["token.is_sent_start"])
def make_sentence_splitter(nlp: Language, name: str) -> "SentenceSplitter":
    """Build the splitter; its word lists come at ``initialize`` or ``from_disk``."""
    return _component("sentences").SentenceSplitter(name)


@Language.factory(
    "notecoder_sectionizer",
    assigns=["doc._.sections", "span._.section_category", "token._.section_category"],
    default_config={"span_group_name": SPANS_KEY},
)
def make_sectionizer(nlp: Language, name: str, span_group_name: str) -> "NotecoderSectionizer":
    """Build the sectionizer; rules come at ``initialize`` or ``from_disk``."""
    return _component("sections").NotecoderSectionizer(nlp, name, span_group_name)


@Language.factory(
    "notecoder_levels",
    assigns=["doc.spans", "span._.levels", "span._.region", "span._.regions"],
    requires=["token.is_sent_start"],
    default_config={"spans_key": SPANS_KEY},
)
def make_level_detector(nlp: Language, name: str, spans_key: str) -> "LevelDetector":
    """Build the level detector; its patterns come at ``initialize`` or ``from_disk``."""
    return _component("levels").LevelDetector(name, spans_key)


@Language.factory("notecoder_abbreviations", assigns=["doc._.abbreviations", "span._.long_form"])
def make_abbreviations(nlp: Language, name: str) -> "ParenthesisAbbreviationDetector":
    """Build the detector (``doc._.abbreviations``, ``span._.long_form``, as scispaCy's)."""
    return _component("abbreviations").ParenthesisAbbreviationDetector(nlp, name)


@Language.factory(
    "notecoder_entities",
    assigns=[
        "doc.spans",
        "doc.ents",
        "span._.concept",
        "span._.modality",
        "span._.duration",
        "span._.response",
        "span._.side",
        "span._.abbreviation_of",
    ],
    requires=["doc.spans", "token.is_sent_start", "doc._.abbreviations", "span._.long_form"],
    default_config={
        "spans_key": SPANS_KEY,
        "phrase_matcher_attr": "LOWER",
        "validate": False,
    },
    # SpanRuler's own scorer: the mentions of the span group, by label.
    default_score_weights={
        f"spans_{SPANS_KEY}_f": 1.0,
        f"spans_{SPANS_KEY}_p": 0.0,
        f"spans_{SPANS_KEY}_r": 0.0,
        f"spans_{SPANS_KEY}_per_type": None,
    },
)
def make_entity_ruler(
    nlp: Language, name: str, spans_key: str, phrase_matcher_attr: str, validate: bool
) -> "EntityRuler":
    """Build the entity ruler; patterns come at ``initialize`` or ``from_disk``."""
    return _component("entities").EntityRuler(
        nlp, name, spans_key=spans_key, phrase_matcher_attr=phrase_matcher_attr, validate=validate
    )


@Language.factory(
    "notecoder_context",
    assigns=[
        "span._.is_negated",
        "span._.is_uncertain",
        "span._.is_historical",
        "span._.is_hypothetical",
        "span._.is_family",
        "span._.modifiers",
        "doc._.context_graph",
        "doc._.context_targets",
    ],
    requires=["doc.spans", "token.is_sent_start", "doc._.sections"],
    default_config={"span_group_name": SPANS_KEY},
)
def make_context(nlp: Language, name: str, span_group_name: str) -> "NotecoderContext":
    """Build the ConText component; rules come at ``initialize`` or ``from_disk``."""
    return _component("context").NotecoderContext(nlp, name=name, span_group_name=span_group_name)


@Language.factory(
    "notecoder_linker",
    assigns=["span._.linked_levels", "span._.regions"],
    requires=["doc.spans", "token.is_sent_start", "span._.region", "span._.regions"],
    default_config={"spans_key": SPANS_KEY},
)
def make_linker(nlp: Language, name: str, spans_key: str) -> "Linker":
    """Build the linker (it has no rules: nothing to save)."""
    return _component("linker").Linker(spans_key)


@Language.factory(
    "notecoder_coder",
    assigns=["doc._.codes", "doc._.flags"],
    requires=[
        "doc.spans",
        "token.is_sent_start",
        "doc._.sections",
        "span._.concept",
        "span._.levels",
        "span._.region",
        "span._.regions",
        "span._.linked_levels",
        "span._.side",
        "span._.modality",
        "span._.duration",
        "span._.response",
        "span._.is_negated",
        "span._.is_uncertain",
        "span._.is_historical",
        "span._.is_hypothetical",
        "span._.is_family",
    ],
    default_config={"spans_key": SPANS_KEY},
)
def make_coder(nlp: Language, name: str, spans_key: str) -> "Coder":
    """Build the coder; its rules come at ``initialize`` or ``from_disk``."""
    return _component("coder").Coder(spans_key)


@Language.factory(
    "notecoder_confidence",
    assigns=["doc._.codes"],
    requires=["doc._.codes", "doc._.sections", "span._.is_uncertain"],
)
def make_confidence(nlp: Language, name: str) -> "Confidence":
    """Build the confidence model; its coefficients come at ``initialize`` or ``from_disk``."""
    return _component("confidence").Confidence(name)


@Language.factory("notecoder_queries", assigns=["doc._.flags"], requires=["doc._.flags"])
def make_queries(nlp: Language, name: str) -> "ProviderQueries":
    """Build the query drafter; its templates come at ``initialize`` or ``from_disk``."""
    return _component("queries").ProviderQueries()
