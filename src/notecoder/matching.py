"""medspaCy's rule matcher without the passes that find nothing.

``MedspacyMatcher`` runs spaCy's token ``Matcher`` on every Doc, and that
matcher builds a Python ``Token`` for every token of the note even when it
holds no pattern; its ``RegexMatcher`` joins the Doc's text again for every
pattern. In this pipeline those two passes cost more than the tokenizer.
``LeanMatcher`` finds the same matches: it skips an empty token matcher and runs
the regular expressions of string patterns (case-insensitive, as medspaCy's)
over the text once (``doc_text``).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Any

from spacy.tokens import Doc

from notecoder._medspacy import BaseRule, MedspacyMatcher, overlaps
from notecoder.extensions import doc_text


class LeanMatcher(MedspacyMatcher):
    """A ``MedspacyMatcher`` that runs only the matchers that hold rules."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._regexes: list[tuple[int, re.Pattern[str]]] = []

    def add(self, rules: Iterable[BaseRule]) -> None:
        rules = list(rules)
        super().add(rules)
        for rule in rules:
            if isinstance(rule.pattern, str):
                key = self.nlp.vocab.strings.add(rule._rule_id)
                self._regexes.append((key, re.compile(rule.pattern, re.IGNORECASE)))

    def __call__(self, doc: Doc) -> list[tuple[int, int, int]]:
        token_matcher = self._MedspacyMatcher__matcher
        matches = token_matcher(doc) if len(token_matcher) else []
        matches += self._MedspacyMatcher__phrase_matcher(doc)
        if self._regexes:
            text = doc_text(doc)
            for key, regex in self._regexes:
                for found in regex.finditer(text):
                    span = doc.char_span(*found.span(), alignment_mode="expand")
                    if span is not None and len(span):
                        matches.append((key, span.start, span.end))
        if self._prune:
            matches = prune_overlapping(matches)
        return matches


def prune_overlapping(matches: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """medspaCy's ``prune_overlapping_matches`` ("longest"), in linear time per pass.

    medspaCy takes each match off the front of a list (``list.pop(0)``), which is
    quadratic in the number of matches: a note of 80,000 headings spent seconds
    there. Same passes, same answers, with a deque.
    """
    while True:
        unpruned = deque(sorted(matches, key=lambda m: (m[1], m[2])))
        if not unpruned:
            return matches
        pruned = []
        current = unpruned.popleft()
        while True:
            if not unpruned:
                pruned.append(current)
                break
            following = unpruned.popleft()
            if overlaps(current, following):
                pruned.append(max(current, following, key=lambda m: m[2] - m[1]))
                if not unpruned:
                    break
                current = unpruned.popleft()
            else:
                pruned.append(current)
                current = following
        if len(pruned) == len(matches):
            return pruned
        matches = pruned
