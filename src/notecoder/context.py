"""medspaCy ConText with rules that are saved with the pipeline.

medspaCy's ``ConText`` reads its rules from a path when it is built and has no
``to_disk``/``from_disk``, so a saved pipeline loses or re-reads them (medspaCy
#243, #192). This subclass takes its rules at ``initialize`` (from
pipelines/spine/context_rules.json) and writes them into the pipeline folder,
so ``nlp.to_disk`` then ``spacy.load`` gives the same answers with no rule file
beside it. Targets are the mentions in ``doc.spans["notecoder"]``.
"""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import srsly
from medspacy.context import ConText, ConTextRule
from spacy.language import Language
from spacy.util import ensure_path

from notecoder.extensions import SPANS_KEY

#: Attribute names of our result, by the ConText category that sets them.
CATEGORY_ATTRIBUTE: dict[str, str] = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "uncertain",
    "HISTORICAL": "historical",
    "HYPOTHETICAL": "hypothetical",
    "FAMILY": "family",
}
_RULES_FILE = "context_rules.json"


@Language.factory("notecoder_context", default_config={"span_group_name": SPANS_KEY})
def make_context(nlp: Language, name: str, span_group_name: str) -> "NotecoderContext":
    """Build the ConText component; rules come at ``initialize`` or ``from_disk``."""
    return NotecoderContext(nlp, name=name, span_group_name=span_group_name)


class NotecoderContext(ConText):
    """ConText over a span group, with serialisable rules."""

    def __init__(self, nlp: Language, name: str, span_group_name: str) -> None:
        super().__init__(
            nlp,
            name=name,
            rules=None,
            input_span_type="group",
            span_group_name=span_group_name,
        )
        self._rule_dicts: list[dict[str, Any]] = []

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Any]] | None = None,
        *,
        nlp: Language | None = None,
        rules: dict[str, Any] | None = None,
    ) -> None:
        """Load the rules (``{"context_rules": [...]}``), replacing any loaded before."""
        if rules is not None:
            self._load(rules["context_rules"])

    def _load(self, rule_dicts: list[dict[str, Any]]) -> None:
        self._rule_dicts = list(rule_dicts)
        # ConText keeps a matcher that can only grow: start from a fresh one.
        super().__init__(
            self.nlp,
            name=self.name,
            rules=None,
            input_span_type="group",
            span_group_name=self.span_group_name,
        )
        self.add([ConTextRule.from_dict(d) for d in rule_dicts])

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / _RULES_FILE, {"context_rules": self._rule_dicts})

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "NotecoderContext":
        self._load(srsly.read_json(ensure_path(path) / _RULES_FILE)["context_rules"])
        return self
