"""ICD-10-CM codes from the FY2026 tabular list (the compact table of notecoder.icd10cm).

The coder never types a code with its region or 7th character: it names a
family stem ("M53.8", "M51.3", "S33.5") and a region, and this module finds the
billable leaf under that stem whose tabular description names the region, then
walks down 6th-character qualifiers (pain split, neurogenic claudication, disc
level) and the 7th character (initial encounter) by their descriptions too.
So a change in the tabular list changes our codes, not our code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from notecoder.icd10cm import table

#: Region phrases of the tabular descriptions. Alternatives are tried leftmost
#: first, so "mid-cervical region" wins over the "cervical region" inside it.
_DESC_REGION = re.compile(
    r"site unspecified|unspecified sites in spine|occipito-atlanto-axial region|head region"
    r"|high cervical region|mid-cervical region|unspecified cervical region|at (C\d-C\d) level"
    r"|cervicothoracic region"
    r"|thoracolumbar region|lumbosacral region|sacral and sacrococcygeal region"
    r"|multiple sites in spine|cervical region|thoracic region|lumbar region|sacral region"
)

_PHRASE_REGION: dict[str, str | None] = {
    "site unspecified": None,
    "unspecified sites in spine": None,
    "occipito-atlanto-axial region": "occipito-atlanto-axial",
    "head region": "head",
    "high cervical region": "cervical",
    "mid-cervical region": "cervical",
    "unspecified cervical region": "cervical",
    "cervicothoracic region": "cervicothoracic",
    "thoracolumbar region": "thoracolumbar",
    "lumbosacral region": "lumbosacral",
    "sacral and sacrococcygeal region": "sacral",
    "multiple sites in spine": "multiple",
    "cervical region": "cervical",
    "thoracic region": "thoracic",
    "lumbar region": "lumbar",
    "sacral region": "sacral",
}

#: Cervical disc levels the tabular list puts in the "high cervical region".
_HIGH_CERVICAL = {"C2-C3", "C3-C4"}

#: 6th-character qualifiers, by the wording of the tabular descriptions.
PAIN_SPLIT: dict[str | None, str] = {
    "back": "with discogenic back pain only",
    "leg": "with lower extremity pain only",
    "both": "with discogenic back pain and lower extremity pain",
    None: "without mention of",
}
SIDE: dict[str | None, str] = {"right": "right side", "left": "left side", None: "unspecified side"}


class CodeNotFound(LookupError):
    """The tabular list has no billable code for that family and qualifiers."""


@dataclass(frozen=True)
class Qualifiers:
    """What, beyond the region, picks one leaf of a family."""

    level: str | None = None  # cervical disc level, "C5-C6"
    pain: str | None = "unset"  # key of PAIN_SPLIT; "unset" when the family has no split
    claudication: bool = False
    side: str | None = "unset"  # key of SIDE; "unset" when the family has no side


def description(code: str) -> str:
    """The tabular description of a code."""
    return table()[code].description


def is_billable(code: str) -> bool:
    """True for a valid FY2026 code that has no children (a billable leaf)."""
    return table().is_billable(code)


def excludes1(code: str) -> list[str]:
    """Excludes1 notes of the code and of its ancestors, nearest first."""
    notes: list[str] = []
    for item in [code, *table().ancestors(code)]:
        notes.extend(table()[item].excludes1)
    return notes


def _level_of(code: str) -> str | None:
    match = _DESC_REGION.search(description(code))
    return match.group(1) if match else None


def _pick(codes: list[str], phrase: str) -> str | None:
    found = [c for c in codes if phrase in description(c)]
    return found[0] if len(found) == 1 else None


def _descend(code: str, q: Qualifiers) -> str:
    """Walk from a region code down to a billable leaf by the qualifiers."""
    while not table()[code].is_leaf:
        children = list(table()[code].children)
        chosen: str | None = None
        if len(children[0].replace(".", "")) == 7:  # 7th character: initial encounter
            chosen = next(c for c in children if "initial encounter" in description(c))
        elif q.pain != "unset" and _pick(children, PAIN_SPLIT[q.pain]):
            chosen = _pick(children, PAIN_SPLIT[q.pain])
        elif any("neurogenic claudication" in description(c) for c in children):
            wording = "with" if q.claudication else "without"
            chosen = _pick(children, f"{wording} neurogenic claudication")
        elif q.side != "unset" and _pick(children, SIDE[q.side]):
            chosen = _pick(children, SIDE[q.side])
        elif any("nondisplaced" in description(c) for c in children):
            # Guideline I.C.19.c.1: a fracture not stated as either is coded displaced.
            chosen = next(c for c in children if "nondisplaced" not in description(c))
        elif any(_level_of(c) for c in children):  # mid-cervical: by disc level
            chosen = next((c for c in children if q.level and _level_of(c) == q.level), None)
            chosen = chosen or _pick(children, "unspecified level")
        if chosen is None:
            raise CodeNotFound(f"no qualifier picks a child of {code}")
        code = chosen
    return code


@cache
def _region_codes(family: str) -> tuple[tuple[str, str | None], ...]:
    """(code, region) for the region-level codes under a family stem."""
    out: list[tuple[str, str | None]] = []
    level = list(table()[family].children)
    while level and not out:
        # A level that has region codes ends the walk: its other children are sibling
        # conditions (M45.A beside the regions of M45), not more regions.
        deeper: list[str] = []
        for code in level:
            if len(code.replace(".", "")) == 7:
                continue
            match = _DESC_REGION.search(description(code))
            if match and match.group(0) == "mid-cervical region":
                out.append((code, "cervical"))
            elif match:
                region = "cervical" if match.group(1) else _PHRASE_REGION[match.group(0)]
                out.append((code, region))
            else:
                deeper.extend(table()[code].children)
        level = deeper
    return tuple(out)


def has_regions(family: str | dict[str, str]) -> bool:
    """Does the family code the spinal region (a dict names one family per region)?"""
    if isinstance(family, dict):
        return True
    return family in table() and bool(_region_codes(family))


def resolve(family: str, region: str | None = None, q: Qualifiers | None = None) -> str:
    """The billable leaf of ``family`` for ``region`` and qualifiers.

    ``region`` None asks for the site-unspecified code. A family that is
    itself a leaf (M53.3) or has no region codes (M54.3, S33.5) is descended by
    its qualifiers alone. Raises CodeNotFound where the tabular list has no code.
    """
    q = q or Qualifiers()
    if family not in table():
        raise CodeNotFound(family)
    candidates = _region_codes(family)
    if not candidates:
        return _descend(family, q)
    matching = [code for code, reg in candidates if reg == region]
    if region == "cervical" and len(matching) > 1:
        matching = _cervical_choice(matching, q.level)
    if len(matching) != 1:
        raise CodeNotFound(f"{family} has no single code for region {region!r}")
    return _descend(matching[0], q)


def _cervical_choice(codes: list[str], level: str | None) -> list[str]:
    """Among high / mid / unspecified cervical codes, the one for this disc level."""
    by_phrase = {_DESC_REGION.search(description(c)).group(0): c for c in codes}  # type: ignore[union-attr]
    if level in _HIGH_CERVICAL and "high cervical region" in by_phrase:
        return [by_phrase["high cervical region"]]
    if level and "mid-cervical region" in by_phrase:
        return [by_phrase["mid-cervical region"]]
    for phrase in ("unspecified cervical region", "cervical region"):
        if phrase in by_phrase:
            return [by_phrase[phrase]]
    return codes


_ORDINAL = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
)
_VERTEBRA_WORD = {"C": "cervical", "T": "thoracic", "L": "lumbar"}
_GROUP = re.compile(r"\bT(\d+)-T(\d+) (?:thoracic )?vertebra")
#: Fracture kinds, by the first words of the tabular descriptions.
FRACTURE_KINDS = ("Wedge compression", "Stable burst", "Unstable burst", "Other", "Unspecified")


def fracture(family: str, vertebra: str | None, region: str, kind: str = "Unspecified") -> str:
    """The traumatic fracture code of one vertebra under ``family`` (S12, S22.0, S32.0).

    ``vertebra`` "L1", "T8", "C5", or None for the family's unspecified vertebra
    of ``region``; a kind the tabular list lacks for that vertebra falls back to
    unspecified; the encounter is initial, closed; not stated displaced is coded
    displaced. Raises CodeNotFound where the family has no such code.
    """
    if vertebra:
        letter, n = vertebra[0], int(vertebra[1:])
        names = [f"{_ORDINAL[n - 1]} {_VERTEBRA_WORD[letter]} vertebra"]
    else:
        letter, n = "", 0
        names = [f"unspecified {region} vertebra"]
    for wanted in (kind, "Unspecified"):
        for code in table().descendants(family):
            text = description(code)
            if len(code.replace(".", "")) == 7 or not text.startswith(f"{wanted} fracture of"):
                continue
            group = _GROUP.search(text)
            in_group = bool(letter == "T" and group and int(group[1]) <= n <= int(group[2]))
            if in_group or any(text.endswith(name) for name in names):
                return _descend(code, Qualifiers())
    raise CodeNotFound(f"{family} has no fracture code for {vertebra or region}")
