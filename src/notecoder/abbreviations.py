"""scispaCy's abbreviation detector, in linear time, run only on notes that can define one.

"degenerative disc disease (DDD)" teaches the note what "DDD" means
(Schwartz & Hearst); without a parenthesis a note defines nothing, so the
detector runs only on notes with a "(" token.

scispaCy finds its candidates with the token pattern ``( + )``, for which spaCy's
``Matcher`` returns every "(" paired with every later ")": quadratic in their
number ("(a) " repeated 5,000 times took a minute), though it then drops every
candidate of more than 8 tokens. Here the candidates are found directly, each
"(" with the ")" tokens at most 9 tokens on, which is the same set; and the
defined short forms are found again in the note with a ``PhraseMatcher`` (one
pass, whatever their number) instead of one ``Matcher`` pattern each.
"""

from collections import defaultdict

from scispacy.abbreviation import AbbreviationDetector, filter_matches, find_abbreviation
from spacy.attrs import ORTH
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

#: scispaCy ignores a parenthesis holding more than this many tokens.
_MAX_INSIDE = 8


@Language.factory("notecoder_abbreviations")
def make_abbreviations(nlp: Language, name: str) -> "ParenthesisAbbreviationDetector":
    """Build the detector (``doc._.abbreviations``, ``span._.long_form``, as scispaCy's)."""
    return ParenthesisAbbreviationDetector(nlp, name)


class ParenthesisAbbreviationDetector(AbbreviationDetector):
    """``AbbreviationDetector`` with the same results in linear time (see the module)."""

    def __init__(self, nlp: Language, name: str) -> None:
        super().__init__(nlp, name=name, make_serializable=False)
        self._open = nlp.vocab.strings.add("(")
        self._close = nlp.vocab.strings.add(")")

    def __call__(self, doc: Doc) -> Doc:
        orth = doc.to_array(ORTH)
        opens = (orth == self._open).nonzero()[0]
        if not len(opens):
            return doc
        closes = set((orth == self._close).nonzero()[0].tolist())
        inside = [  # what scispaCy's matcher finds, less its brackets and its long candidates
            (0, start + 1, end)
            for start in opens.tolist()
            for end in range(start + 2, min(start + 2 + _MAX_INSIDE, len(doc)))
            if end in closes
        ]
        for long_form, short_forms in self._definitions(filter_matches(inside, doc), doc):
            for short in short_forms:
                short._.long_form = long_form
                doc._.abbreviations.append(short)
        return doc

    def _definitions(
        self, candidates: list[tuple[Span, Span]], doc: Doc
    ) -> list[tuple[Span, set[Span]]]:
        """scispaCy's ``find_matches_for``: each short form defined once, then every place
        it occurs, found by one ``PhraseMatcher`` pass."""
        found: dict[Span, set[Span]] = defaultdict(set)
        long_forms: dict[str, Span] = {}
        seen_long: set[str] = set()
        seen_short: set[str] = set()
        matcher = PhraseMatcher(doc.vocab, attr="ORTH")
        for long_candidate, short_candidate in candidates:
            short, long = find_abbreviation(long_candidate, short_candidate)
            if long is None or long.text in seen_long or short.text in seen_short:
                continue
            seen_long.add(long.text)
            seen_short.add(short.text)
            found[long].add(short)
            long_forms[long.text] = long
            matcher.add(long.text, [short.as_doc()])
        for key, start, end in matcher(doc):
            found[long_forms[doc.vocab.strings[key]]].add(doc[start:end])
        return list(found.items())
