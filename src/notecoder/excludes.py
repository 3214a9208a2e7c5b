"""Excludes1 between suggested codes, read from the FY2026 tabular list.

An Excludes1 note ("NOT CODED HERE") says two conditions are never coded
together: the note of M48.5 "pathological fracture of vertebra due to
osteoporosis (M80.-)" means a collapsed vertebra in osteoporosis is M80.0-,
never M48.5- beside it. docs/coding-rules.md section 2 (v3) asks that no pair
of suggested codes break such a note, so that a new concept family cannot bring
a conflict back unnoticed. The coder calls :func:`resolve` on its candidates and
raises the ``EXCLUDES1`` flag for each :class:`Dropped` it returns.

The notes are free text, so this module parses the code references in them:
single codes ("(M48.4)"), codes with a trailing dash for a whole subtree
("(M46.4-)", "(M80.-)"), ranges of categories or codes ("(M50-M54)",
"(M46.40-M46.49)", "S06.1- to S06.6-"), several references in one note
("(S12.-, S22.-, S32.-)"), and qualifiers that narrow them ("(M51.- with fifth
character 4)", "(E08-E13 with .44)", "(I69. with final characters -23)").
Notes that only point to the index ("current injury - see Injury of spine by
body region") name no code and forbid nothing here.

Containment follows the tabular list's own order, not string order: a reference
covers the codes from its first endpoint to the last descendant of its second
(so "M05-M14" covers M1A, which the tabular list files before M10). Every
code's notes are parsed once and cached, since the coder checks every pair of
candidates on every note.

The tabular list is read through a :class:`~notecoder.icd10cm.CodeTable`, by
default the compact one, which holds the position of every item the notes of its
codes could name (:func:`code_spellings`); the functions take another table
(``icd10cm.full_table()``) to read notes about codes outside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

from notecoder import icd10cm
from notecoder.errors import Errors
from notecoder.icd10cm import CodeTable

__all__ = [
    "Dropped",
    "Reference",
    "code_spellings",
    "excluded_by",
    "notes_of",
    "references",
    "resolve",
]

#: One code as the notes write it: category, optional dot and up to four more
#: characters ("M80", "M46.4", "I69." with a bare dot, "S13.4XXA").
_CODE = r"[A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{0,4})?"
#: A trailing dash ("M46.4-", "M80.-", the malformed "D29.2.-"), or else the end
#: of a word, so that "G6PD" is not read as G6P.
_END = r"(?:\.?-|(?![0-9A-Za-z]))"
#: A single reference or a range "M50-M54", "R10.1-R10.3-", "S06.1- to S06.6-".
_REFERENCE = re.compile(
    rf"(?<![0-9A-Za-z])(?P<lo>{_CODE})(?:\.?-)?\s*(?:-|\bto\b)\s*(?P<hi>{_CODE}){_END}"
    rf"|(?<![0-9A-Za-z])(?P<one>{_CODE}){_END}"
)
_PAREN = re.compile(r"\(([^()]*)\)")
_WITH = re.compile(r"\s*-?\s*with\b\s*(?P<what>.*)", re.IGNORECASE)
_ORDINALS = {
    **{w: i for i, w in enumerate(("first", "second", "third", "fourth"), 1)},
    **{w: i for i, w in enumerate(("fifth", "sixth", "seventh"), 5)},
    **{f"{i}{s}": i for i, s in enumerate(("st", "nd", "rd", "th", "th", "th", "th"), 1)},
}
_NTH = re.compile(
    r"(?P<first>\w+)(?:\s+to\s+(?P<last>\w+))?[\s-]+characters?\s+\.?(?P<value>[0-9A-Z]+)$"
)
_SUFFIX = re.compile(r"\.(?P<lo>[0-9A-Z]+)-?(?:\s*-\s*\.(?P<hi>[0-9A-Z]+)-?)?$")
_FINAL = re.compile(r"final characters?\s*-?(?P<value>[0-9A-Z]+)$")
#: Symptom codes: when two codes exclude each other, the symptom goes
#: (docs/coding-rules.md section 2 keeps a documented condition over M53.8-/M54.- pain codes).
_SYMPTOM = re.compile(r"M53\.8|M54\.")
_NOS = re.compile(r"\bNOS\b")


def _canonical(code: str, table: CodeTable) -> str:
    """The dotted spelling the tabular list files ``code`` under; ValueError if unknown."""
    code = code.strip().upper()
    dotted = table.locate(code)
    if dotted is None:
        raise ValueError(Errors.E070.format(code=code, table=table.name))
    return dotted


@dataclass(frozen=True)
class Reference:
    """A code, subtree or range named by an Excludes1 note, with its qualifier.

    ``lo`` and ``hi`` are tabular items (equal for a single code); ``qualifier``
    is the test a qualifier such as "with fifth character 4" puts on the
    dotless code, or None when the reference has none; ``table`` places them.
    """

    lo: str
    hi: str
    qualifier: Callable[[str], bool] | None
    table: CodeTable = field(compare=False, repr=False)

    @property
    def span(self) -> int:
        """How many tabular items the reference covers, less one (0 for a leaf)."""
        return self.table.extent(self.hi)[1] - self.table.extent(self.lo)[0]

    def contains(self, code: str) -> bool:
        """True if ``code`` (dotted, valid) lies in this reference."""
        at = self.table.extent(code)[0]
        if not self.table.extent(self.lo)[0] <= at <= self.table.extent(self.hi)[1]:
            return False
        return self.qualifier is None or self.qualifier(code.replace(".", ""))


def _qualifier(text: str) -> Callable[[str], bool]:
    """The test a "with ..." qualifier puts on a dotless code; KeyError if unreadable."""
    text = text.strip().rstrip(")").strip()
    if match := _NTH.match(text):
        first = _ORDINALS[match["first"].lower()]
        last = _ORDINALS[match["last"].lower()] if match["last"] else first
        value = match["value"]
        if len(value) != last - first + 1:
            raise KeyError(text)
        return lambda code: code[first - 1 : last] == value
    if match := _SUFFIX.match(text):
        lo, hi = match["lo"], match["hi"] or match["lo"]
        return lambda code: lo <= code[3 : 3 + len(lo)] and code[3 : 3 + len(hi)] <= hi
    if match := _FINAL.match(text):
        value = match["value"]
        return lambda code: code.endswith(value)
    raise KeyError(text)


def _parse_segment(text: str, table: CodeTable) -> list[Reference]:
    """The references in one run of text; a trailing "with ..." qualifies all of them.

    A qualifier this parser cannot read ("with ketoacidosis") makes the segment
    name nothing: dropping a code on a misread note is worse than missing one.
    """
    found: list[tuple[str, str]] = []
    end = 0
    for match in _REFERENCE.finditer(text):
        lo = table.locate((match["lo"] or match["one"]).rstrip("."))
        hi = table.locate((match["hi"] or match["one"]).rstrip("."))
        if lo is not None and hi is not None:
            found.append((lo, hi))
            end = match.end()
    if not found:
        return []
    qualifier = None
    if rest := _WITH.match(text[end:]):
        try:
            qualifier = _qualifier(rest["what"])
        except KeyError:
            return []
    return [Reference(lo, hi, qualifier, table) for lo, hi in found]


def _segments(note: str) -> list[str]:
    """The runs of text a note's references are read from: its parentheses, then the
    whole note (read only where the parentheses name no code)."""
    return [*_PAREN.findall(note), note]


@cache
def references(note: str, table: CodeTable | None = None) -> tuple[Reference, ...]:
    """The codes, subtrees and ranges one Excludes1 note names.

    References are read from the note's parentheses ("discitis NOS (M46.4-)");
    only a note with no code in parentheses is read whole ("torticollis NOS
    M43.6"), so that words like "T12" in a description are not taken for codes.
    """
    table = icd10cm.table() if table is None else table
    *groups, whole = _segments(note)
    refs = [ref for group in groups for ref in _parse_segment(group, table)]
    if not refs:
        refs = _parse_segment(whole, table)
    return tuple(refs)


def code_spellings(note: str) -> set[str]:
    """Every code spelling :func:`references` could look up in a note, named or not.

    A table that can place each of these that the tabular list has reads the note
    as the whole list does: ``notecoder.icd10cm.derive`` keeps their positions.
    """
    return {
        match[group].rstrip(".")
        for text in _segments(note)
        for match in _REFERENCE.finditer(text)
        for group in ("lo", "hi", "one")
        if match[group]
    }


@cache
def notes_of(
    code: str, table: CodeTable | None = None
) -> tuple[tuple[str, str, tuple[Reference, ...]], ...]:
    """(owner, note, references) for the Excludes1 notes of ``code`` and its ancestors.

    Nearest first (the code's own notes, then its parent's, up to block and
    chapter), in tabular order within one item. Raises ValueError for a code
    the table does not have.
    """
    table = icd10cm.table() if table is None else table
    code = _canonical(code, table)
    out: list[tuple[str, str, tuple[Reference, ...]]] = []
    for owner in (code, *table.ancestors(code)):
        for note in table[owner].excludes1:
            refs = references(note, table)
            if refs:
                out.append((owner, note, refs))
    return tuple(out)


@cache
def _excluded(code_a: str, code_b: str, table: CodeTable) -> tuple[str, str] | None:
    """(note, owner) of the note of ``code_a`` (or an ancestor) that names ``code_b``.

    The nearest item with such a note wins; among its notes, the one whose
    reference is narrowest (M43 names Q76.49 in "hemivertebra (Q76.3-Q76.4)"
    and in "lumbarization and sacralization (Q76.4)": the second is the one to
    quote), then the first in tabular order.
    """
    b = _canonical(code_b, table)
    best: tuple[int, str, str] | None = None
    for owner, note, refs in notes_of(code_a, table):
        if best is not None and owner != best[2]:
            break
        spans = [ref.span for ref in refs if ref.contains(b)]
        if spans and (best is None or min(spans) < best[0]):
            best = (min(spans), note, owner)
    return (best[1], best[2]) if best else None


def excluded_by(code_a: str, code_b: str, table: CodeTable | None = None) -> str | None:
    """The Excludes1 note of ``code_a`` (or an ancestor of it) that names ``code_b``.

    A note names ``code_b`` when one of its references is ``code_b``, an
    ancestor of it (trailing dash or not: "(M80.-)" and "(M48.5)" both cover
    their subtree), or a range that contains it in tabular order ("(M50-M54)"
    contains M54.50). Of several such notes, the nearest (the code's own
    before its parent's) and, at that level, the narrowest. The note is
    returned as the tabular list writes it, for the flag to quote; None when no
    note of ``code_a`` names ``code_b``. Codes are accepted with or without the
    dot; ValueError for a code the table (default: the compact one) does not have.
    """
    table = icd10cm.table() if table is None else table
    found = _excluded(_canonical(code_a, table), _canonical(code_b, table), table)
    return found[0] if found else None


@dataclass(frozen=True)
class Dropped:
    """A code resolve() dropped, the code kept in its place, and the note why.

    ``note`` is the Excludes1 note of ``note_of`` (the dropped code or one of
    its ancestors, "M48.5", "M50-M54") that names ``kept``.
    """

    code: str
    kept: str
    note: str
    note_of: str


def _loser(a: str, b: str, table: CodeTable) -> tuple[str, str, str, str] | None:
    """(dropped, kept, note, note_of) for one excluded pair, or None if allowed.

    The note of ``a`` that names ``b`` sends the condition to ``b``: ``b`` is the
    more specific or etiologic code and stays. When both name each other (M48.5
    "pathological fracture of vertebra due to osteoporosis (M80.-)" and M80
    "collapsed vertebra NOS (M48.5)"), the code a note calls "NOS" is the
    unspecified one and goes; failing that the symptom code (M53.8-, M54.-)
    goes; failing that the code later in the tabular list goes, so the choice
    never depends on the order of the candidates.
    """
    ab, ba = _excluded(a, b, table), _excluded(b, a, table)
    if ab is None and ba is None:
        return None
    if ab is not None and ba is not None:
        b_is_nos, a_is_nos = bool(_NOS.search(ab[0])), bool(_NOS.search(ba[0]))
        b_is_symptom, a_is_symptom = bool(_SYMPTOM.match(b)), bool(_SYMPTOM.match(a))
        if a_is_nos != b_is_nos:
            drop_a = a_is_nos
        elif a_is_symptom != b_is_symptom:
            drop_a = a_is_symptom
        else:
            drop_a = table.extent(a)[0] > table.extent(b)[0]
        ab, ba = (ab, None) if drop_a else (None, ba)
    if ab is not None:
        return a, b, ab[0], ab[1]
    assert ba is not None
    return b, a, ba[0], ba[1]


def resolve(
    codes: Iterable[str], related: Callable[[str, str], bool], table: CodeTable | None = None
) -> tuple[list[str], list[Dropped]]:
    """Drop codes until no two related codes break an Excludes1 note.

    ``related(a, b)`` says whether two codes concern related conditions (the
    coder: same mention or same region); Official Guidelines I.A.12.a code two
    unrelated conditions together despite an Excludes1 note, so an unrelated
    pair is left alone. It is only asked about pairs a note forbids, and should
    be symmetric.

    For each forbidden related pair the code the note points to is kept (see
    ``_loser`` for pairs that name each other). A dropped code drops nothing
    else: codes are settled in tabular order, a code beaten by a kept code is
    dropped, a code beaten only by dropped codes is kept (a cycle, which the
    tabular list does not produce among spine codes, keeps its first code in
    tabular order). The kept set is therefore the same whatever the order of
    ``codes``; the kept list keeps their order (first of any duplicates), and
    the dropped list follows it too.
    """
    table = icd10cm.table() if table is None else table
    canon: dict[str, str] = {}
    for code in codes:  # first spelling of each code, in the given order
        if _canonical(code, table) not in canon.values():
            canon[code] = _canonical(code, table)
    given = list(canon)
    beaten_by: dict[str, list[tuple[str, str, str]]] = {code: [] for code in given}
    for i, a in enumerate(given):
        for b in given[i + 1 :]:
            lost = _loser(canon[a], canon[b], table)
            if lost is None or not related(a, b):
                continue
            dropped, kept = (a, b) if lost[0] == canon[a] else (b, a)
            beaten_by[dropped].append((kept, lost[2], lost[3]))

    order = sorted(given, key=lambda code: table.extent(canon[code])[0])
    rank = {code: i for i, code in enumerate(order)}
    kept_set: set[str] = set()
    dropped_by: dict[str, Dropped] = {}
    undecided = list(order)
    while undecided:
        progress = False
        for code in list(undecided):
            winners = [w for w in beaten_by[code] if w[0] in kept_set]
            if winners:
                winner = min(winners, key=lambda w: rank[w[0]])
                dropped_by[code] = Dropped(code, winner[0], winner[1], winner[2])
            elif all(w[0] in dropped_by for w in beaten_by[code]):
                kept_set.add(code)
            else:
                continue
            undecided.remove(code)
            progress = True
        if not progress:  # a cycle: keep its first code in tabular order
            kept_set.add(undecided.pop(0))
    return (
        [code for code in given if code in kept_set],
        [dropped_by[code] for code in given if code in dropped_by],
    )
