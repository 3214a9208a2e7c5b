"""A fast clinical sentence splitter.

medspaCy's default PyRuSH splitter runs at about 30 notes a second here, some
60 times slower than spaCy's tokenizer, and at DEBUG it logs every token of the
note. ConText scopes end at sentence boundaries, so the splitter decides what a
negation can reach: it must cut at headings, list items and blank lines
(medspaCy #73, #210, #323) and must not cut "L4-5", "2.5 mg" or "Dr. Smith".

One pass over the tokens, on their text only. A sentence starts:

- at the first token, and after a blank line;
- after a line break, unless the previous line runs on into this one (it ends
  without terminal punctuation and with a comma, a hyphen or a connecting word,
  or the new line starts in lower case);
- after ".", "!" or "?" (a list number's "1." excepted, and a "." followed by
  a lower-case word on the same line: "p.o. daily", "approx. 3 weeks");
- after a heading's colon ("ASSESSMENT:", "A:", "Assessment and Plan:"), so
  the heading is a sentence of its own and "No discitis" after it is the start
  of the next one (medspaCy #155);
- at a list marker ("1.", "2)", "#3", "-", "*") that begins a line or follows
  the end of the previous item.

MTSamples' commas for line breaks (".," and ":,") are skipped over.
"""

import re
from typing import Any

import numpy
from spacy.attrs import SENT_START
from spacy.tokens import Doc

from notecoder.rulefile import RuleFileComponent
from notecoder.spans import TokenText

_TERMINAL = {".", "!", "?", "...", "…"}
_LIST_NUMBER = re.compile(r"^(?:#?\d{1,2}|[a-z])$")
_BULLETS = {"-", "*", "•", "–", "·"}


class SentenceSplitter(RuleFileComponent):
    """Sets ``token.is_sent_start`` for every token, from rules on token text."""

    rules_file = "sentence_rules.json"

    def __init__(self, name: str) -> None:
        self.name = name
        self.data: dict[str, Any] = {}
        self._continuation: frozenset[str] = frozenset()
        self._heading_words: frozenset[str] = frozenset()
        self._soap: frozenset[str] = frozenset()

    def rules_data(self) -> dict[str, Any]:
        return self.data

    def set_rules(self, data: dict[str, Any]) -> None:
        self.data = data
        self._continuation = frozenset(w.lower() for w in data["continuation_words"])
        self._heading_words = frozenset(w.lower() for w in data["heading_words"])
        self._soap = frozenset(data["soap_letters"])

    def __call__(self, doc: Doc) -> Doc:
        if not self.data:
            raise ValueError("notecoder_sentences has no rules: call nlp.initialize()")
        n = len(doc)
        if n == 0:
            return doc
        texts = TokenText(doc).each()  # (no Python Token object per token)
        starts = [False] * n
        pending = True  # the next real token starts a sentence
        line_start = True  # the next real token is the first of its line
        last_real = -1  # index of the previous non-space token
        last_start = -1  # index of the last sentence start so far
        by_period = False  # the pending start comes from a "."
        for i in range(n):
            text = texts[i]
            if text.isspace():
                if "\n" in text:
                    if text.count("\n") > 1 or self._ends_item(texts, last_real):
                        pending = True
                    line_start = True
                continue
            if line_start and not pending and last_real >= 0:
                pending = not self._runs_on(texts, last_real, text)
            if pending and by_period and text[:1].islower() and not line_start:
                pending = False  # "p.o. daily", "approx. 3 weeks": an abbreviation's period
            if pending and text not in {",", ";"}:
                starts[i] = True
                last_start = i
                pending = False
            elif line_start and self._is_list_marker(texts, i):
                starts[i] = True
                last_start = i
            line_start = False  # a line break is a token of its own
            by_period = False
            if text in _TERMINAL and not self._is_list_number(texts, i, starts):
                pending = True
                by_period = text == "."
            # A heading is a few words from its sentence's start (_is_heading looks
            # 7 tokens back at most): a run of colons need not be looked at.
            elif text == ":" and last_start >= i - 7 and self._is_heading(texts, i, starts):
                pending = True
            last_real = i
        starts[0] = True
        self._bound(texts, starts)
        # One array write instead of a Python setter call per token.
        values = numpy.fromiter((1 if s else -1 for s in starts), dtype="int64", count=n)
        doc.from_array([SENT_START], values.astype("uint64").reshape(n, 1))
        return doc

    def _bound(self, texts: list[str], starts: list[bool]) -> None:
        """Cut sentences longer than ``max_sentence_tokens`` (a rule of the data file).

        Later stages compare the mentions of a sentence pairwise and find a
        mention's sentence by walking it, so a note with no sentence end (a
        list run together, crafted text) would cost time quadratic in its
        length. A dictated sentence is far shorter (259 tokens at most in the
        2,357 MTSamples notes, 5 over 200): the cut goes after the last comma,
        semicolon or line break in the second half of the window, else where
        the limit falls.
        """
        limit = self.data.get("max_sentence_tokens")
        if not limit:
            return
        begin, candidate, previous, newline = 0, -1, -1, False
        for i, text in enumerate(texts):
            if starts[i]:
                begin, candidate = i, -1
            elif text.isspace():
                newline = newline or "\n" in text
                continue
            else:
                if previous >= 0 and (newline or texts[previous] in {",", ";"}):
                    candidate = i
                if i - begin >= limit:
                    cut = candidate if candidate - begin >= limit // 2 else i
                    starts[cut] = True
                    begin, candidate = cut, -1
            newline, previous = False, i

    @staticmethod
    def _ends_item(texts: list[str], last_real: int) -> bool:
        """The line before a single line break ended a sentence or a heading."""
        return last_real >= 0 and (texts[last_real] in _TERMINAL or texts[last_real] == ":")

    def _runs_on(self, texts: list[str], last_real: int, first: str) -> bool:
        """Does the previous line continue into this one (wrapped dictation)?"""
        last = texts[last_real]
        if last in _TERMINAL or last == ":":
            return False
        if first in _BULLETS or _LIST_NUMBER.match(first):
            return False
        if first[:1].islower():
            return True
        return last in {",", "-", "/", "("} or last.lower() in self._continuation

    @staticmethod
    def _is_list_marker(texts: list[str], i: int) -> bool:
        text = texts[i]
        nxt = texts[i + 1] if i + 1 < len(texts) else ""
        return text in _BULLETS or (bool(_LIST_NUMBER.match(text)) and nxt in {".", ")"})

    @staticmethod
    def _is_list_number(texts: list[str], i: int, starts: list[bool]) -> bool:
        """A "." right after a list number that starts its sentence ("1. ")."""
        return i >= 1 and starts[i - 1] and bool(_LIST_NUMBER.match(texts[i - 1]))

    def _is_heading(self, texts: list[str], i: int, starts: list[bool]) -> bool:
        """A colon that closes a heading: a few words from the sentence start."""
        j = i - 1
        words: list[str] = []
        while j >= 0 and not texts[j].isspace() and len(words) < 6:
            words.append(texts[j])
            if starts[j]:
                break
            j -= 1
        if j < 0 or not starts[j] or not words:
            return False
        words.reverse()
        if len(words) == 1 and words[0] in self._soap:
            return True
        alpha = [w for w in words if w.isalpha()]
        if alpha and all(w.isupper() for w in alpha):
            return True
        return " ".join(w.lower() for w in words) in self._heading_words
