"""medspaCy ConText with rules that are saved with the pipeline.

medspaCy's ``ConText`` reads its rules from a path when it is built and has no
``to_disk``/``from_disk``, so a saved pipeline loses or re-reads them (medspaCy
#243, #192). This subclass takes its rules at ``initialize`` (from
pipelines/spine/context_rules.json) and writes them into the pipeline folder
(``RuleFileComponent``), so ``nlp.to_disk`` then ``spacy.load`` gives the same
answers with no rule file beside it. Targets are the mentions in ``doc.spans["notecoder"]``.
"""

from typing import Any

from medspacy.context import ConText, ConTextRule
from spacy.language import Language
from spacy.tokens import Doc

from notecoder.extensions import SPANS_KEY
from notecoder.matching import LeanMatcher
from notecoder.rulefile import RuleFileComponent
from notecoder.sections import section_of

#: Attribute names of our result, by the ConText category that sets them.
CATEGORY_ATTRIBUTE: dict[str, str] = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "uncertain",
    "HISTORICAL": "historical",
    "HYPOTHETICAL": "hypothetical",
    "FAMILY": "family",
}


@Language.factory("notecoder_context", default_config={"span_group_name": SPANS_KEY})
def make_context(nlp: Language, name: str, span_group_name: str) -> "NotecoderContext":
    """Build the ConText component; rules come at ``initialize`` or ``from_disk``."""
    return NotecoderContext(nlp, name=name, span_group_name=span_group_name)


class NotecoderContext(RuleFileComponent, ConText):
    """ConText over a span group, with serialisable rules."""

    rules_file = "context_rules.json"

    def __init__(self, nlp: Language, name: str, span_group_name: str) -> None:
        self._data: dict[str, Any] = {}
        super().__init__(
            nlp,
            name=name,
            rules=None,
            input_span_type="group",
            # A trigger inside a mention is part of it ("without lesion" as a finding).
            prune_on_target_overlap=True,
            span_group_name=span_group_name,
        )

    def rules_data(self) -> dict[str, Any]:
        return self._data

    def set_rules(self, data: dict[str, Any]) -> None:
        self._data = data
        # ConText keeps a matcher that can only grow: start from a fresh one.
        ConText.__init__(
            self,
            self.nlp,
            name=self.name,
            rules=None,
            input_span_type="group",
            # A trigger inside a mention is part of it ("without lesion" as a finding).
            prune_on_target_overlap=True,
            span_group_name=self.span_group_name,
        )
        self._ConText__matcher = LeanMatcher(
            self.nlp,
            name=self.name,
            phrase_matcher_attr="LOWER",
            prune=self.prune_on_modifier_overlap,
        )
        self.add([ConTextRule.from_dict(d) for d in data["context_rules"]])

    def __call__(self, doc: Doc) -> Doc:
        """ConText, then the attributes of the section each mention is in.

        Spinal levels are not ConText targets (a level is not asserted or denied,
        and ConText compares every trigger with every target); they take only the
        attributes of their section.
        """
        group = doc.spans.get(self.span_group_name, [])
        doc._.context_targets = [s for s in group if s.label_ != "SPINAL_LEVEL"]
        doc = super().__call__(doc, targets="context_targets")
        by_section = self._data.get("section_attributes", {})
        for span in doc.spans.get(self.span_group_name, []):
            for attr, value in by_section.get(section_of(span), {}).items():
                setattr(span._, attr, value)
        return doc
