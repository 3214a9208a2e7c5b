"""Lookups over a note's mentions that stay fast in a long note."""

from bisect import bisect_left, bisect_right

from spacy.tokens import Span


class Containing:
    """Which of some spans contain a given one: the first of them, in their order.

    Asked for every level or abbreviation of a note, a scan of every mention
    would cost time quadratic in the note's length; mentions are short, so
    only those starting a little before the span can contain it.
    """

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans
        self.order = sorted(range(len(spans)), key=lambda i: spans[i].start)
        self.starts = [spans[i].start for i in self.order]
        self.longest = max((s.end - s.start for s in spans), default=0)

    def first(self, span: Span) -> Span | None:
        low = bisect_left(self.starts, span.start - self.longest)
        high = bisect_right(self.starts, span.start)
        found = [i for i in self.order[low:high] if span.end <= self.spans[i].end]
        return self.spans[min(found)] if found else None
