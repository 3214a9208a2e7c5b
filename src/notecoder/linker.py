"""Tie every mention to the spinal levels and region words it is about.

The coder needs a region for each condition, and the gap flags need the region
of each imaging finding and treatment. A level belongs to a mention of the same
sentence (or list item, which the sentence splitter makes its own sentence):
levels inside the mention first ("thoracolumbar junction syndrome"), then each
remaining level goes to the nearest mention before it, or, before the first
mention, to the first mention after it. So "degenerative disc disease at
T12-L1 and L4-5" links both levels (two regions) and "herniation at L4-5 and
facet arthropathy at L5-S1" links one each. Mentions of different labels are
linked independently: "ESI at L4-5 for radiculopathy" gives both the level.
A level written right before a mention ("C5-6 disc protrusion", "L5
radiculopathy", "L4-5 left paracentral herniation") is that mention's.
"""

from bisect import bisect_left, bisect_right
from collections import defaultdict
from functools import cached_property

from spacy.attrs import LOWER
from spacy.tokens import Doc, Span

from notecoder.extensions import REGION_WORDS_KEY, doc_text, mention
from notecoder.spans import Containing, DocView

LINKED_LABELS = ("CONDITION", "PAIN", "IMAGING_FINDING", "TREATMENT")


class Linker:
    """Sets ``span._.linked_levels`` and ``span._.regions`` on every mention."""

    def __init__(self, spans_key: str) -> None:
        self.spans_key = spans_key

    def __call__(self, doc: Doc) -> Doc:
        spans = list(doc.spans.get(self.spans_key, []))
        labels = [s.label_ for s in spans]
        mentions = [
            (s, label) for s, label in zip(spans, labels, strict=True) if label in LINKED_LABELS
        ]
        if not mentions:
            return doc
        words = list(doc.spans.get(REGION_WORDS_KEY, []))
        anchors = [s for s, label in zip(spans, labels, strict=True) if label == "SPINAL_LEVEL"]
        first = DocView(doc).first
        by_sentence: dict[int, list[Span]] = defaultdict(list)
        for anchor in [*anchors, *words]:
            by_sentence[first[anchor.start]].append(anchor)
        words_between = _Words(doc)
        for label in LINKED_LABELS:
            same_label = sorted((m for m, lb in mentions if lb == label), key=lambda m: m.start)
            groups: dict[int, list[Span]] = defaultdict(list)
            for m in same_label:
                groups[first[m.start]].append(m)
            others = Containing([m for m, lb in mentions if lb != label])
            for sent_start, group in groups.items():
                self._link(group, by_sentence.get(sent_start, []), others, words_between)
        return doc

    @staticmethod
    def _link(group: list[Span], anchors: list[Span], others: Containing, words: "_Words") -> None:
        """Link a sentence's levels to its mentions of one label (sorted by start).

        The mentions a level can belong to are found by bisecting their starts,
        not by trying every mention of the sentence: a sentence of a crafted
        note holds a hundred mentions and a hundred levels.
        """
        containing = Containing(group)
        starts = [m.start for m in group]  # (ascending)
        ends = [m.end for m in group]
        linked: dict[int, list[Span]] = {i: [] for i in range(len(group))}
        led: set[int] = set()  # mentions a level leads into ("L3 compression fracture")
        for anchor in sorted(anchors, key=lambda a: a.start):
            start, end = anchor.start, anchor.end
            inside = containing.first_index(start, end)
            if inside is not None:
                linked[inside].append(anchor)
                continue
            # A level or region word inside a mention of another label ("low back"
            # of "low back pain") is that mention's, not this one's.
            if others.first(anchor) is not None:
                continue
            right_after = _led_into(starts, end, words)
            before = _last_ending_by(starts, ends, start)
            target = right_after if right_after is not None else before if before is not None else 0
            if right_after is not None:
                led.add(target)
            elif target in led and not _follows(ends[target], anchor, linked[target], words):
                # A mention with its own level does not take a level further on
                # ("L3 compression fracture adjacent to a fusion from T11 through L2").
                continue
            linked[target].append(anchor)
        for i, span in enumerate(group):
            anchors_of = linked[i]
            source = [a for a in anchors_of if is_precise(a)] or anchors_of
            record = mention(span)
            record.linked_levels = anchors_of
            regions = (r for a in source for r in anchor_regions(a) if r)
            record.regions = list(dict.fromkeys(regions))


def anchor_regions(anchor: Span) -> list[str | None]:
    """The regions a level or region word stands for: its own list, else its region."""
    record = mention(anchor)
    return record.regions or [record.region]


def _led_into(starts: list[int], token: int, words: "_Words") -> int | None:
    """The first mention a level ending at ``token`` is written right before: "C5-6
    disc protrusion", "L5 radiculopathy" (at most two words of ``_BETWEEN`` apart)."""
    for i in range(bisect_left(starts, token), bisect_right(starts, token + 2)):
        if words.all_in(token, starts[i], _BETWEEN):
            return i
    return None


def _last_ending_by(starts: list[int], ends: list[int], token: int) -> int | None:
    """The last mention (in the group's order) that ends by ``token``.

    Mentions are in order of their starts, and short: walking back from those
    starting by ``token``, one soon ends by it.
    """
    for i in range(bisect_right(starts, token) - 1, -1, -1):
        if ends[i] <= token:
            return i
    return None


class _Words:
    """The lower-case words of a Doc's tokens (``token.lower_``), without a ``Token`` each
    (read on first use)."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.strings = doc.vocab.strings

    @cached_property
    def lower(self) -> list[int]:
        return self.doc.to_array(LOWER).tolist()

    def __getitem__(self, i: int) -> str:
        return self.strings[self.lower[i]]

    def all_in(self, start: int, end: int, words: set[str]) -> bool:
        """Are all tokens [start, end) in ``words``?"""
        return all(self[t] in words for t in range(start, end))


#: Words that may stand between a level and the mention it leads into ("L5 right radiculopathy").
_BETWEEN = {
    "left",
    "right",
    "bilateral",
    "mild",
    "moderate",
    "severe",
    "small",
    "large",
    "focal",
    "central",
    "paracentral",
    "foraminal",
    "broad-based",
    "chronic",
    "acute",
    "-",
}


#: Words that may join a mention to the level after it ("fracture of L1", "at L4-5 and L5-S1").
_AFTER = {"at", "of", "the", "and", ",", "-", "to", "through", "from", "level", "levels"}


def _follows(mention_end: int, anchor: Span, linked: list[Span], words: _Words) -> bool:
    """A level written right after a mention, or after its other levels ("at L4-5 and L5-S1")."""
    if anchor.start - mention_end > 6:
        return False
    return all(
        words[t] in _AFTER or any(a.start <= t < a.end for a in linked)
        for t in range(mention_end, anchor.start)
    )


def is_precise(anchor: Span) -> bool:
    """A level written as vertebrae (T12-L1, L5 root), not a region name.

    Region names ("thoracolumbar junction", "lumbar") yield to precise levels
    when both are linked: docs/coding-rules.md lets the levels decide the code.
    (The text is sliced from the note's: ``anchor.text`` builds a Token per token.)
    """
    if anchor.label_ != "SPINAL_LEVEL":
        return False
    return "junction" not in doc_text(anchor.doc)[anchor.start_char : anchor.end_char].lower()
