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

spaCy grows a Doc's token array by doubling, each step a new zeroed block the
old one is copied into: a Doc of n tokens has touched memory for up to 4n.
Past glibc's largest reused block (32 MB, some 280,000 tokens) every such page
is new to the process, and the kernel's page faults made a 1 MB note of
"(a) " tokenize 22 times slower than one of 100 KB. A note over ``LONG_NOTE``
characters is therefore tokenized ``STRETCH`` characters or so at a time, cut
where a word starts after whitespace (where spaCy's own tokens end), and its
Doc is made once, at its final size, from the stretches' token ids, spaces and
norms (below ``LONG_NOTE`` that costs more than spaCy's own growth).
"""

import re

import numpy
import spacy
from spacy.attrs import NORM, ORTH, SPACY
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex

from notecoder.extensions import made_from

#: Longest chunk (characters between spaces) spaCy's tokenizer gets whole.
LONG_CHUNK = 48
_LONG = re.compile(rf"\S{{{LONG_CHUNK + 1},}}")
#: In a long chunk: a run of 3 or more punctuation marks (one token each), or the
#: text up to the next such run.
_PUNCT_RUN = re.compile(r"[^\w\s]{3,}|_{3,}")
#: A place a piece of a long chunk may end: after a punctuation mark.
_CUT = re.compile(r"[^\w\s]|_")

#: Notes longer than this (characters) are tokenized a stretch at a time. Up to it,
#: spaCy's doubling stays below glibc's 32 MB: at most a token per character, in an
#: array of 163,840 tokens of some 120 bytes (20 MB) at the end.
LONG_NOTE = 131_072
#: Characters in a stretch, or so (the stretch ends where a word starts).
STRETCH = 16_384
#: Where a stretch may end: where a word starts after whitespace.
_WORD_START = re.compile(r"(?<=\s)(?=\S)")
#: What a note's Doc is made from: each token's id, trailing space and norm.
_ROW = [ORTH, SPACY, NORM]

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
    """spaCy's ``Tokenizer`` in linear time: long chunks are cut first, long notes are
    read a stretch at a time (see the module)."""

    def __call__(self, text: str) -> Doc:
        return made_from(self._tokenize(text), text)

    def _tokenize(self, text: str) -> Doc:
        if len(text) <= LONG_NOTE and _LONG.search(text) is None:
            return super().__call__(text)
        rows: list[numpy.ndarray] = []
        start = 0
        for chunk in _LONG.finditer(text):
            self._add(text[start : chunk.start()], rows)
            for piece in _pieces(chunk.group()):
                if _PUNCT_RUN.fullmatch(piece):
                    for at in range(0, len(piece), STRETCH):
                        run = list(piece[at : at + STRETCH])
                        rows.append(
                            Doc(self.vocab, words=run, spaces=[False] * len(run)).to_array(_ROW)
                        )
                else:
                    self._add(piece, rows)
            start = chunk.end()
        self._add(text[start:], rows)
        # (Column by column: no second copy of the whole table, transposed.)
        orth, spaces, norm = (numpy.concatenate([r[:, k] for r in rows]) for k in range(3))
        # Token ids (not strings): the Doc looks each up, with no Python str per token.
        doc = Doc(self.vocab, words=memoryview(orth), spaces=memoryview(spaces))
        return doc.from_array([NORM], norm)  # the norms of tokenizer exceptions ("n't")

    def _add(self, text: str, rows: list[numpy.ndarray]) -> None:
        """spaCy's tokens of a stretch of text, ``STRETCH`` characters or so at a time,
        appended; its leading space is glued to the token before (as spaCy would
        have made it)."""
        if text[:1] == " " and rows and not rows[-1][-1, 1]:
            rows[-1][-1, 1], text = True, text[1:]
        start = 0
        while start < len(text):
            cut = _WORD_START.search(text, start + STRETCH)
            end = cut.start() if cut else len(text)
            rows.append(super().__call__(text[start:end]).to_array(_ROW))
            start = end


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
