"""medspaCy ConText with rules that are saved with the pipeline.

medspaCy's ``ConText`` reads its rules from a path when it is built and has no
``to_disk``/``from_disk``, so a saved pipeline loses or re-reads them (medspaCy
#243, #192). This subclass takes its rules at ``initialize`` (from
pipelines/spine/context_rules.json) and writes them into the pipeline folder
(``RuleFileComponent``), so ``nlp.to_disk`` then ``spacy.load`` gives the same
answers with no rule file beside it. Targets are the mentions in ``doc.spans["notecoder"]``.
"""

from bisect import bisect_left
from typing import Any

from medspacy.context import ConText, ConTextRule
from medspacy.context.context_graph import ConTextGraph
from medspacy.context.context_modifier import ConTextModifier
from medspacy.util import tuple_overlaps
from spacy.language import Language
from spacy.tokens import Doc, Span

from notecoder.extensions import SPANS_KEY, sentence_of
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

    def _apply(self, doc: Doc, targets: list[Span]) -> None:
        """medspaCy's ``ConText.__call__``, one sentence at a time.

        medspaCy compares every trigger with every other and with every target
        in the note, which is quadratic in the note's length; a trigger's scope
        never leaves its sentence (``max_scope`` is unset), so comparing within
        each sentence gives the same edges in linear time (sentences are
        bounded by ``notecoder_sentences``).
        """
        graphs: dict[int, ConTextGraph] = {}

        def graph(start: int) -> ConTextGraph:
            if start not in graphs:
                graphs[start] = ConTextGraph(prune_on_modifier_overlap=self.prune_on_target_overlap)
            return graphs[start]

        for target in targets:  # (and in the next sentence, should a target cross into it)
            for start in {sentence_of(target[:1]).start, sentence_of(target[-1:]).start}:
                graph(start).targets.append(target)
        matcher = self._ConText__matcher
        for match_id, start, end in matcher(doc):
            rule = matcher.rule_map[self.nlp.vocab[match_id].text]
            modifier = ConTextModifier(rule, start, end, doc, max_scope=self.max_scope)
            graph(sentence_of(doc[start:end]).start).modifiers.append(modifier)
        edges = []
        for part in graphs.values():
            part.update_scopes()
            edges.extend(_link(part, self.prune_on_target_overlap))
        for target, modifier in edges:
            target._.modifiers += (modifier,)
        if self.context_attributes_mapping:
            self.set_context_attributes(edges)
        whole = ConTextGraph(prune_on_modifier_overlap=self.prune_on_target_overlap)
        whole.targets = targets
        whole.modifiers = [m for part in graphs.values() for m in part.modifiers]
        whole.edges = edges
        doc._.context_graph = whole

    def __call__(self, doc: Doc) -> Doc:
        """ConText, then the attributes of the section each mention is in.

        Spinal levels are not ConText targets (a level is not asserted or denied,
        and ConText compares every trigger with every target); they take only the
        attributes of their section.
        """
        group = doc.spans.get(self.span_group_name, [])
        doc._.context_targets = [s for s in group if s.label_ != "SPINAL_LEVEL"]
        self._apply(doc, doc._.context_targets)
        by_section = self._data.get("section_attributes", {})
        for span in doc.spans.get(self.span_group_name, []):
            for attr, value in by_section.get(section_of(span), {}).items():
                setattr(span._, attr, value)
        return doc


def _link(graph: ConTextGraph, prune: bool) -> list[tuple[Span, ConTextModifier]]:
    """medspaCy's ``ConTextGraph.apply_modifiers``, without trying every modifier on every
    target: only the targets that reach into a modifier's span or scope are tried
    (found by their start, targets being short), in the same order, so each
    modifier gets the same targets and the edges are the same."""
    targets = graph.targets
    order = sorted(range(len(targets)), key=lambda i: targets[i].start)
    starts = [targets[i].start for i in order]
    longest = max((t.end - t.start for t in targets), default=0)

    def reaching(begin: int, end: int) -> list[Span]:
        """The targets overlapping tokens [begin, end), in their own order."""
        low, high = bisect_left(starts, begin - longest), bisect_left(starts, end)
        found = [i for i in order[low:high] if targets[i].end > begin]
        return [targets[i] for i in sorted(found)]

    if prune:  # (medspaCy's own test of a trigger inside a mention)
        graph.modifiers = [
            m
            for m in graph.modifiers
            if not any(
                tuple_overlaps((t.start, t.end), m.modifier_span)
                for t in reaching(*m.modifier_span)
            )
        ]
    edges = []
    for modifier in graph.modifiers:
        for target in reaching(*modifier.scope_span):
            if modifier.modifies(target):
                modifier.modify(target)
        modifier.reduce_targets()
        edges.extend((target, modifier) for target in modifier._targets)
    graph.edges = edges
    return edges
