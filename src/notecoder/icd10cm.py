"""The ICD-10-CM tabular list, as much of it as the coder uses, behind one interface.

simple-icd-10-cm parses the whole FY2026 tabular XML when it is imported: seconds
of CPU and some 200 MB in every process, every command-line call and every batch
worker, for the few dozen categories a spine coder asks about. So the coder reads
:class:`CodeTable`, a compact extract (pipelines/icd10cm_table.json) that
:func:`derive` takes from simple-icd-10-cm and ``python -m notecoder.icd10cm``
writes: the families named in code_families.json and the nodes of
terminology.json, their whole subtrees and their ancestors, and the tabular
position of every item their Excludes1 notes could name. A test checks the
committed file equals a fresh derivation, so an upgrade of simple-icd-10-cm or a
new family cannot leave it stale.

Like scispaCy's ``KnowledgeBase``, the code that asks (``notecoder.codes``,
``notecoder.excludes``, the code browser of ``notecoder.serve``) does not know
which table it reads: :func:`full_table` is the same class over the whole list,
for a browser asked about any code and for tests, and pays simple-icd-10-cm's
import on first use.
"""

from __future__ import annotations

import bisect
import json
import sys
from collections.abc import Iterable
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

from notecoder.errors import Errors
from notecoder.rulefile import PIPELINES_DIR, RULES_DIR, read_rule_file

#: The compact table the coder reads.
TABLE_FILE = PIPELINES_DIR / "icd10cm_table.json"
#: The rule files whose codes the compact table must hold.
FAMILIES_FILE = RULES_DIR / "code_families.json"
TERMINOLOGY_FILE = RULES_DIR / "terminology.json"
#: How the compact table names itself in errors.
COMPACT_NAME = "pipelines/icd10cm_table.json (regenerate: python -m notecoder.icd10cm)"
#: Every billable code of the list with its description, for code search (``notecoder
#: serve``'s ``GET /v1/codes``): a coder may add any code, not only the table's.
CODES_FILE = PIPELINES_DIR / "icd10cm_codes.json"


class Item(NamedTuple):
    """One item of the tabular list (chapter, block, category or code), as the list has it.

    A named tuple, like scispaCy's ``Entity``: the table builds some two thousand
    of them on every load.
    """

    code: str
    #: "chapter", "block", "category" or "subcategory" (codes below a category,
    #: 7th-character extensions included).
    kind: str
    description: str
    #: None for a chapter.
    parent: str | None
    children: tuple[str, ...]
    excludes1: tuple[str, ...]
    excludes2: tuple[str, ...]
    inclusion_terms: tuple[str, ...]
    #: The 7th characters this item defines for the codes below it ("A": "initial
    #: encounter for closed fracture"); empty where it defines none.
    seventh_characters: dict[str, str]
    #: Its position in the tabular list, and the position of its last descendant
    #: (its own for a leaf): a range in an Excludes1 note is containment in this order.
    position: int
    last: int

    @property
    def is_leaf(self) -> bool:
        return not self.children


#: The columns of an item in the table file (the code is the key).
FIELDS = Item._fields[1:]


class CodeTable:
    """Tabular items by code, and the tabular positions of items named by their notes.

    ``items`` answer everything about a code; ``referenced`` maps an item that is
    only named by an Excludes1 note (M80 in "(M80.-)") to its (position, last
    descendant position), which is all a containment test asks of it. Codes are
    looked up as the list spells them ("M54.50") or without the dot ("M5450").

    A block that holds one category of its own name (M96, M99) is, by that name,
    the category, as in simple-icd-10-cm; ``blocks`` keeps such blocks apart, for
    walking up and down through them (M96.1's ancestors are M96, M96, 13).
    """

    def __init__(
        self,
        items: Iterable[Item],
        referenced: dict[str, tuple[int, int]],
        name: str,
        blocks: Iterable[Item] = (),
    ) -> None:
        self._items = {item.code: item for item in items}
        self._referenced = referenced
        self._blocks = {block.code: block for block in blocks}
        self.name = name

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str) -> CodeTable:
        """A table from the data :func:`derive` makes (the table file's content)."""
        if tuple(data["fields"]) != FIELDS:
            raise ValueError(Errors.E071.format(found=data["fields"], expected=list(FIELDS)))
        items = [_item(code, row) for code, row in data["items"].items()]
        blocks = [_item(code, row) for code, row in data["blocks"].items()]
        referenced = {code: (first, last) for code, (first, last) in data["referenced"].items()}
        return cls(items, referenced, name, blocks)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and self._spelling(code) is not None

    def __getitem__(self, code: str) -> Item:
        spelling = self._spelling(code)
        if spelling is None:
            raise KeyError(Errors.E070.format(code=code, table=self.name))
        return self._items[spelling]

    def _spelling(self, code: str) -> str | None:
        """The key of an item, given with or without the dot (as simple-icd-10-cm takes it)."""
        for spelling in (code, f"{code[:3]}.{code[3:]}"):
            if spelling in self._items:
                return spelling
        return None

    def locate(self, code: str) -> str | None:
        """How the list spells ``code`` if the table knows its position (an item, or one
        its Excludes1 notes name), else None."""
        for spelling in (code, f"{code[:3]}.{code[3:]}"):
            if spelling in self._items or spelling in self._referenced:
                return spelling
        return None

    def extent(self, code: str) -> tuple[int, int]:
        """Tabular positions of ``code`` (as :meth:`locate` spells it) and of its last
        descendant: every item of its subtree lies between the two."""
        if code in self._referenced:
            return self._referenced[code]
        item = self[code]
        return item.position, item.last

    def is_billable(self, code: str) -> bool:
        """True for an item with no children that is a code (not a chapter or block)."""
        item = self._items.get(self._spelling(code) or "")
        return item is not None and item.is_leaf and item.kind not in ("chapter", "block")

    def ancestors(self, code: str) -> list[str]:
        """Parent, grandparent, ... up to the chapter."""
        out: list[str] = []
        node = self[code]
        while node.parent is not None:
            out.append(node.parent)
            node = self._blocks[node.code] if node.parent == node.code else self[node.parent]
        return out

    def descendants(self, code: str) -> list[str]:
        """Every item under ``code``, depth first in tabular order."""
        return self._under(self[code])

    def _under(self, node: Item) -> list[str]:
        out: list[str] = []
        for child in node.children:
            out.append(child)
            inside = child in self._blocks and child != node.code
            out.extend(self._under(self._blocks[child] if inside else self[child]))
        return out

    def seventh_characters(self, code: str) -> dict[str, str]:
        """The 7th characters for codes under ``code``: its own, else its nearest ancestor's."""
        for owner in (self[code].code, *self.ancestors(code)):
            if self[owner].seventh_characters:
                return dict(self[owner].seventh_characters)
        return {}


def _item(code: str, row: list[Any]) -> Item:
    kind, description, parent, children, ex1, ex2, terms, seventh, first, last = row
    lists = (tuple(children), tuple(ex1), tuple(ex2), tuple(terms))
    return Item(code, kind, description, parent, *lists, seventh, first, last)


@cache
def table() -> CodeTable:
    """The compact table (pipelines/icd10cm_table.json), read once per process."""
    return read_rule_file(TABLE_FILE, lambda data: CodeTable.from_dict(data, COMPACT_NAME))


@cache
def full_table() -> CodeTable:
    """The whole tabular list, derived from simple-icd-10-cm on first use (seconds)."""
    import simple_icd_10_cm as icd

    roots = [code for code in icd.get_all_codes(True) if icd.is_chapter(code)]
    return CodeTable.from_dict(derive(roots), f"simple-icd-10-cm {_source_version()}")


def _source_version() -> str:
    return version("simple-icd-10-cm")


class CodeList:
    """Every billable code with its description, searched by code prefix or by words.

    What a coder who adds a missed code types against: all 74,000-odd billable
    codes, not only the compact table's families, read from
    pipelines/icd10cm_codes.json (some 7 MB, a tenth of a second to read) rather
    than from simple-icd-10-cm, whose import parses the whole tabular XML.
    """

    def __init__(self, codes: dict[str, str]) -> None:
        self._descriptions = codes
        # Keys without the dot, sorted: a prefix is a contiguous run, found by bisection,
        # whether the coder types "M54.1" or "M541".
        self._keys = sorted((code.replace(".", ""), code) for code in codes)
        self._lowered = [(code, desc.lower()) for code, desc in codes.items()]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodeList:
        """The list from the data :func:`derive_codes` makes (the codes file's content)."""
        return cls(data["codes"])

    def __len__(self) -> int:
        return len(self._descriptions)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._descriptions

    def description(self, code: str) -> str | None:
        """The description of a billable code as the list spells it, else None."""
        return self._descriptions.get(code)

    def with_prefix(self, prefix: str) -> list[str]:
        """Billable codes whose code starts with ``prefix`` (any case, dot or none), sorted."""
        key = prefix.upper().replace(".", "")
        start = bisect.bisect_left(self._keys, (key,))
        stop = bisect.bisect_left(self._keys, (key + "~",))  # "~" sorts after A-Z and 0-9
        return [code for _, code in self._keys[start:stop]]

    def with_words(self, words: str) -> list[str]:
        """Billable codes whose description holds every word of ``words`` (any case), in
        tabular order."""
        terms = words.lower().split()
        if not terms:
            return []
        return [code for code, desc in self._lowered if all(t in desc for t in terms)]


@cache
def code_list() -> CodeList:
    """Every billable code (pipelines/icd10cm_codes.json), read once per process."""
    return read_rule_file(CODES_FILE, CodeList.from_dict)


# -- deriving the compact table ---------------------------------------------------------


@cache
def _positions() -> dict[str, int]:
    """Each item of simple-icd-10-cm's list by its position. The last of a repeated name
    wins, as in a dict: a block holding one category of its own name (M96) has the
    category's position."""
    import simple_icd_10_cm as icd

    return {code: i for i, code in enumerate(icd.get_all_codes(True))}


def _dotted(code: str) -> str:
    """How the list spells a valid code: simple-icd-10-cm's ``add_dot``, without the
    search through the whole list it makes for every code."""
    return code if code in _positions() else f"{code[:3]}.{code[3:]}"


def table_roots() -> list[str]:
    """The tabular items the coder codes from: every code named anywhere in
    code_families.json (families, pain codes, region alias keys) and the nodes of
    terminology.json, whose subtrees the derived terminology concepts resolve in."""
    import simple_icd_10_cm as icd

    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(key)
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)
        elif isinstance(value, str) and icd.is_valid_item(value):
            found.append(_dotted(value))

    walk(read_rule_file(FAMILIES_FILE))
    walk(list(read_rule_file(TERMINOLOGY_FILE)["nodes"]))
    return sorted(set(found), key=_positions().__getitem__)


def derive(roots: Iterable[str]) -> dict[str, Any]:
    """The table data for ``roots``: their subtrees and ancestors, the blocks among
    those that share their name with their category, and the position of every item
    the Excludes1 notes of those could name (what ``notecoder.excludes`` asks about a
    note), read from simple-icd-10-cm."""
    import simple_icd_10_cm as icd

    from notecoder.excludes import code_spellings

    roots = list(roots)
    positions = _positions()

    @cache
    def last(code: str) -> int:
        """Position of the last item under ``code`` (its own for a leaf)."""
        children = icd.get_children(code)
        return last(children[-1]) if children else positions[code]

    def row(code: str, block: bool = False) -> list[Any]:
        """The fields of ``code``, or (``block``) of the block that shares its name."""
        if icd.is_chapter(code):
            kind = "chapter"
        elif icd.is_block(code):
            kind = "block"
        elif icd.is_category(code):
            kind = "category"
        else:
            kind = "subcategory"
        values = {
            "kind": kind,
            "description": icd.get_description(code, block),
            "parent": icd.get_parent(code, block) or None,
            "children": icd.get_children(code, block),
            "excludes1": icd.get_excludes1(code, block),
            "excludes2": icd.get_excludes2(code, block),
            "inclusion_terms": icd.get_inclusion_term(code, block),
            "seventh_characters": icd.get_seven_chr_def(code, False, block),
            "position": icd.get_all_codes(True).index(code) if block else positions[code],
            "last": last(code),
        }
        return [values[name] for name in FIELDS]

    codes: set[str] = set()
    for root in roots:
        codes.update((root, *icd.get_descendants(root), *icd.get_ancestors(root)))
    items = {code: row(code) for code in sorted(codes, key=positions.__getitem__)}
    blocks = {code: row(code, True) for code in items if icd.get_parent(code) == code}
    referenced: dict[str, list[int]] = {}
    for code in items:
        for note in icd.get_excludes1(code):
            for spelling in code_spellings(note):
                if not icd.is_valid_item(spelling):
                    continue
                named = _dotted(spelling)
                if named not in items:
                    referenced[named] = [positions[named], last(named)]
    return {
        "about": (
            "The ICD-10-CM items the coder reads, derived from simple-icd-10-cm by "
            "notecoder.icd10cm.derive: never edit by hand, run `python -m notecoder.icd10cm`."
        ),
        "source": f"simple-icd-10-cm {_source_version()}",
        "roots": list(roots),
        "fields": list(FIELDS),
        "items": items,
        "blocks": blocks,
        "referenced": dict(sorted(referenced.items(), key=lambda kv: kv[1][0])),
    }


def derive_codes() -> dict[str, Any]:
    """The codes file's data: every billable code (a leaf that is not a chapter or
    block) in tabular order, with its description, read from simple-icd-10-cm."""
    import simple_icd_10_cm as icd

    codes = {
        code: icd.get_description(code)
        for code in icd.get_all_codes(True)
        if icd.is_leaf(code) and not icd.is_chapter_or_block(code)
    }
    return {
        "about": (
            "Every billable ICD-10-CM code with its description, derived from "
            "simple-icd-10-cm by notecoder.icd10cm.derive_codes: never edit by hand, run "
            "`python -m notecoder.icd10cm`."
        ),
        "source": f"simple-icd-10-cm {_source_version()}",
        "codes": codes,
    }


def dumps(data: dict[str, Any]) -> str:
    """The table file's text: JSON with one item a line, so a regeneration diffs by code."""

    def line(indent: str, key: str, value: Any) -> str:
        return f"{indent}{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"

    parts = []
    for key, value in data.items():
        if key in ("items", "blocks", "referenced", "codes"):
            rows = ",\n".join(line("  ", code, row) for code, row in value.items())
            parts.append(f" {json.dumps(key)}: {{\n{rows}\n }}")
        else:
            parts.append(line(" ", key, value))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write(path: str | Path = TABLE_FILE) -> dict[str, Any]:
    """Derive the compact table and write it to ``path``."""
    data = derive(table_roots())
    Path(path).write_text(dumps(data), encoding="utf-8")
    return data


def write_codes(path: str | Path = CODES_FILE) -> dict[str, Any]:
    """Derive the list of billable codes and write it to ``path``."""
    data = derive_codes()
    Path(path).write_text(dumps(data), encoding="utf-8")
    return data


def main() -> None:
    """``python -m notecoder.icd10cm``: regenerate pipelines/icd10cm_table.json and
    pipelines/icd10cm_codes.json."""
    data = write()
    size = TABLE_FILE.stat().st_size
    print(
        f"wrote {TABLE_FILE}: {len(data['items'])} items, {len(data['referenced'])} "
        f"referenced, {size / 1024:.0f} KiB",
        file=sys.stderr,
    )
    codes = write_codes()
    size = CODES_FILE.stat().st_size
    print(
        f"wrote {CODES_FILE}: {len(codes['codes'])} billable codes, {size / 1024:.0f} KiB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
