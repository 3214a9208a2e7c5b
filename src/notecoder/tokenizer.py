"""spaCy's English tokenizer, plus the commas that stood for line breaks.

The MTSamples transcriptions (and other scraped or exported notes) have commas
where line breaks were: "at L4-5.,IMPRESSION:,  Stenosis". spaCy keeps
"5.,IMPRESSION" as one token, which hides both the level and the heading; here
a comma glued to a following letter, and a period glued to such a comma, are
split off. So is a comma between a letter and a digit: "DIAGNOSES,1. Stenosis"
is a heading without its colon, a line break and a numbered list, and the
sectionizer can only see the heading as a token of its own. A comma between two
digits stays: "1,000" is a number and "C5,6" a pair of levels.

spaCy's tokenizer takes time quadratic in the length of a run of prefix or
suffix characters: it strips them one at a time and searches the rest of the
chunk for a suffix each time, so 3,000 "(" in a row take 0.7 s and 20,000
take half a minute. Real words are short; a chunk (text between spaces) over
``LONG_CHUNK`` characters is therefore cut before spaCy sees it: each run of
punctuation is one token per character (what spaCy makes of such a run), and
the rest is handed to spaCy in pieces of at most ``LONG_CHUNK`` characters
(longer only where a run of letters and digits is, which spaCy takes in linear
time), cut where a punctuation mark is. Shorter chunks are spaCy's alone.
"""

import re

import spacy
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex

#: Longest chunk (characters between spaces) spaCy's tokenizer gets whole.
LONG_CHUNK = 48
_LONG = re.compile(rf"\S{{{LONG_CHUNK + 1},}}")
#: In a long chunk: a run of 3 or more punctuation marks (one token each), or the
#: text up to the next such run.
_PUNCT_RUN = re.compile(r"[^\w\s]{3,}|_{3,}")
#: A place a piece of a long chunk may end: after a punctuation mark.
_CUT = re.compile(r"[^\w\s]|_")

_EXTRA_INFIXES = (
    r",(?=[A-Za-z])",  # "male.,EXAM" -> ",", "EXAM"
    r"(?<=[A-Za-z]),(?=\d)",  # "DIAGNOSES,1." -> "DIAGNOSES", ",", "1."
    r"(?<=[.:;]),(?=\S)",  # "IMPRESSION:,1." -> ":", ",", "1."
    r"(?<=[A-Za-z0-9])\.(?=,)",  # "intact.," -> "intact", "."
    r"(?<=[A-Za-z]):(?=,)",  # "IMPRESSION:," -> "IMPRESSION", ":"
    r"(?<=,\d)\.(?=[A-Z])",  # ",1.Subtle" (a list item after a comma) -> "1", ".", "Subtle"
)
_EXTRA_PREFIXES = (r",",)


@spacy.registry.tokenizers("notecoder.Tokenizer.v1")
def create_tokenizer():
    """The tokenizer factory named in pipelines/spine/config.cfg."""

    def make(nlp: Language) -> Tokenizer:
        defaults = nlp.Defaults
        return NoteTokenizer(
            nlp.vocab,
            rules=defaults.tokenizer_exceptions,
            prefix_search=compile_prefix_regex([*defaults.prefixes, *_EXTRA_PREFIXES]).search,
            suffix_search=compile_suffix_regex(defaults.suffixes).search,
            infix_finditer=compile_infix_regex([*defaults.infixes, *_EXTRA_INFIXES]).finditer,
            token_match=defaults.token_match,
            url_match=defaults.url_match,
        )

    return make


class NoteTokenizer(Tokenizer):
    """spaCy's ``Tokenizer`` in linear time: long chunks are cut first (see the module)."""

    def __call__(self, text: str) -> Doc:
        if _LONG.search(text) is None:
            return super().__call__(text)
        words: list[str] = []
        spaces: list[bool] = []
        start = 0
        for chunk in _LONG.finditer(text):
            self._add(text[start : chunk.start()], words, spaces)
            for piece in _pieces(chunk.group()):
                if _PUNCT_RUN.fullmatch(piece):
                    words.extend(piece)
                    spaces.extend([False] * len(piece))
                else:
                    self._add(piece, words, spaces)
            start = chunk.end()
        self._add(text[start:], words, spaces)
        return Doc(self.vocab, words=words, spaces=spaces)

    def _add(self, text: str, words: list[str], spaces: list[bool]) -> None:
        """spaCy's tokens of a stretch of text, appended; its leading space is glued to
        the token before (as spaCy would have made it)."""
        if not text:
            return
        if text[0] == " " and words and not spaces[-1]:
            spaces[-1], text = True, text[1:]
        for token in super().__call__(text):
            words.append(token.text)
            spaces.append(bool(token.whitespace_))


def _pieces(chunk: str) -> list[str]:
    """A long chunk as runs of punctuation and pieces of at most ``LONG_CHUNK`` characters."""
    pieces: list[str] = []
    start = 0
    for run in _PUNCT_RUN.finditer(chunk):
        pieces.extend(_cut(chunk[start : run.start()]))
        pieces.append(run.group())
        start = run.end()
    pieces.extend(_cut(chunk[start:]))
    return pieces


def _cut(text: str) -> list[str]:
    """``text`` in pieces of at most ``LONG_CHUNK`` characters, each ending after a
    punctuation mark where there is one to end at."""
    pieces: list[str] = []
    while len(text) > LONG_CHUNK:
        cuts = [m.end() for m in _CUT.finditer(text, 1, LONG_CHUNK + 1)]
        end = cuts[-1] if cuts else (m.end() if (m := _CUT.search(text, LONG_CHUNK)) else len(text))
        pieces.append(text[:end])
        text = text[end:]
    if text:
        pieces.append(text)
    return pieces
