"""Sections: clinic headings, SOAP (S:/O:/A:/P:) and radiology (FINDINGS/IMPRESSION).

A subclass of medspaCy's ``Sectionizer`` that differs in three ways that the
coder depends on:

- its rules (pipelines/spine/section_rules.json) are loaded at ``initialize``
  and saved by ``to_disk`` (``RuleFileComponent``), so a saved pipeline keeps
  them (medspaCy #243, #192);
- a heading counts only where a heading can stand: at the start of a line, after
  the comma MTSamples left for a line break, or after the end of a sentence, so
  "assessment" or "plan:" in running prose is not a heading;
- unlisted headings ("WORK STATUS:") open a section of category ``other``
  instead of being absorbed into the previous one (medspaCy #80), so the
  assessment ends where the note's next heading begins.
"""

from bisect import bisect_right
from typing import Any

from medspacy.section_detection import Sectionizer, SectionRule
from medspacy.section_detection.section import Section
from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from notecoder.extensions import SPANS_KEY
from notecoder.matching import LeanMatcher
from notecoder.rulefile import RuleFileComponent

#: Sections whose content is the diagnostic statement (coding-rules.md section 3).
DIAGNOSTIC_SECTIONS = frozenset({"assessment_and_plan", "impression", "diagnoses"})
#: Categories an unlisted heading takes from its last words ("INITIAL IMPRESSION").
_SUFFIX_CATEGORIES = frozenset({"impression", "assessment_and_plan", "diagnoses", "findings"})
#: Tokens after which a heading may start (besides a line break).
_BEFORE_HEADING = {",", ".", ";", "!", "?"}


def section_of(item: Span | Token) -> str | None:
    """The category of the section a span or token lies in (None before any heading)."""
    token = item[0] if isinstance(item, Span) else item
    sections = token.doc._.sections or []
    k = bisect_right([s.section_span[0] for s in sections], token.i) - 1
    return sections[k].category if k >= 0 else None


@Language.factory("notecoder_sectionizer", default_config={"span_group_name": SPANS_KEY})
def make_sectionizer(nlp: Language, name: str, span_group_name: str) -> "NotecoderSectionizer":
    """Build the sectionizer; rules come at ``initialize`` or ``from_disk``."""
    return NotecoderSectionizer(nlp, name, span_group_name)


class NotecoderSectionizer(RuleFileComponent, Sectionizer):
    """medspaCy's Sectionizer with line-start headings and serialisable rules."""

    rules_file = "section_rules.json"

    def __init__(self, nlp: Language, name: str, span_group_name: str) -> None:
        self._data: dict[str, Any] = {}
        self._listed: dict[str, SectionRule] = {}
        self._build(nlp, name, span_group_name)

    def _build(self, nlp: Language, name: str, span_group_name: str) -> None:
        Sectionizer.__init__(
            self,
            nlp,
            name=name,
            rules=None,
            require_start_line=True,
            input_span_type="group",
            span_group_name=span_group_name,
            span_attrs=None,
        )
        self._Sectionizer__matcher = LeanMatcher(nlp, name=name, phrase_matcher_attr="LOWER")

    def rules_data(self) -> dict[str, Any]:
        return self._data

    def set_rules(self, data: dict[str, Any]) -> None:
        self._data = data
        # The medspaCy matcher can only grow: rebuild it from scratch.
        self._build(self.nlp, self.name, self._span_group_name)
        rules = [SectionRule.from_dict(d) for d in data["section_rules"]]
        self.add(rules)
        tokenizer = self.nlp.tokenizer
        self._listed = {
            " ".join(t.lower_ for t in tokenizer(rule.literal.rstrip(":"))): rule
            for rule in rules
            if rule.pattern is None
        }

    def __call__(self, doc: Doc) -> Doc:
        """Sections as medspaCy's ``doc._.sections``, without its per-token writes.

        medspaCy also sets ``token._.section`` on every token, one Python call per
        token and the slowest step of the pipeline; ``section_of`` finds a
        token's section in ``doc._.sections`` instead.
        """
        if not self._data:
            raise ValueError("notecoder_sectionizer has no rules: call nlp.initialize()")
        matches = self.filter_start_lines(doc, self._Sectionizer__matcher(doc))
        starts = [start for _, start, _ in matches] + [len(doc)]
        sections = [] if starts[0] == 0 else [Section(None, 0, 0, 0, starts[0])]
        for k, (match_id, start, end) in enumerate(matches):
            rule = self._rule_for(match_id)
            sections.append(Section(rule.category, start, end, end, starts[k + 1], None, rule))
        doc._.sections = sections
        return doc

    def filter_start_lines(
        self, doc: Doc, matches: list[tuple[int, int, int]]
    ) -> list[tuple[int, int, int]]:
        """Keep headings where a heading can stand; a listed heading beats ``other``.

        The matcher keeps one of two equally long matches, so an ``other`` match
        whose words are a listed heading is given back the listed heading's rule.
        """
        kept = []
        for match_id, start, end in matches:
            if not _heading_position(doc, start):
                continue
            rule = self._rule_for(match_id)
            if rule.category == "other":
                listed = self._listed_heading([t.lower_ for t in doc[start : end - 1]])
                if listed:
                    match_id = self.nlp.vocab.strings.add(listed)
            kept.append((match_id, start, end))
        return kept

    def _listed_heading(self, words: list[str]) -> str | None:
        """The listed rule for these heading words: all of them ("FAMILY HISTORY"), or
        a diagnostic heading they end with ("INITIAL IMPRESSION", "FINAL DIAGNOSIS")."""
        if " ".join(words) in self._listed:
            return self._listed[" ".join(words)]._rule_id
        for k in range(1, len(words)):
            rule = self._listed.get(" ".join(words[k:]))
            if rule and rule.category in _SUFFIX_CATEGORIES:
                return rule._rule_id
        return None

    def _rule_for(self, match_id: int) -> SectionRule:
        return self._Sectionizer__matcher.rule_map[self.nlp.vocab.strings[match_id]]


def _heading_position(doc: Doc, start: int) -> bool:
    """True at the start of the text, of a line, or of a sentence."""
    if start == 0:
        return True
    prev = doc[start - 1]
    if "\n" in prev.text or "\n" in prev.whitespace_:
        return True
    if prev.is_space and start >= 2:
        prev = doc[start - 2]
        if "\n" in prev.text:
            return True
    return prev.text in _BEFORE_HEADING
