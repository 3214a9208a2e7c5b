"""scispaCy's abbreviation detector, in linear time, run only on notes that can define one.

"degenerative disc disease (DDD)" teaches the note what "DDD" means
(Schwartz & Hearst); without a parenthesis a note defines nothing, so the
detector runs only on notes with a "(" token.

scispaCy finds its candidates with the token pattern ``( + )``, for which spaCy's
``Matcher`` returns every "(" paired with every later ")": quadratic in their
number ("(a) " repeated 5,000 times took a minute), though it then drops every
candidate of more than 8 tokens. Here the candidates are found directly, each
"(" with the ")" tokens at most 9 tokens on, which is the same set; scispaCy's
filter of them runs on token offsets and texts (it sliced the Doc for each,
building a Python ``Token`` per token), most of them dropped on arrays first;
a short form already defined is not looked up again; and the defined short
forms are found again in the note with a ``PhraseMatcher`` (one pass, whatever
their number) instead of one ``Matcher`` pattern each.
"""

from collections import defaultdict

import numpy
from scispacy.abbreviation import AbbreviationDetector, find_abbreviation
from spacy.attrs import ORTH
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

from notecoder.spans import TokenText

#: scispaCy ignores a parenthesis holding more than this many tokens.
_MAX_INSIDE = 8


#: How many "(" the arrays of the first tests hold at a time.
_BLOCK = 16384

#: A stretch of tokens [start, end).
_Tokens = tuple[int, int]


class ParenthesisAbbreviationDetector(AbbreviationDetector):
    """``AbbreviationDetector`` with the same results in linear time (see the module)."""

    def __init__(self, nlp: Language, name: str) -> None:
        super().__init__(nlp, name=name, make_serializable=False)
        self._open = nlp.vocab.strings.add("(")
        self._close = nlp.vocab.strings.add(")")

    def __call__(self, doc: Doc) -> Doc:
        orth = doc.to_array(ORTH)
        is_open = orth == self._open
        opens = is_open.nonzero()[0]
        if not len(opens):
            return doc
        texts = TokenText(doc)
        starts, ends = texts.arrays
        lengths = ends - starts
        wrong = numpy.concatenate([[0], numpy.cumsum((lengths < 2) | (lengths >= 10))])
        closes = numpy.append(orth == self._close, False)  # (the last: past the end)
        # A block of "(" at a time: arrays of a few MB at most, where 1 MB of "(a) " made
        # 16 MB ones, each a new mapping from the kernel.
        inside = [
            pair
            for at in range(0, len(opens), _BLOCK)
            for pair in _plausible(_inside(closes, opens[at : at + _BLOCK]), wrong)
        ]
        if not inside:
            return doc
        brackets = is_open.astype("int8") - closes[:-1].astype("int8")
        candidates = _candidates(inside, texts, brackets)
        definitions = self._definitions(candidates, doc, texts)
        if definitions:
            abbreviations = doc._.abbreviations  # (the Doc's own list, made on first use)
            for long_form, short_forms in definitions:
                for short in short_forms:
                    short._.long_form = long_form
                    abbreviations.append(short)
        return doc

    def _definitions(
        self, candidates: list[tuple[_Tokens, _Tokens]], doc: Doc, texts: TokenText
    ) -> list[tuple[Span, set[Span]]]:
        """scispaCy's ``find_matches_for``: each short form defined once, then every place
        it occurs, found by one ``PhraseMatcher`` pass.

        A short form already defined is skipped before its long form is looked
        for (scispaCy looks, then skips it): a note repeating one definition
        thousands of times reads it once.
        """
        found: dict[Span, set[Span]] = defaultdict(set)
        long_forms: dict[str, Span] = {}
        seen_long: set[str] = set()
        seen_short: set[str] = set()
        matcher = PhraseMatcher(doc.vocab, attr="ORTH")
        for (long_start, long_end), (short_start, short_end) in candidates:
            if texts(short_start, short_end) in seen_short:
                continue
            short, long = find_abbreviation(doc[long_start:long_end], doc[short_start:short_end])
            if long is None or long.text in seen_long or short.text in seen_short:
                continue
            seen_long.add(long.text)
            seen_short.add(short.text)
            found[long].add(short)
            long_forms[long.text] = long
            # (Not ``short.as_doc()``: it reads the arrays of the whole Doc on every call.)
            matcher.add(long.text, [Doc(doc.vocab, words=[t.text for t in short])])
        for key, start, end in matcher(doc):
            found[long_forms[doc.vocab.strings[key]]].add(doc[start:end])
        return list(found.items())


def _inside(closes: numpy.ndarray, opens: numpy.ndarray) -> numpy.ndarray:
    """What scispaCy's matcher finds, less its brackets and its long candidates: each
    "(" with every ")" 2 to 9 tokens on, in order of the "(" then the ")" (the tokens
    inside, one row each; ``closes``: is each token a ")", and one more, False)."""
    # One row per "(", one column per step: row by row is "(" then ")" order.
    ends = numpy.minimum(opens[:, None] + numpy.arange(2, 2 + _MAX_INSIDE), len(closes) - 1)
    found = closes[ends]
    return numpy.stack([numpy.repeat(opens + 1, found.sum(axis=1)), ends[found]], axis=1)


def _plausible(inside: numpy.ndarray, wrong: numpy.ndarray) -> list[_Tokens]:
    """The parentheses that pass the first of scispaCy's tests (at most 8 words, not at
    the start of the note, each word of the short form 2 to 9 characters), on arrays
    (``wrong``: how many tokens before each are not 2 to 9 characters long).

    "(a) " repeated puts three parentheses per bracket before ``_candidates``,
    none with a short form of two letters.
    """
    start, end = inside[:, 0], inside[:, 1]
    long_inside = end - start > 3
    short_start = numpy.clip(numpy.where(long_inside, start - 2, start), 0, None)
    short_end = numpy.where(long_inside, start - 1, end)
    keep = (end - start <= 8) & (start != 1) & (wrong[short_end] == wrong[short_start])
    return [(a, b) for a, b in inside[keep].tolist()]


def _candidates(
    inside: list[_Tokens], texts: TokenText, brackets: numpy.ndarray
) -> list[tuple[_Tokens, _Tokens]]:
    """The rest of scispaCy's ``filter_matches``, on token bounds, for the parentheses
    ``_plausible`` kept: (long form, short form) candidates for each, in order.

    scispaCy slices the Doc for every candidate and its tests (a ``Span`` and a
    ``Token`` per token). Here token lengths and brackets come from arrays
    (``brackets``: 1 for "(", -1 for ")", else 0), and a short form's text is
    tested once however often the note repeats it.
    """
    starts, ends = texts.starts, texts.ends
    tested: dict[str, bool] = {}
    candidates = []
    for start, end in inside:
        # Over 3 words, the long form is inside the parens and the short form is the
        # word before them; otherwise the short form is inside.
        if end - start > 3:
            # make sure any parentheses inside long form are balanced
            if _unbalanced(brackets[start:end].tolist()):
                continue
            short, long = (start - 2, start - 1), (start, end)
        else:
            # Look up to max_words backwards
            length = sum(ends[i] - starts[i] for i in range(start, end))
            max_words = min(length + 5, length * 2)
            short, long = (start, end), (max(start - max_words - 1, 0), start - 1)
        text = texts(*short)
        if text not in tested:
            tested[text] = _short_form(text)
        if tested[text]:
            candidates.append((long, short))
    return candidates


def _unbalanced(brackets: list[int]) -> bool:
    """scispaCy's ``span_contains_unbalanced_parentheses``."""
    depth = 0
    for bracket in brackets:
        if bracket > 0:
            depth += 1
        elif bracket < 0:
            if depth == 0:
                return True
            depth -= 1
    return depth != 0


def _short_form(text: str) -> bool:
    """The rest of scispaCy's ``short_form_filter`` (``_plausible`` tested the words'
    lengths): at least half the characters letters, the first one a letter."""
    if sum(c.isalpha() for c in text) / len(text) < 0.5:
        return False
    return text[0].isalpha()
