"""Lookups over a note's mentions and tokens that stay fast in a long note.

The components ask the same few questions of every mention: which other mention
contains it, which sentence it is in, what text lies around it. Asked through
spaCy objects (``span.sent``, ``doc[a:b].text``) each answer builds Python
``Span`` and ``Token`` objects, and in a note dense with mentions that costs
more than the rules themselves. These helpers answer from arrays read once per
component call.
"""

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import cached_property

import numpy
from spacy.attrs import IDX, LENGTH
from spacy.tokens import Doc, Span

from notecoder.extensions import doc_text, sentence_table


class Containing:
    """Which of some spans contain a given one: the first of them, in their order.

    Asked for every level or abbreviation of a note, a scan of every mention
    would cost time quadratic in the note's length; mentions are short, so
    only those starting a little before the span can contain it.
    """

    def __init__(self, spans: list[Span], bounds: list[tuple[int, int]] | None = None) -> None:
        """``bounds``: what to compare instead of the spans' token bounds (their
        character offsets, say), one (start, end) per span."""
        self.spans = spans
        if bounds is None:
            bounds = [(s.start, s.end) for s in spans]
        self.order = sorted(range(len(spans)), key=lambda i: bounds[i][0])
        self.starts = [bounds[i][0] for i in self.order]
        self.ends = [bounds[i][1] for i in self.order]
        self.longest = max((end - start for start, end in bounds), default=0)

    def first_index(self, start: int, end: int) -> int | None:
        """The position (in ``spans``) of the first span containing [start, end)."""
        low = bisect_left(self.starts, start - self.longest)
        high = bisect_right(self.starts, start)
        ends = self.ends
        found = [self.order[k] for k in range(low, high) if end <= ends[k]]
        return min(found) if found else None

    def first(self, span: Span) -> Span | None:
        i = self.first_index(span.start, span.end)
        return self.spans[i] if i is not None else None


def plain_sentences(doc: Doc) -> bool:
    """Are the sentences spaCy gives (``Token.sent``, ``Span.sent``) those of
    :func:`notecoder.extensions.sentence_table`? They are unless no splitter ran or a hook of the
    Doc overrides them."""
    return (
        doc.has_annotation("SENT_START")
        and "sent" not in doc.user_token_hooks
        and "sent" not in doc.user_span_hooks
        and "sents" not in doc.user_hooks
    )


class TokenText:
    """The text of any run of tokens, sliced from the note's text.

    ``doc[a:b].text`` builds a ``Span`` and a ``Token`` per token it joins; the
    same string is the note's text between the first token's start and the
    last token's end. The token offsets are read on first use.
    """

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.text = doc_text(doc)
        self.n = len(doc)

    @cached_property
    def arrays(self) -> tuple[numpy.ndarray, numpy.ndarray]:
        """The first character and the end of each token's text, as arrays."""
        # (A view, not a copy: offsets and lengths are far below 2**63.)
        offsets = self.doc.to_array([IDX, LENGTH]).reshape(-1, 2).view("int64")
        starts = offsets[:, 0].copy()
        return starts, starts + offsets[:, 1]

    # Memoryviews, not lists: an int is made as it is read, where a list holds one
    # object per token (for a 1 MB note, memory the kernel hands over page by page).
    @cached_property
    def starts(self) -> Sequence[int]:
        """The first character of each token."""
        return memoryview(self.arrays[0])

    @cached_property
    def ends(self) -> Sequence[int]:
        """The end of each token's text (before its trailing space)."""
        return memoryview(self.arrays[1])

    def each(self) -> list[str]:
        """The text of every token."""
        text = self.text
        return [text[i:j] for i, j in zip(self.starts, self.ends, strict=True)]

    def tokens_of(self, stretches: list[tuple[int, int]]) -> list[tuple[int, int] | None]:
        """The tokens of ``doc.char_span(start, end, alignment_mode="expand")`` for
        each (start, end) of characters: None where ``char_span`` gives None (an
        end outside the text).

        spaCy's bisects too, but builds a ``Token`` to compare with and a
        ``Span`` per call; here all are bisected at once. Tokens tile the text,
        each with its trailing space, as spaCy counts them.
        """
        if not stretches:
            return []
        if not self.n:
            return [None] * len(stretches)
        size = len(self.text)
        chars = numpy.array(stretches, dtype="int64").reshape(-1, 2)
        first, last = chars[:, 0], chars[:, 1] - 1
        valid = (first >= 0) & (first < size) & (last >= 0) & (last < size)
        starts, ends = self.arrays
        start = numpy.searchsorted(starts, first, side="right") - 1
        end = numpy.searchsorted(starts, last, side="right")
        # A start in the space after a token is not that token.
        start += (start >= 0) & (first == ends[numpy.clip(start, 0, None)])
        return [
            (s, e) if ok else None
            for s, e, ok in zip(start.tolist(), end.tolist(), valid.tolist(), strict=True)
        ]

    def __call__(self, start: int, end: int) -> str:
        """``doc[start:end].text`` for 0 <= start (an empty string when end <= start)."""
        end = min(end, self.n)
        if end <= start:
            return ""
        return self.text[self.starts[start] : self.ends[end - 1]]


class DocView:
    """Sentence bounds and token text of one Doc, each read on first use.

    One per component call: a note with no mention of the kind a component
    handles pays nothing for them.
    """

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self._sentence_texts: dict[int, str] = {}

    @cached_property
    def _bounds(self) -> tuple[Sequence[int], Sequence[int]]:
        return sentence_table(self.doc)

    @property
    def first(self) -> Sequence[int]:
        """The first token of each token's sentence."""
        return self._bounds[0]

    @property
    def end(self) -> Sequence[int]:
        """The end of each token's sentence."""
        return self._bounds[1]

    @cached_property
    def text(self) -> TokenText:
        """The text of a run of tokens: ``view.text(start, end)``."""
        return TokenText(self.doc)

    def sentence_text(self, token: int) -> str:
        """The text of the sentence of a token (``sentence_of(...).text``), made once."""
        start = self.first[token]
        text = self._sentence_texts.get(start)
        if text is None:
            text = self._sentence_texts[start] = self.text(start, self.end[token])
        return text
