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

from collections import defaultdict

from spacy.language import Language
from spacy.tokens import Doc, Span

from notecoder.extensions import REGION_WORDS_KEY, SPANS_KEY, sentence_of
from notecoder.spans import Containing

LINKED_LABELS = ("CONDITION", "PAIN", "IMAGING_FINDING", "TREATMENT")


@Language.factory("notecoder_linker", default_config={"spans_key": SPANS_KEY})
def make_linker(nlp: Language, name: str, spans_key: str) -> "Linker":
    """Build the linker (it has no rules: nothing to save)."""
    return Linker(spans_key)


class Linker:
    """Sets ``span._.linked_levels`` and ``span._.regions`` on every mention."""

    def __init__(self, spans_key: str) -> None:
        self.spans_key = spans_key

    def __call__(self, doc: Doc) -> Doc:
        spans = list(doc.spans.get(self.spans_key, []))
        words = list(doc.spans.get(REGION_WORDS_KEY, []))
        anchors = [s for s in spans if s.label_ == "SPINAL_LEVEL"] + words
        mentions = [s for s in spans if s.label_ in LINKED_LABELS]
        by_sentence: dict[int, list[Span]] = defaultdict(list)
        for anchor in anchors:
            by_sentence[sentence_of(anchor).start].append(anchor)
        for label in LINKED_LABELS:
            same_label = sorted((m for m in mentions if m.label_ == label), key=lambda m: m.start)
            groups: dict[int, list[Span]] = defaultdict(list)
            for mention in same_label:
                groups[sentence_of(mention).start].append(mention)
            others = Containing([m for m in mentions if m.label_ != label])
            for sent_start, group in groups.items():
                self._link(group, by_sentence.get(sent_start, []), others)
        return doc

    @staticmethod
    def _link(group: list[Span], anchors: list[Span], others: Containing) -> None:
        linked: dict[int, list[Span]] = {i: [] for i in range(len(group))}
        led: set[int] = set()  # mentions a level leads into ("L3 compression fracture")
        for anchor in sorted(anchors, key=lambda a: a.start):
            inside = [
                i for i, m in enumerate(group) if m.start <= anchor.start and anchor.end <= m.end
            ]
            if inside:
                linked[inside[0]].append(anchor)
                continue
            # A level or region word inside a mention of another label ("low back"
            # of "low back pain") is that mention's, not this one's.
            if others.first(anchor) is not None:
                continue
            right_after = [i for i, m in enumerate(group) if _leads_into(anchor, m)]
            before = [i for i, m in enumerate(group) if m.end <= anchor.start]
            target = right_after[0] if right_after else before[-1] if before else 0
            if right_after:
                led.add(target)
            elif target in led and not _follows(group[target], anchor, linked[target]):
                # A mention with its own level does not take a level further on
                # ("L3 compression fracture adjacent to a fusion from T11 through L2").
                continue
            linked[target].append(anchor)
        for i, mention in enumerate(group):
            anchors_of = linked[i]
            source = [a for a in anchors_of if is_precise(a)] or anchors_of
            mention._.linked_levels = anchors_of
            regions = (r for a in source for r in (a._.regions or [a._.region]) if r)
            mention._.regions = list(dict.fromkeys(regions))


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


def _follows(mention: Span, anchor: Span, linked: list[Span]) -> bool:
    """A level written right after a mention, or after its other levels ("at L4-5 and L5-S1")."""
    between = mention.doc[mention.end : anchor.start]
    return len(between) <= 6 and all(
        t.lower_ in _AFTER or any(a.start <= t.i < a.end for a in linked) for t in between
    )


def _leads_into(anchor: Span, mention: Span) -> bool:
    """A level written right before a mention: "C5-6 disc protrusion", "L5 radiculopathy"."""
    between = anchor.doc[anchor.end : mention.start]
    return (
        mention.start >= anchor.end
        and len(between) <= 2
        and all(t.lower_ in _BETWEEN for t in between)
    )


def is_precise(anchor: Span) -> bool:
    """A level written as vertebrae (T12-L1, L5 root), not a region name.

    Region names ("thoracolumbar junction", "lumbar") yield to precise levels
    when both are linked: coding-rules.md lets the levels decide the code.
    """
    return anchor.label_ == "SPINAL_LEVEL" and "junction" not in anchor.text.lower()
