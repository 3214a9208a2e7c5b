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

from notecoder.extensions import SPANS_KEY
from notecoder.rulefile import RuleFileComponent

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
        self._rule_dicts: list[dict[str, Any]] = []
        super().__init__(
            nlp,
            name=name,
            rules=None,
            input_span_type="group",
            span_group_name=span_group_name,
        )

    def rules_data(self) -> dict[str, Any]:
        return {"context_rules": self._rule_dicts}

    def set_rules(self, data: dict[str, Any]) -> None:
        self._rule_dicts = list(data["context_rules"])
        # ConText keeps a matcher that can only grow: start from a fresh one.
        ConText.__init__(
            self,
            self.nlp,
            name=self.name,
            rules=None,
            input_span_type="group",
            span_group_name=self.span_group_name,
        )
        self.add([ConTextRule.from_dict(d) for d in self._rule_dicts])
