"""medspaCy ConText with rules that are saved with the pipeline.

medspaCy's ``ConText`` reads its rules from a path when it is built and has no
``to_disk``/``from_disk``, so a saved pipeline loses or re-reads them (medspaCy
#243, #192). This subclass takes its rules at ``initialize`` (from
pipelines/spine/context_rules.json) and writes them into the pipeline folder
(``RuleFileComponent``), so ``nlp.to_disk`` then ``spacy.load`` gives the same
answers with no rule file beside it. Targets are the mentions in ``doc.spans["notecoder"]``.
"""

from bisect import bisect_left, bisect_right
from itertools import pairwise
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from notecoder._medspacy import ConText, ConTextGraph, ConTextModifier, ConTextRule, tuple_overlaps
from notecoder.matching import LeanMatcher
from notecoder.rulefile import RuleFileComponent
from notecoder.sections import section_of
from notecoder.spans import DocView, plain_sentences

#: Attribute names of our result, by the ConText category that sets them.
CATEGORY_ATTRIBUTE: dict[str, str] = {
    "NEGATED_EXISTENCE": "negated",
    "POSSIBLE_EXISTENCE": "uncertain",
    "HISTORICAL": "historical",
    "HYPOTHETICAL": "hypothetical",
    "FAMILY": "family",
}


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
        bounded by ``notecoder_sentences``). Sentence bounds are read once
        (``DocView``), not built as a ``Span`` per target and per trigger.
        """
        graphs: dict[int, ConTextGraph] = {}

        def graph(start: int) -> ConTextGraph:
            if start not in graphs:
                graphs[start] = ConTextGraph(prune_on_modifier_overlap=self.prune_on_target_overlap)
            return graphs[start]

        matcher = self._ConText__matcher
        matches = matcher(doc)
        view = DocView(doc)
        own_scopes = plain_sentences(doc) and not self.max_scope
        first = view.first if targets or matches else []
        last = view.end if matches and own_scopes else []
        if last:
            starts = [start for _, start, _ in matches]
            first, last = _pieces(starts, first, last, self._data.get("max_sentence_triggers"))
        for target in targets:  # (and in the next sentence, should a target cross into it)
            start, end = target.start, target.end
            for sent_start in {first[start], first[max(end - 1, start)]}:
                graph(sent_start).targets.append(target)
        strings = self.nlp.vocab.strings
        for match_id, start, end in matches:
            rule = matcher.rule_map[strings[match_id]]
            if own_scopes:
                scope = _sentence_scope(rule, start, end, first[start], last[start])
                modifier = ConTextModifier(
                    rule, start, end, doc, scope_start=scope[0], scope_end=scope[1]
                )
            else:
                modifier = ConTextModifier(rule, start, end, doc, max_scope=self.max_scope)
            graph(first[start]).modifiers.append(modifier)
        edges = []
        for part in graphs.values():
            _update_scopes(part)
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
        group = list(doc.spans.get(self.span_group_name, []))  # (a Span is built per read)
        targets = [s for s in group if s.label_ != "SPINAL_LEVEL"]
        doc._.context_targets = targets
        self._apply(doc, targets)
        by_section = self._data.get("section_attributes", {})
        if by_section:
            for span in group:
                for attr, value in by_section.get(section_of(span), {}).items():
                    setattr(span._, attr, value)
        return doc


def _pieces(
    starts: list[int], first: list[int], last: list[int], cap: int | None
) -> tuple[list[int], list[int]]:
    """The first token and end of each token's sentence, with a sentence of more than
    ``cap`` triggers (starting at ``starts``) read as pieces of ``cap`` triggers, each
    cut just before a trigger.

    ConText lets every trigger of a sentence limit the scope of every other, so
    a sentence's work grows with the square of its triggers: 200 tokens of "vs"
    took 0.1 s. No MTSamples sentence holds more than 16 triggers; a sentence
    that does is not dictation, and is read as if the splitter had cut it.
    """
    if cap is None:
        return first, last
    by_sentence: dict[int, list[int]] = {}
    for start in starts:
        by_sentence.setdefault(first[start], []).append(start)
    crowded = {k: v for k, v in by_sentence.items() if len(v) > cap}
    if not crowded:
        return first, last
    first, last = list(first), list(last)  # (the Doc's own tables are shared)
    for sentence, triggers in crowded.items():
        cuts = [sentence, *sorted(triggers)[cap::cap], last[sentence]]
        for lo, hi in pairwise(cuts):
            first[lo:hi] = [lo] * (hi - lo)
            last[lo:hi] = [hi] * (hi - lo)
    return first, last


def _sentence_scope(
    rule: ConTextRule, start: int, end: int, sent_start: int, sent_end: int
) -> tuple[int, int]:
    """The scope ``ConTextModifier`` gives a trigger at [start, end) in its sentence.

    medspaCy's ``__set_scope`` when ConText has no ``max_scope`` of its own,
    given the sentence instead of building it (``Token.sent``) per trigger: the
    rest of the sentence in the rule's direction, cut to the rule's
    ``max_scope`` tokens.
    """
    limit = rule.max_scope
    direction = rule.direction.lower()
    if direction == "forward":
        if limit is not None and sent_end - end > limit:
            return end, end + limit
        return end, sent_end
    if direction == "backward":
        if limit is not None and start - sent_start > limit:
            return start - limit, start
        return sent_start, start
    scope_start, scope_end = sent_start, sent_end
    if limit is not None and start - scope_start > limit:
        scope_start = start - limit
    if limit is not None and scope_end - end > limit:
        scope_end = end + limit
    return scope_start, scope_end


def _update_scopes(graph: ConTextGraph) -> None:
    """medspaCy's ``ConTextGraph.update_scopes``, calling ``limit_scope`` only where it can act.

    medspaCy lets every trigger of a sentence limit every other, in the order
    (i, j), (j, i) for i < j: quadratic in the triggers of a sentence, which a
    list of negations fills. ``a.limit_scope(b)`` changes nothing unless ``b``
    starts inside the rest of a forward ``a``'s scope or ends inside a backward
    one's; with the triggers in order and apart (as the pruning matcher gives
    them), that is a later trigger for a forward one (only up to the current
    end of its scope) and an earlier one for a backward one. The calls that can
    act are made in medspaCy's order, so the scopes come out the same; each is
    ``limit_scope``'s arithmetic on plain lists (its properties cost 3 us a
    call). Triggers out of order or overlapping take medspaCy's own loop.
    """
    modifiers = graph.modifiers
    spans = [m.modifier_span for m in modifiers]
    apart = all(s <= e for s, e in spans) and all(
        spans[n][1] <= spans[n + 1][0] for n in range(len(spans) - 1)
    )
    if not apart:
        graph.update_scopes()
        return
    starts = [s for s, _ in spans]
    ends = [e for _, e in spans]
    low = [m.scope_span[0] for m in modifiers]  # each scope [low, high), as it is limited
    high = [m.scope_span[1] for m in modifiers]
    directions = [m.direction.lower() for m in modifiers]
    forward = [d in ("forward", "bidirectional") for d in directions]
    backward = [d in ("backward", "bidirectional") for d in directions]
    number: dict[int, int] = {}  # a rule's id -> its number, in order of first use
    kind = [number.setdefault(id(m.rule), len(number)) for m in modifiers]
    width = len(number)
    may: dict[int, bool] = {}  # kind * width + other kind -> _may_limit

    def limit(a: int, b: int) -> None:
        """``modifiers[a].limit_scope(modifiers[b])`` on the lists."""
        low_a, high_a = low[a], high[a]
        # (medspaCy's tuple_overlaps of the two scopes, as it orders them)
        if not (low_a <= low[b] < high_a or low_a < high[b] <= high_a):
            return
        key = kind[a] * width + kind[b]
        if key not in may:
            may[key] = _may_limit(modifiers[a].rule, modifiers[b].rule)
        if not may[key]:
            return
        if forward[a] and starts[b] > starts[a] and starts[b] < high_a:
            high[a] = starts[b]
        if backward[a] and ends[b] < ends[a] and ends[b] > low_a:
            low[a] = ends[b]

    backwards = [j for j, b in enumerate(backward) if b]
    for i in range(len(modifiers) - 1):
        start, end = spans[i]
        # Backward triggers after this one whose scope still reaches back over it
        # (only the pair (i, j) changes j's scope during this pass).
        reaching = [j for j in backwards[bisect_right(backwards, i) :] if low[j] < end]
        pending = 0
        j = i + 1
        if forward[i]:
            while j < len(modifiers) and starts[j] < high[i]:
                if starts[j] > start:
                    limit(i, j)
                if pending < len(reaching) and reaching[pending] == j:
                    limit(j, i)
                    pending += 1
                j += 1
        for later in reaching[pending:]:
            limit(later, i)
    for modifier, scope_start, scope_end in zip(modifiers, low, high, strict=True):
        modifier._scope_start, modifier._scope_end = scope_start, scope_end


def _may_limit(rule: ConTextRule, other: ConTextRule) -> bool:
    """Can a trigger of ``other`` limit the scope of one of ``rule``?

    The tests of medspaCy's ``ConTextModifier.limit_scope`` that depend on the
    rules alone (it returns False on them before changing anything): a
    terminating trigger is never limited; the other must terminate, be of a
    category that terminates this one, or of the same category with the same
    target types.
    """
    if rule.direction.upper() == "TERMINATE":
        return False
    category = other.category.upper()
    if (
        other.direction.upper() != "TERMINATE"
        and category not in rule.terminated_by
        and category != rule.category.upper()
    ):
        return False
    return not (
        rule.category == other.category
        and (
            rule.allowed_types != other.allowed_types or rule.excluded_types != other.excluded_types
        )
    )


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
