"""scispaCy's abbreviation detector, run only on notes that can define one.

"degenerative disc disease (DDD)" teaches the note what "DDD" means
(Schwartz & Hearst); without a parenthesis a note defines nothing, yet
scispaCy's detector still runs spaCy's token matcher over every token. Most
notes have no parenthesis, so checking for one first (one C pass over the token
ids) saves that pass.
"""

from scispacy.abbreviation import AbbreviationDetector
from spacy.attrs import ORTH
from spacy.language import Language
from spacy.tokens import Doc


@Language.factory("notecoder_abbreviations")
def make_abbreviations(nlp: Language, name: str) -> "ParenthesisAbbreviationDetector":
    """Build the detector (``doc._.abbreviations``, ``span._.long_form``, as scispaCy's)."""
    return ParenthesisAbbreviationDetector(nlp, name)


class ParenthesisAbbreviationDetector(AbbreviationDetector):
    """``AbbreviationDetector`` that skips notes without a "(" token."""

    def __init__(self, nlp: Language, name: str) -> None:
        super().__init__(nlp, name=name, make_serializable=False)
        self._open = nlp.vocab.strings.add("(")

    def __call__(self, doc: Doc) -> Doc:
        if (doc.to_array(ORTH) == self._open).any():
            return super().__call__(doc)
        return doc
