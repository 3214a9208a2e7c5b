"""spaCy's English tokenizer, plus the commas that stood for line breaks.

The MTSamples transcriptions (and other scraped or exported notes) have commas
where line breaks were: "at L4-5.,IMPRESSION:,  Stenosis". spaCy keeps
"5.,IMPRESSION" as one token, which hides both the level and the heading; here
a comma glued to a following letter, and a period glued to such a comma, are
split off. So is a comma between a letter and a digit: "DIAGNOSES,1. Stenosis"
is a heading without its colon, a line break and a numbered list, and the
sectionizer can only see the heading as a token of its own. A comma between two
digits stays: "1,000" is a number and "C5,6" a pair of levels.
"""

import spacy
from spacy.language import Language
from spacy.tokenizer import Tokenizer
from spacy.util import compile_infix_regex, compile_prefix_regex

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
        tokenizer = spacy.registry.tokenizers.get("spacy.Tokenizer.v1")()(nlp)
        defaults = nlp.Defaults
        tokenizer.infix_finditer = compile_infix_regex(
            [*defaults.infixes, *_EXTRA_INFIXES]
        ).finditer
        tokenizer.prefix_search = compile_prefix_regex(
            [*defaults.prefixes, *_EXTRA_PREFIXES]
        ).search
        return tokenizer

    return make
