"""Spinal levels: every way a note writes them, normalised to vertebrae and a region.

docs/coding-rules.md section 1 decides the region character of most spine codes, so
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

Version 3 of the rules (section 1, "(v3)") adds three readings, each decided here:

- Run-together levels. Transcriptions glue the two vertebrae of a disc ("L45",
  "L34", "C56", "L5S1", "C7T1", "T1112"). Only clear two-vertebra forms count:
  adjacent vertebrae, written with a capital letter, where the digits are not a
  vertebra already ("T12" is T12, never T1-T2). Such a form is a level only when
  its sentence also has another level or a spine word (``spine_context_words``,
  the region words): "facet injections at L34, L45, L5S1", "C56 disc
  herniation". A lone "C56" is an ICD-10 or lab code far more often than a disc.
  It then normalises exactly like "L4-L5".
- Letters and numbers that are not levels. "T1"/"T2" next to an MRI word are
  sequences: followed by one ("T2 signal", "T1 and T2-weighted", "T2/STIR
  hyperintensity") or introduced by one ("sagittal T2", "hyperintense on T2").
  Failing both, an MRI word elsewhere in the sentence (``sequence_window_words``)
  still makes a lone T1/T2 a sequence, unless a level cue ("at", "of", "below")
  introduces it: "increased signal in the cord at T2" keeps T2.
  ``vertebra_exclusions`` (heart sounds, complement, thyroid, "T2 DM") now match
  at word starts and also drop a pair whose both ends have them ("S1/S2
  normal"). A vertebra right after a product name ("Crossfire T6", "model S3")
  in a sentence with nothing spinal is a device, not a level. "PT"/"PTT" never
  match: a level starts at a word start. "first dorsal interosseous" (a hand
  muscle) is not T1 (``ordinal_not_followed_by``).
- Nerve roots written with a slash. "C6/C7 radiculopathy" and "right C8/T1
  radiculopathy" name two roots, not the range between two vertebrae: a slash
  between two single adjacent roots, each written with its letter, followed by a
  root word (radiculopathy, root, distribution, dermatome, denervation ...);
  any pair with C8, which is a root and never a vertebra, is always read so.
  Such a pair is one span whose levels run from the upper root's disc to the
  lower root's by ``root_levels`` (C6/C7: C5..C7; C8/T1: C7-T1, where
  ``root_levels`` puts the T1 root too). Its region is the junction when the two
  roots lie on either side of one (C8/T1 cervicothoracic, T12/L1 thoracolumbar,
  L5/S1 lumbosacral: "C8-T1 roots span the cervicothoracic junction", as the
  independent coder read it, one M54.13 and not M54.13 plus M54.14), otherwise
  each root's own region (C6/C7 cervical). "C5/6" and "L4/5", with the second
  letter left out, stay discs, and so does "C6-C7 radiculopathy" (a hyphen
  names a disc). An adjacent root in brackets is such a pair too ("S1 (L5)
  radiculopathy": lumbosacral, the coder's M54.17). Roots listed before the root
  word ("L5 and S1 radiculopathy") are each a root.
"""

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spacy.tokens import Doc, Span

from notecoder.extensions import REGION_WORDS_KEY, Mention, doc_text, mention
from notecoder.rulefile import RULES_DIR, RuleFileComponent, read_rule_file
from notecoder.spans import Containing, DocView, TokenText, plain_sentences

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

#: Region of a single vertebra (docs/coding-rules.md section 1).
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


#: Nerve roots in order: C8 leaves between C7 and T1 and has no vertebra of its own.
ROOTS: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 9)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
    *(f"S{i}" for i in range(1, 6)),
)
_ROOT_INDEX = {r: i for i, r in enumerate(ROOTS)}
#: The junction two adjacent roots of different letters lie on either side of.
_JUNCTION_BELOW = {"C": "cervicothoracic", "T": "thoracolumbar", "L": "lumbosacral"}


def root_pair(upper: str, lower: str) -> Level | None:
    """Two adjacent roots named together ("C6/C7", "C8/T1 radiculopathy").

    The levels run from the upper root's disc to the lower root's (C6/C7: C5..C7).
    Roots on either side of a junction are that junction's region alone (C8/T1
    cervicothoracic, L5/S1 lumbosacral), as a coder reads "C8/T1 radiculopathy":
    one lesion at the cervicothoracic junction, not a cervicothoracic and a
    thoracic one. Otherwise each root keeps its own region (C6/C7 cervical).
    None when the two are not adjacent roots.
    """
    if upper not in _ROOT_INDEX or _ROOT_INDEX.get(lower) != _ROOT_INDEX[upper] + 1:
        return None
    levels = (root_levels(upper).levels[0], root_levels(lower).levels[-1])
    if upper[0] != lower[0]:
        regions: tuple[str, ...] = (_JUNCTION_BELOW[upper[0]],)
    else:
        regions = tuple(dict.fromkeys((root_region(upper), root_region(lower))))
    return Level(levels, regions[0], regions)


#: Where a sentence ends, for the context a level is judged in: a full stop that
#: is not a decimal point ("1.2 ng/dL", but "at L45."), a semicolon, or a line break.
_SENTENCE_END = re.compile(r"[;!?\n]|(?<!\d)\.|\.(?!\d)")

_NEVER = "(?!)"
#: The v3 keys of levels.json, as a rule file written before them reads: nothing
#: is a sequence, a product or a run-together level (a saved pipeline still loads).
_V3_DEFAULTS: dict[str, Any] = {
    "ordinal_not_followed_by": [],
    "sequence_vertebrae": [],
    "sequence_names": [_NEVER],
    "sequence_after": [_NEVER],
    "sequence_signal_words": [_NEVER],
    "sequence_window_words": [],
    "level_cues_before": [_NEVER],
    "sequence_before": [_NEVER],
    "spine_context_words": [],
    "run_together_exclusions": [],
    "run_together_window": 0,
    "model_name_before": _NEVER,
}


def _words_at_start(words: list[str], flags: int = re.I) -> re.Pattern[str]:
    """Any of ``words`` (literal text) at the start of a word: "hyperintens" finds
    "hyperintense", "dm" does not find "admitted"."""
    if not words:
        return re.compile(_NEVER)
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<![a-z])(?:{alternatives})", flags)


class LevelPatterns:
    """The compiled patterns of levels.json."""

    def __init__(self, data: dict[str, Any]) -> None:
        data = {**_V3_DEFAULTS, **data}
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
        not_after = "|".join(map(re.escape, data["ordinal_not_followed_by"])) or _NEVER
        self.ordinal = re.compile(
            _starts(["the", *data["ordinals"]])
            + rf"\b(?:the\s+)?(?P<ord>{ordinals})\s+(?P<reg>{regions})(?:\s+(?:{nouns}))?\b"
            # "first dorsal interosseous" is a hand muscle, not T1.
            + rf"(?!\s+(?:{not_after}))",
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
        # The root word may follow a list of roots: "L5 and S1 radiculopathy",
        # "S1 (L5) radiculopathy", "C6/C7 and C7/C8 radiculopathies".
        self.root_after = re.compile(
            r"^(?:\s*(?:,|&|/|\band\b|\bor\b)?\s*\(?\s*[CTLS]\d{1,2}\s*\)?)*\s*\)?\s*"
            r"(?:(?:nerve\s+)?(?:" + "|".join(map(re.escape, data["root_words"])) + r"))\b",
            re.I,
        )
        self.slip = re.compile(
            r"\b(?:" + "|".join(map(re.escape, data["slip_words"])) + r")\b", re.I
        )
        self.on_range = re.compile(r"^\s+on\s+(?P<v>[CTLS]\d{1,2})\b", re.I)
        self.paren_root = re.compile(r"\s*\(\s*(?P<v>[CTLS]\d{1,2})\s*\)")
        self.window = int(data["exclusion_window"])
        self.exclusions = {
            vertebra: _words_at_start(words)
            for vertebra, words in data["vertebra_exclusions"].items()
            if words
        }
        self._sequences(data)
        self._exclusions_known: dict[tuple[str, ...], tuple[bool, list[re.Pattern[str]]]] = {}
        # Two vertebrae run together ("L45", "T1112", "L5S1"): capitals only, and
        # read by _run_together, which keeps adjacent pairs alone. The letter comes
        # first (the look-behind after it) so that re scans for it quickly.
        self.run_together = re.compile(
            r"(?P<ra>[CTL])(?<![A-Za-z0-9.\-/].)"
            r"(?:(?P<rb>\d{2,4})|(?P<rd>\d{1,2})(?P<re>[TLS])(?P<rf>\d))"
            r"(?![A-Za-z0-9]|\.\d)"
        )
        self.run_together_window = int(data["run_together_window"])
        self.run_together_exclusion = _WordsAtStart(data["run_together_exclusions"])
        self.spine_context = _WordsAtStart([*data["spine_context_words"], *data["region_words"]])
        self.model_before = re.compile(data["model_name_before"])

    def exclusions_of(self, vertebrae: tuple[str, ...]) -> tuple[bool, list[re.Pattern[str]]]:
        """Could these vertebrae be an MRI sequence, and the exclusion words of each
        (none unless every one has some). The same for every mention of them:
        worked out once per pair or vertebra, not per mention."""
        known = self._exclusions_known.get(vertebrae)
        if known is None:
            words = [self.exclusions.get(v) for v in vertebrae]
            known = self._exclusions_known[vertebrae] = (
                all(v in self.sequence_vertebrae for v in vertebrae),
                [w for w in words if w] if all(words) else [],
            )
        return known

    def _sequences(self, data: dict[str, Any]) -> None:
        """MRI sequences: "T2 signal", "T1 and T2-weighted", "hyperintense on T2"."""
        names = "|".join(data["sequence_names"])
        joined = r"(?:,|/|&|\band\b|\bor\b)"
        # "T1 and T2", "T1, T2 and STIR", "decreased T1 and increased T2": a chain of
        # names, each of which may carry up to two words of its own.
        chain = rf"\s*{joined}\s*(?:[a-z-]+\s+){{0,2}}?(?:{names})(?![A-Za-z0-9])"
        after = "|".join(data["sequence_after"])
        self.sequence_after = re.compile(rf"\*?(?:{chain})*[\s-]*(?:{after})(?![A-Za-z])", re.I)
        before = "|".join(data["sequence_before"])
        signal = "|".join(data["sequence_signal_words"])
        back_chain = rf"(?:(?:{names})\s*{joined}\s*(?:[a-z-]+\s+){{0,2}}?)*"
        self.sequence_before = re.compile(
            rf"(?:\b(?:{before})|\b(?:{signal})\b[^.;\n]{{0,30}}?\bon)\s+(?:the\s+)?{back_chain}$",
            re.I,
        )
        self.sequence_vertebrae = frozenset(data["sequence_vertebrae"])
        self.sequence_window = _words_at_start(data["sequence_window_words"])
        cues = "|".join(map(re.escape, data["level_cues_before"]))
        self.level_cue_before = re.compile(rf"\b(?:{cues})\s+$", re.I)


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
    level = _from_match(match) if match else None
    if level:
        return level
    # A run-together level given alone is taken as a level: whoever passes it here
    # says it is one (running text needs context, see LevelDetector._run_together_levels).
    match = patterns.run_together.fullmatch(text)
    return _run_together(match) if match else None


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
    if second is None or second == first:
        return None
    if "C8" in (first, second):  # C8 is a root, never a vertebra: "C8/T1", "C7-8"
        return root_pair(first, second)
    if _INDEX[second] < _INDEX[first]:
        return None  # "L5-4" or "C5-3" is not a level range
    return _level((first, second))


def _slash_roots(match: re.Match[str]) -> tuple[str, str] | None:
    """ "C6/C7", "L5/S1": two single vertebrae, each with its letter, joined by a
    slash, that could be two adjacent roots. "C5/6" (one letter) is a disc."""
    if match.group("conn") != "/" or not (match.group("e") or match.group("g")):
        return None
    first = _vertebra(
        match.group("xa") or match.group("xc"), match.group("xb") or match.group("xd")
    )
    second = _vertebra(match.group("e") or match.group("g"), match.group("f") or match.group("h"))
    if first is None or second is None:
        return None
    return (first, second) if root_pair(first, second) else None


def _run_together(match: re.Match[str]) -> Level | None:
    """ "L45" -> L4-L5, "T1112" -> T11-T12, "L5S1" -> L5-S1; None unless the two
    are adjacent vertebrae and the digits are not one vertebra ("T12")."""
    if match.group("re"):
        first = _vertebra(match.group("ra"), match.group("rd"))
        second = _vertebra(match.group("re"), match.group("rf"))
        if first and second and first[0] != second[0] and next_below(first) == second:
            return _level((first, second))
        return None
    letter, digits = match.group("ra"), match.group("rb")
    if _vertebra(letter, digits) is not None:
        return None
    for cut in range(1, len(digits)):
        upper, lower = digits[:cut], digits[cut:]
        if lower.startswith("0"):
            continue
        first, second = _vertebra(letter, upper), _vertebra(letter, lower)
        if first and second and next_below(first) == second:
            return _level((first, second))
    return None


_PATTERNS: LevelPatterns | None = None


def _default_patterns() -> LevelPatterns:
    global _PATTERNS
    if _PATTERNS is None:
        _PATTERNS = read_rule_file(RULES_DIR / _DATA_FILE, LevelPatterns)
    return _PATTERNS


def _sentence(text: str, start: int, end: int, width: int) -> tuple[int, int]:
    """The part of the sentence around ``text[start:end]`` within ``width``
    characters either side."""
    lo, hi = max(0, start - width), min(len(text), end + width)
    last = None
    for last in _SENTENCE_END.finditer(text, lo, start):  # noqa: B007
        pass
    if last is not None:
        lo = last.end()
    stop = _SENTENCE_END.search(text, end, hi)
    return lo, stop.start() if stop else hi


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
        tokens = TokenText(doc)
        label = doc.vocab.strings.add("SPINAL_LEVEL")
        levels: list[Span] = []
        taken: set[tuple[int, int]] = set()
        bounds_of = tokens.tokens_of([(start, end) for start, end, _ in found])
        for (_, _, level), bounds in zip(found, bounds_of, strict=True):
            if bounds is None or bounds in taken:  # (doc.char_span's, "expand")
                continue
            taken.add(bounds)
            span = Span(doc, *bounds, label=label)
            record = mention(span)
            record.levels = list(level.levels)
            record.region = level.region
            record.regions = list(level.regions)
            levels.append(span)
        lowered = text.lower()
        if "junction" in lowered:  # (else no level's text has it: skip the look at each)
            self._junctional_vertebrae(doc, text, levels)
        words = self._region_words(doc, tokens, lowered, levels)
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
        products: list[tuple[int, int, Level]] = []  # "Crossfire T6": kept in spinal context
        # What a match reads as depends on its groups alone: a note listing thousands
        # of levels writes the same few dozen, each read once here.
        read: dict[tuple[str | None, ...], Level | None] = {}
        roots_of: dict[tuple[str | None, ...], tuple[str, str] | None] = {}
        for match in p.level.finditer(text):
            groups = match.groups()
            if groups not in read:
                read[groups] = _from_match(match)
            level = read[groups]
            start, end = match.start(), match.end()
            if level is None or start < reached:
                continue
            if self._excluded(text, start, end, level.levels):
                continue
            if groups not in roots_of:
                roots_of[groups] = _slash_roots(match)
            roots = roots_of[groups]
            if roots and p.root_after.match(text[end : end + 40]):
                level = root_pair(*roots) or level
            elif len(level.levels) == 1:
                level, end = self._single(text, start, end, level)
                if len(level.levels) == 1 and p.model_before.search(
                    text[max(0, start - 40) : start]
                ):
                    reached = end
                    products.append((start, end, level))
                    continue
            reached = end
            out.append((start, end, level))
        out.extend(self._in_context(text, out, products))
        out.extend(self._run_together_levels(text, out))
        out.sort(key=lambda t: (t[0], -t[1]))
        return out

    def _run_together_levels(
        self, text: str, found: list[tuple[int, int, Level]]
    ) -> list[tuple[int, int, Level]]:
        """ "L45", "L5S1": levels only beside another level or a spine word (v3)."""
        p = self.patterns
        assert p is not None
        read: dict[tuple[str | None, ...], Level | None] = {}  # (as in find)
        candidates = []
        for match in p.run_together.finditer(text):
            groups = match.groups()
            if groups not in read:
                read[groups] = _run_together(match)
            level = read[groups]
            if level is not None:
                candidates.append((match.start(), match.end(), level))
        return self._in_context(text, found, candidates, exclude=p.run_together_exclusion)

    def _in_context(
        self,
        text: str,
        found: list[tuple[int, int, Level]],
        candidates: list[tuple[int, int, Level]],
        exclude: "_WordsAtStart | None" = None,
    ) -> list[tuple[int, int, Level]]:
        """The candidates whose sentence has another level (found, or another
        candidate) or a spine word, and none of ``exclude`` ("ICD code C56").

        Each candidate looks at up to ``run_together_window`` characters either
        side; when the candidates' windows cover more than the text, the words
        are found in one pass over it instead of once per window.
        """
        p = self.patterns
        assert p is not None
        if not candidates:
            return []
        levels = _Stretches([(a, b) for a, b, _ in found])
        others = _Stretches([(a, b) for a, b, _ in candidates])
        once = len(candidates) * 2 * p.run_together_window > len(text)
        excluded = exclude.in_text(text, once) if exclude is not None else None
        spinal = p.spine_context.in_text(text, once)
        kept = []
        for start, end, level in candidates:
            lo, hi = _sentence(text, start, end, p.run_together_window)
            if excluded is not None and excluded(lo, hi):
                continue
            beside = levels.any_within(lo, hi) or others.any_within(lo, hi, not_starting=start)
            if beside or spinal(lo, hi):
                kept.append((start, end, level))
        return kept

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
        # "S1 (L5) radiculopathy": an adjacent root in brackets makes a pair, read
        # like "L5/S1 radiculopathy" (root_pair).
        paren = p.paren_root.match(after)
        if paren and p.root_after.match(after[paren.end() :]):
            other = _vertebra(paren.group("v")[0], paren.group("v")[1:])
            pair = other and (root_pair(vertebra, other) or root_pair(other, vertebra))
            if pair:
                return pair, end + paren.end()
        if p.root_after.match(after):
            return root_levels(vertebra), end
        return level, end

    def _excluded(self, text: str, start: int, end: int, vertebrae: tuple[str, ...]) -> bool:
        """T1-weighted, S1/S2 heart sounds, C3/C4 complement, T3/T4 thyroid...

        A single vertebra, or a pair both of whose ends have exclusions ("S1/S2
        normal", "T1/T2-weighted"); "L5/S1" or "S1-S2 fusion" stay levels. The
        words count at word starts ("dm" is not in "admitted") within
        ``exclusion_window`` characters outside the mention, across sentence ends:
        a heart sound is often a sentence of its own under a heart heading
        ("Regular rhythm. Normal S1 and S2."). MRI sequences have their own rules
        (``_sequence``); a pair is a sequence only by its neighbouring words.
        """
        p = self.patterns
        assert p is not None
        sequence, words = p.exclusions_of(vertebrae)
        if sequence and self._sequence(text, start, end, fallback=len(vertebrae) == 1):
            return True
        if not words:
            return False
        lo, hi = max(0, start - p.window), end + p.window
        return any(w.search(text, lo, start) or w.search(text, end, hi) for w in words)

    def _sequence(self, text: str, start: int, end: int, fallback: bool = True) -> bool:
        """Is this "T1"/"T2" (or "T1/T2") an MRI sequence rather than a vertebra?"""
        p = self.patterns
        assert p is not None
        if p.sequence_after.match(text, end, end + 80):
            return True
        before = text[max(0, start - 80) : start]
        if p.sequence_before.search(before):
            return True
        if not fallback:
            return False
        # Fallback: an MRI word in the sentence ("On T2, the cord is hyperintense"),
        # unless a level cue introduces the vertebra ("signal in the cord at T2").
        lo, hi = _sentence(text, start, end, p.window)
        return bool(
            p.sequence_window.search(text, lo, hi) and not p.level_cue_before.search(before)
        )

    @staticmethod
    def _junctional_vertebrae(doc: Doc, text: str, levels: list[Span]) -> None:
        """ "At the thoracolumbar junction, L1": a lone vertebra of a named junction.

        Each vertebra is compared with the junctions of its own sentence only
        (in the same order as with all of them: the others never match).
        """
        junctions = [s for s in levels if "junction" in text[s.start_char : s.end_char].lower()]
        if not junctions:
            return
        if not doc.has_annotation("SENT_START"):
            sentence_start = None
        elif plain_sentences(doc):
            first = DocView(doc).first
            sentence_start = lambda span: first[span.start]  # noqa: E731
        else:
            sentence_start = lambda span: span.sent.start  # noqa: E731
        by_sentence: dict[int | None, list[Mention]] = defaultdict(list)
        for junction in junctions:
            key = sentence_start(junction) if sentence_start else None
            by_sentence[key].append(mention(junction))
        for span in levels:
            record = mention(span)
            if len(record.levels) != 1:
                continue
            key = sentence_start(span) if sentence_start else None
            for junction in by_sentence.get(key, []):
                if record.levels[0] in junction.levels:
                    record.region = junction.region
                    record.regions = [junction.region]

    def _region_words(
        self, doc: Doc, tokens: TokenText, lowered: str, levels: list[Span]
    ) -> list[Span]:
        p = self.patterns
        assert p is not None
        text = tokens.text
        label = doc.vocab.strings.add("REGION")
        inside: Containing | None = None  # (the levels' characters, once a word is found)
        kept: list[tuple[int, int, str]] = []
        for match in p.region_word.finditer(text):
            start, end = match.span()
            if inside is None:
                inside = Containing(levels, [(s.start_char, s.end_char) for s in levels])
            if inside.first_index(start, end) is not None:
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
            kept.append((start, end, word))
        words: list[Span] = []
        bounds_of = tokens.tokens_of([(start, end) for start, end, _ in kept])
        for (_, _, word), bounds in zip(kept, bounds_of, strict=True):
            if bounds is None:  # (doc.char_span's, "expand")
                continue
            span = Span(doc, *bounds, label=label)
            record = mention(span)
            record.region = p.data["region_words"][word]
            record.regions = [record.region]
            words.append(span)
        return words


class _WordsAtStart:
    """A ``_words_at_start`` pattern that can also be asked of many windows of one text.

    ``pattern.search(text, lo, hi)`` tries every word at every position of the
    window; the run-together levels of a long list each ask it of the 240
    characters around them, so a note of "L45 L45 ..." spent milliseconds per
    KB there. ``in_text`` can instead find, in one pass, each position where a
    word starts (the shortest word there): a window holds a match when such a
    position in it has its word end by ``hi``, as ``search`` finds it (its
    look-behind sees the character before ``lo``; nothing after ``hi``).
    """

    def __init__(self, words: list[str]) -> None:
        self.pattern = _words_at_start(words)
        shortest_first = "|".join(re.escape(w) for w in sorted(words, key=len))
        self._starts = re.compile(rf"(?<![a-z])(?=({shortest_first}))", re.I) if words else None

    def in_text(self, text: str, once: bool) -> Callable[[int, int], bool]:
        """``lambda lo, hi: bool(self.pattern.search(text, lo, hi))``, from one pass if
        ``once``."""
        finder = self._starts
        if not once or finder is None:
            return lambda lo, hi: self.pattern.search(text, lo, hi) is not None
        starts: list[int] = []
        ends: list[int] = []
        passed = False  # (the pass is made at the first question)

        def within(lo: int, hi: int) -> bool:
            nonlocal passed
            if not passed:
                for found in finder.finditer(text):
                    starts.append(found.start())
                    ends.append(found.end(1))
                passed = True
            for k in range(bisect_left(starts, lo), len(starts)):
                if starts[k] >= hi:
                    break
                if ends[k] <= hi:
                    return True
            return False

        return within


class _Stretches:
    """Character stretches (start, end) of a note, sorted, for questions about a
    part of it: asked for each of thousands of levels, a scan of them all would
    cost time quadratic in the note's length: only those starting inside the part
    are looked at.
    """

    def __init__(self, stretches: list[tuple[int, int]]) -> None:
        self.stretches = sorted(stretches)

    def any_within(self, lo: int, hi: int, not_starting: int | None = None) -> bool:
        """Does one lie within [lo, hi] (and not start at ``not_starting``)?"""
        stretches = self.stretches
        for k in range(bisect_left(stretches, (lo,)), len(stretches)):
            a, b = stretches[k]
            if a > hi:
                break
            if b <= hi and a != not_starting:
                return True
        return False
