"""Sections: clinic headings, SOAP (S:/O:/A:/P:) and radiology (FINDINGS/IMPRESSION).

A subclass of medspaCy's ``Sectionizer`` that differs in four ways that the
coder depends on:

- its rules (pipelines/spine/section_rules.json) are loaded at ``initialize``
  and saved by ``to_disk`` (``RuleFileComponent``), so a saved pipeline keeps
  them (medspaCy #243, #192);
- a heading counts only where a heading can stand: at the start of a line, after
  the comma MTSamples left for a line break, or after the end of a sentence, so
  "assessment" or "plan:" in running prose is not a heading. A heading without
  its colon ("DIAGNOSES,1. ...", "ASSESSMENT AND PLAN" on a line of its own)
  counts only at a line start, in upper or title case, and only where a line
  break follows it;
- unlisted headings ("WORK STATUS:") open a section of category ``other``
  instead of being absorbed into the previous one (medspaCy #80), so the
  assessment ends where the note's next heading begins;
- a heading may name another category where an earlier section shows what kind
  of note it is (``category_after``): "PROCEDURE:" after "PROCEDURE PERFORMED:"
  is the operative narrative, not the procedure performed.
"""

import re
from bisect import bisect_right
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

from notecoder._medspacy import Section, Sectionizer, SectionRule
from notecoder.extensions import doc_text
from notecoder.matching import LeanMatcher
from notecoder.rulefile import RuleFileComponent

#: Categories an unlisted heading takes from its last words ("INITIAL IMPRESSION",
#: "VIDEO EEG DIAGNOSES", "BRIEF HISTORY AND INDICATION FOR OPERATION", "MALE
#: PHYSICAL EXAMINATION"); not the history ones, as "HISTORY:" would make "LEGAL
#: HISTORY" the present illness.
_SUFFIX_CATEGORIES = frozenset(
    {
        "physical_exam",
        "review_of_systems",
        "impression",
        "assessment_and_plan",
        "diagnoses",
        "preoperative_diagnosis",
        "postoperative_diagnosis",
        "differential_diagnosis",
        "findings",
        "indication",
        "procedure",
        "procedure_detail",
        "plan",
    }
)
#: Tokens after which a heading may start (besides a line break): sentence ends, the
#: comma of a line break, and the bullets AI scribes put before "Medical Reasoning:".
_BEFORE_HEADING = {",", ".", ";", "!", "?", "•", "·", "▪", "◦", "*"}
#: A heading without a colon has at least this many letters: "MRI,CT" in a list or
#: "PE" alone on a line is too short to be told from text.
_BARE_MIN_LETTERS = 4
#: What follows a heading without its colon: the end of its line, or the comma of a
#: line break (MTSamples) and a numbered list ("DIAGNOSES,1. ...").
_LINE_END = re.compile(r"[ \t]*+(?:\r?\n|\Z)")
_NUMBERED_LIST = re.compile(r"[ \t]*+,[ \t,]*+\d{1,2}[.)]")
#: What a heading's key leaves out: the colon, a plural "(ES)" and a number
#: ("PREOPERATIVE DIAGNOSIS (ES):", "PROCEDURE #1:").
_KEY_DROP = re.compile(r"\(e?s\)|#\s*\d+|:")
_KEY_WORD = re.compile(r"[a-z0-9]+|[/&]")


_STARTS_KEY = "notecoder.section_starts"


def section_of(item: Span | Token) -> str | None:
    """The category of the section a span or token lies in (None before any heading).

    The coder and the result ask this for every mention, often several times:
    the section starts are listed when the sectionizer sets ``doc._.sections``
    (or on first use, for sections set some other way) and bisected.
    """
    doc = item.doc
    cached = doc.user_data.get(_STARTS_KEY)
    if cached is None:
        cached = _list_starts(doc, doc._.sections or [])
    sections, starts = cached
    k = bisect_right(starts, item.start if isinstance(item, Span) else item.i) - 1
    return sections[k].category if k >= 0 else None


def _list_starts(doc: Doc, sections: list[Section]) -> tuple[list[Section], list[int]]:
    cached = doc.user_data[_STARTS_KEY] = (sections, [s.section_span[0] for s in sections])
    return cached


# medspaCy's ``section_category`` reads ``token._.section``, which only its own
# sectionizer sets (ours does not, see ``NotecoderSectionizer.__call__``): it would be
# None on every mention. Ours reads ``doc._.sections``, as medspaCy's would after its
# own sectionizer. Forced, as medspaCy registered its getter on import; medspaCy never
# forces its registrations, so importing or building medspaCy later keeps ours.
Span.set_extension("section_category", getter=section_of, force=True)
Token.set_extension("section_category", getter=section_of, force=True)


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
        self._listed = {}
        for rule in rules:
            if rule.pattern is None:
                self._listed.setdefault(_heading_key(rule.literal), rule)

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
        seen: set[str] = set()
        for k, (match_id, start, end) in enumerate(matches):
            rule = self._rule_for(match_id)
            category = _category(rule, seen)
            seen.add(category)
            sections.append(Section(category, start, end, end, starts[k + 1], None, rule))
        doc._.sections = sections
        _list_starts(doc, sections)
        return doc

    def filter_start_lines(
        self, doc: Doc, matches: list[tuple[int, int, int]]
    ) -> list[tuple[int, int, int]]:
        """Keep headings where a heading can stand; a listed heading beats ``other``.

        The matcher keeps one of two equally long matches, so an ``other`` match
        whose words are a listed heading is given back the listed heading's rule.
        A match of a ``bare`` rule (a heading without its colon) stands only as
        ``_bare_heading`` allows.
        """
        kept = []
        for match_id, start, end in matches:
            rule = self._rule_for(match_id)
            if (rule.metadata or {}).get("bare"):
                bare_id = self._bare_heading(doc, start, end, match_id)
                if bare_id is not None:
                    kept.append((bare_id, start, end))
                continue
            if not _heading_position(doc, start):
                continue
            if rule.category == "other":
                listed = self._listed_heading(_heading_key(_text(doc, start, end)))
                if listed:
                    match_id = self.nlp.vocab.strings.add(listed)
            kept.append((match_id, start, end))
        return kept

    def _bare_heading(self, doc: Doc, start: int, end: int, match_id: int) -> int | None:
        """The rule of a heading written without its colon, or None where it is text.

        The rule's pattern has found capitalised words alone on a line or between
        the commas of a line break. Without a colon only the words tell a heading
        from a line of text ("LUMBAR STENOSIS" alone on a line of an upper-case
        note), so: a listed heading ("ASSESSMENT AND PLAN", "Review of Systems")
        counts in upper case, and in title case where its line ends or a numbered
        list follows; an unlisted one ("DEVICE DATA,1. ...") counts, as ``other``,
        only in upper case before a numbered list.
        """
        heading = _text(doc, start, end)
        if sum(c.isalpha() for c in heading) < _BARE_MIN_LETTERS:
            return None
        text = doc_text(doc)
        char_end = doc[end - 1].idx + len(doc[end - 1])
        upper = not any(c.islower() for c in heading)
        numbered = _NUMBERED_LIST.match(text, char_end) is not None
        listed = self._listed_heading(_heading_key(heading))
        if listed:
            if upper or numbered or _LINE_END.match(text, char_end):
                return self.nlp.vocab.strings.add(listed)
            return None
        return match_id if upper and numbered else None

    def _listed_heading(self, key: str) -> str | None:
        """The listed rule for a heading's key (``_heading_key``): all its words
        ("FAMILY HISTORY"), or a diagnostic, indication, procedure or plan heading
        they end with ("INITIAL IMPRESSION", "BRIEF HISTORY AND INDICATION FOR
        OPERATION")."""
        if key in self._listed:
            return self._listed[key]._rule_id
        words = key.split(" ")
        for k in range(1, len(words)):
            rule = self._listed.get(" ".join(words[k:]))
            if rule and rule.category in _SUFFIX_CATEGORIES:
                return rule._rule_id
        return None

    def _rule_for(self, match_id: int) -> SectionRule:
        return self._Sectionizer__matcher.rule_map[self.nlp.vocab.strings[match_id]]


def _text(doc: Doc, start: int, end: int) -> str:
    """The text of tokens ``start:end`` (without a Span, which the matcher loop
    would build for every heading)."""
    last = doc[end - 1]
    return doc_text(doc)[doc[start].idx : last.idx + len(last)]


def _heading_key(heading: str) -> str:
    """A heading as the listed headings are looked up: lower case, its words and
    slashes only ("IMPRESSION / PLAN:" and "impression/plan:" are "impression /
    plan", "PRE-OP DX" is "pre op dx"), without a plural "(ES)" or a "#1"."""
    return " ".join(_KEY_WORD.findall(_KEY_DROP.sub(" ", heading.lower())))


def _category(rule: SectionRule, seen: set[str]) -> str:
    """The rule's category, or the one its ``category_after`` names for the first
    earlier category seen ("PROCEDURE:" after a ``procedure`` section is the
    narrative, ``procedure_detail``)."""
    after = (rule.metadata or {}).get("category_after") or {}
    for earlier, category in after.items():
        if earlier in seen:
            return category
    return rule.category


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
