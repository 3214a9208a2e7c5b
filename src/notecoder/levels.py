"""Spinal levels: every way a note writes them, normalised to vertebrae and a region.

coding-rules.md section 1 decides the region character of most spine codes, so
"T12-L1", "T12–L1", "T12/L1", "T-12 to L-1", "the twelfth thoracic vertebra"
and "thoracolumbar junction" must all come out the same. This module has the
pure parts (``parse_level``, ``region_of``, ``root_levels``) and the
``notecoder_levels`` component, which finds level mentions with regular
expressions over ``doc.text`` (so it does not depend on how the tokenizer cut
"T12-L1") and writes them as SPINAL_LEVEL spans into ``doc.spans["notecoder"]``
and region words ("lumbar", "low back") into ``doc.spans["notecoder_region_words"]``.

Rules applied here, from section 1: a disc or range in one region is that
region, one that crosses a junction (C7-T1, T12-L1, L5-S1) is the junction; a
single vertebra is its own region unless the sentence calls it junctional; a
slip named by one vertebra is the segment below it; a nerve root named alone
is the disc where that root is usually compressed.
"""

import re
from dataclasses import dataclass
from typing import Any

import srsly
from spacy.language import Language
from spacy.tokens import Doc, Span

from notecoder.extensions import REGION_WORDS_KEY, SPANS_KEY, doc_text
from notecoder.rulefile import RULES_DIR, RuleFileComponent

_DATA_FILE = "levels.json"

#: Every vertebra in order from the skull down (C0 is the occiput).
VERTEBRAE: tuple[str, ...] = (
    *(f"C{i}" for i in range(8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    *(f"S{i}" for i in range(1, 6)),
)
_INDEX = {v: i for i, v in enumerate(VERTEBRAE)}
_MAX = {"C": 8, "T": 12, "L": 5, "S": 5}  # C8 exists as a nerve root only

#: Region of a single vertebra (coding-rules.md section 1).
_VERTEBRA_REGION = {
    **{v: "occipito-atlanto-axial" for v in ("C0", "C1", "C2")},
    **{f"C{i}": "cervical" for i in range(3, 8)},
    **{f"T{i}": "thoracic" for i in range(1, 13)},
    **{f"L{i}": "lumbar" for i in range(1, 6)},
    **{f"S{i}": "sacral" for i in range(1, 6)},
}
#: Region of the disc (segment) below each vertebra.
_SEGMENT_REGION = {
    "C0": "occipito-atlanto-axial",
    "C1": "occipito-atlanto-axial",
    **{f"C{i}": "cervical" for i in range(2, 7)},
    "C7": "cervicothoracic",
    **{f"T{i}": "thoracic" for i in range(1, 12)},
    "T12": "thoracolumbar",
    **{f"L{i}": "lumbar" for i in range(1, 5)},
    "L5": "lumbosacral",
    **{f"S{i}": "sacral" for i in range(1, 5)},
}


@dataclass(frozen=True)
class Level:
    """A normalised level: its vertebrae (endpoints of a range) and region(s)."""

    levels: tuple[str, ...]
    region: str
    regions: tuple[str, ...]


def _starts(words: list[str]) -> str:
    """A lookahead for the first letters of ``words``: Python's ``re`` tries every
    alternative at every position, and this rejects most positions at once."""
    return "(?=[" + "".join(sorted({re.escape(w[0].lower()) for w in words})) + "])"


def _vertebra(prefix: str, number: str) -> str | None:
    letter = "T" if prefix.upper() in ("T", "TH", "D") else prefix.upper()
    n = int(number)
    if letter not in _MAX or not (1 <= n <= _MAX[letter]):
        return None
    return f"{letter}{n}"


def region_of(levels: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Every region a vertebra or a range of vertebrae touches, in order."""
    if len(levels) == 1:
        return (_VERTEBRA_REGION[levels[0]],)
    lo, hi = sorted((_INDEX[levels[0]], _INDEX[levels[-1]]))
    if lo == hi:
        return (_VERTEBRA_REGION[VERTEBRAE[lo]],)
    return tuple(dict.fromkeys(_SEGMENT_REGION[VERTEBRAE[i]] for i in range(lo, hi)))


def _level(levels: tuple[str, ...], region: str | None = None) -> Level:
    regions = (region,) if region else region_of(levels)
    return Level(levels, regions[0], regions)


def next_below(vertebra: str) -> str | None:
    """The vertebra below (L5 -> S1, T12 -> L1)."""
    i = _INDEX[vertebra] + 1
    return VERTEBRAE[i] if i < len(VERTEBRAE) else None


def root_region(root: str) -> str:
    """Region of the disc where a nerve root alone is usually compressed (section 1)."""
    letter, n = root[0].upper(), int(root[1:])
    if letter == "C":
        return "cervicothoracic" if n == 8 else "cervical"
    if letter == "T":
        return "thoracic"
    if letter == "L":
        return "lumbar"
    return "lumbosacral" if n == 1 else "sacral"


def root_levels(root: str) -> Level:
    """The disc level for a nerve root named alone: L5 -> L4-L5, S1 -> L5-S1, C8 -> C7-T1."""
    letter, n = root[0].upper(), int(root[1:])
    if letter == "C" and n == 8:
        disc: tuple[str, ...] = ("C7", "T1")
    else:
        vertebra = f"{letter}{n}"
        above = VERTEBRAE[_INDEX[vertebra] - 1] if _INDEX[vertebra] > 0 else vertebra
        disc = (above, vertebra)
    region = root_region(root)
    return Level(disc, region, (region,))


class LevelPatterns:
    """The compiled patterns of levels.json."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        connectors = "|".join(
            re.escape(c) if not c.isalpha() else rf"\b{c}\b"
            for c in sorted(data["range_connectors"], key=len, reverse=True)
        )
        # "T12", "l4", "Th12" (any case, joined) or "T-12", "T 12" (capital, separated).
        one = (
            r"(?:(?P<xa>[CcTtLlSs]|Th|th)(?P<xb>\d{1,2})"
            r"|(?P<xc>C|T|Th|L|S)[ -](?P<xd>\d{1,2}))"
        )
        second = r"(?:(?P<e>[CcTtLlSs]|Th|th)?[ -]?(?P<f>\d{1,2})|(?P<g>C|T|L|S)[ -](?P<h>\d{1,2}))"
        self.level = re.compile(
            r"(?<![A-Za-z0-9.\-/])"
            + one
            + rf"(?:\s*(?P<conn>{connectors})\s*"
            + second
            + r")?(?![A-Za-z0-9]|\.\d)"
        )
        ordinals = "|".join(sorted(data["ordinals"], key=len, reverse=True))
        regions = "|".join(data["ordinal_regions"])
        nouns = "|".join(sorted(data["ordinal_nouns"], key=len, reverse=True))
        self.ordinal = re.compile(
            _starts(["the", *data["ordinals"]])
            + rf"\b(?:the\s+)?(?P<ord>{ordinals})\s+(?P<reg>{regions})(?:\s+(?:{nouns}))?\b",
            re.I,
        )
        self.junction = re.compile(
            _starts(["the", *data["junctions"]])
            + r"\b(?:the\s+)?(?P<j>"
            + "|".join(re.escape(j) for j in sorted(data["junctions"], key=len, reverse=True))
            + r")\b",
            re.I,
        )
        words = sorted(data["region_words"], key=len, reverse=True)
        self.region_word = re.compile(
            _starts(words)
            + r"(?<![A-Za-z\-])(?P<w>"
            + "|".join(re.escape(w) for w in words)
            + r")(?![A-Za-z])",
            re.I,
        )
        self.root_after = re.compile(
            r"^\s*(?:(?:nerve\s+)?(?:" + "|".join(map(re.escape, data["root_words"])) + r"))\b",
            re.I,
        )
        self.slip = re.compile(
            r"\b(?:" + "|".join(map(re.escape, data["slip_words"])) + r")\b", re.I
        )
        self.on_range = re.compile(r"^\s+on\s+(?P<v>[CTLS]\d{1,2})\b", re.I)
        self.window = int(data["exclusion_window"])


def parse_level(text: str, patterns: LevelPatterns | None = None) -> Level | None:
    """Normalise one level written any way of section 1 ("T12 through L1", "L4/5", ...)."""
    patterns = patterns or _default_patterns()
    text = text.strip()
    match = patterns.junction.fullmatch(text)
    if match:
        return _level(tuple(patterns.data["junctions"][match.group("j").lower()]))
    match = patterns.ordinal.fullmatch(text)
    if match:
        vertebra = _ordinal_vertebra(match, patterns)
        return _level((vertebra,)) if vertebra else None
    match = patterns.level.fullmatch(text)
    return _from_match(match) if match else None


def _ordinal_vertebra(match: re.Match[str], patterns: LevelPatterns) -> str | None:
    number = patterns.data["ordinals"][match.group("ord").lower()]
    letter = patterns.data["ordinal_regions"][match.group("reg").lower()]
    return _vertebra(letter, str(number))


def _from_match(match: re.Match[str]) -> Level | None:
    prefix = match.group("xa") or match.group("xc")
    first = _vertebra(prefix, match.group("xb") or match.group("xd"))
    if first is None:
        return None
    if match.group("conn") is None:
        return root_levels(first) if first == "C8" else _level((first,))
    second_prefix = match.group("e") or match.group("g") or first[0]
    second = _vertebra(second_prefix, match.group("f") or match.group("h"))
    if second is None or second == first or "C8" in (first, second):
        return None
    if _INDEX[second] < _INDEX[first]:
        return None  # "L5-4" or "C5-3" is not a level range
    return _level((first, second))


_PATTERNS: LevelPatterns | None = None


def _default_patterns() -> LevelPatterns:
    global _PATTERNS
    if _PATTERNS is None:
        _PATTERNS = LevelPatterns(srsly.read_json(RULES_DIR / _DATA_FILE))
    return _PATTERNS


@Language.factory("notecoder_levels", default_config={"spans_key": SPANS_KEY})
def make_level_detector(nlp: Language, name: str, spans_key: str) -> "LevelDetector":
    """Build the level detector; its patterns come at ``initialize`` or ``from_disk``."""
    return LevelDetector(name, spans_key)


class LevelDetector(RuleFileComponent):
    """Finds SPINAL_LEVEL mentions and region words in a Doc."""

    rules_file = _DATA_FILE

    def __init__(self, name: str, spans_key: str, data: dict[str, Any] | None = None) -> None:
        self.name = name
        self.spans_key = spans_key
        self.patterns: LevelPatterns | None = LevelPatterns(data) if data else None

    def rules_data(self) -> dict[str, Any]:
        return self.patterns.data if self.patterns else {}

    def set_rules(self, data: dict[str, Any]) -> None:
        self.patterns = LevelPatterns(data)

    def __call__(self, doc: Doc) -> Doc:
        if self.patterns is None:
            raise ValueError("notecoder_levels has no patterns: call nlp.initialize()")
        text = doc_text(doc)
        found = self.find(text)
        levels: list[Span] = []
        taken: set[tuple[int, int]] = set()
        for start, end, level in found:
            span = doc.char_span(start, end, label="SPINAL_LEVEL", alignment_mode="expand")
            if span is None or (span.start, span.end) in taken:
                continue
            taken.add((span.start, span.end))
            span._.levels = list(level.levels)
            span._.region = level.region
            span._.regions = list(level.regions)
            levels.append(span)
        self._junctional_vertebrae(doc, levels)
        words = self._region_words(doc, text, levels)
        group = list(doc.spans.get(self.spans_key, []))
        doc.spans[self.spans_key] = [*group, *levels]
        doc.spans[REGION_WORDS_KEY] = words
        return doc

    def find(self, text: str) -> list[tuple[int, int, Level]]:
        """(start, end, Level) for every level mention in a text, in order."""
        p = self.patterns
        assert p is not None
        out: list[tuple[int, int, Level]] = []
        for match in p.junction.finditer(text):
            junction = match.group("j")
            out.append(
                (
                    match.start("j"),
                    match.end("j"),
                    _level(tuple(p.data["junctions"][junction.lower()])),
                )
            )
        for match in p.ordinal.finditer(text):
            vertebra = _ordinal_vertebra(match, p)
            if vertebra:
                out.append((match.start(), match.end(), _level((vertebra,))))
        reached = 0  # end of the last level, which "L5 on S1" may extend past its match
        for match in p.level.finditer(text):
            level = _from_match(match)
            start, end = match.start(), match.end()
            if level is None or start < reached:
                continue
            if len(level.levels) == 1:
                if self._excluded(text, start, end, level.levels[0]):
                    continue
                level, end = self._single(text, start, end, level)
            reached = end
            out.append((start, end, level))
        out.sort(key=lambda t: (t[0], -t[1]))
        return out

    def _single(self, text: str, start: int, end: int, level: Level) -> tuple[Level, int]:
        """A single vertebra: a nerve root, a slip (segment below), or itself."""
        p = self.patterns
        assert p is not None
        vertebra = level.levels[0]
        after = text[end : end + 40]
        on = p.on_range.match(after)
        before = text[max(0, start - 60) : start]
        sentence_before = re.split(r"[.;\n]", before)[-1]
        slip_near = p.slip.search(sentence_before) or p.slip.search(re.split(r"[.;\n]", after)[0])
        if on and slip_near:
            second = _vertebra(on.group("v")[0], on.group("v")[1:])
            if second and _INDEX[second] > _INDEX[vertebra]:
                return _level((vertebra, second)), end + on.end()
        if slip_near:
            below = next_below(vertebra)
            if below:
                return _level((vertebra, below)), end
        if p.root_after.match(after):
            return root_levels(vertebra), end
        return level, end

    def _excluded(self, text: str, start: int, end: int, vertebra: str) -> bool:
        """T1-weighted, S1/S2 heart sounds, C3/C4 complement, T3/T4 thyroid..."""
        p = self.patterns
        assert p is not None
        words = p.data["vertebra_exclusions"].get(vertebra)
        if not words:
            return False
        window = text[max(0, start - p.window) : end + p.window].lower()
        return any(w in window for w in words)

    @staticmethod
    def _junctional_vertebrae(doc: Doc, levels: list[Span]) -> None:
        """ "At the thoracolumbar junction, L1": a lone vertebra of a named junction."""
        junctions = [s for s in levels if "junction" in s.text.lower()]
        if not junctions:
            return
        has_sents = doc.has_annotation("SENT_START")
        for span in levels:
            if len(span._.levels) != 1:
                continue
            for junction in junctions:
                same = not has_sents or span.sent.start == junction.sent.start
                if same and span._.levels[0] in junction._.levels:
                    span._.region = junction._.region
                    span._.regions = [junction._.region]

    def _region_words(self, doc: Doc, text: str, levels: list[Span]) -> list[Span]:
        p = self.patterns
        assert p is not None
        lowered = text.lower()
        inside = [(s.start_char, s.end_char) for s in levels]
        words: list[Span] = []
        for match in p.region_word.finditer(text):
            start, end = match.span()
            if any(a <= start and end <= b for a, b in inside):
                continue
            word = match.group("w").lower()
            key = word.split()[0] if word.split()[0] in p.data["region_word_exclusions"] else word
            after = lowered[end : end + 30]
            before = lowered[max(0, start - 20) : start]
            if any(
                after.lstrip(" -").startswith(x)
                for x in p.data["region_word_exclusions"].get(key, [])
            ):
                continue
            if any(
                before.rstrip().endswith(x)
                for x in p.data["region_word_preceding_exclusions"].get(key, [])
            ):
                continue
            span = doc.char_span(start, end, label="REGION", alignment_mode="expand")
            if span is None:
                continue
            span._.region = p.data["region_words"][word]
            span._.regions = [span._.region]
            words.append(span)
        return words
