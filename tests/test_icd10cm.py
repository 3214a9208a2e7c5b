"""The compact ICD-10-CM code table (notecoder.icd10cm) answers as simple-icd-10-cm does."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import simple_icd_10_cm as icd

from notecoder import excludes, icd10cm
from notecoder.icd10cm import TABLE_FILE, CodeTable, derive, dumps, table_roots
from notecoder.serve import code_entry

REGENERATE = "regenerate it with `python -m notecoder.icd10cm` and commit the result"


@pytest.fixture(scope="module")
def table() -> CodeTable:
    return icd10cm.table()


@pytest.fixture(scope="module")
def full() -> CodeTable:
    return icd10cm.full_table()


def test_committed_table_is_a_fresh_derivation():
    """An upgrade of simple-icd-10-cm, a new family in code_families.json or a new
    node in terminology.json changes the derivation: the committed file must follow."""
    committed = json.loads(TABLE_FILE.read_text(encoding="utf-8"))
    fresh = derive(table_roots())
    missing = sorted(fresh["items"].keys() - committed["items"].keys())
    changed = sorted(k for k in fresh if committed.get(k) != fresh[k])
    assert not changed, f"{TABLE_FILE} is stale ({changed} differ; missing {missing[:10]}): " + (
        REGENERATE
    )
    assert TABLE_FILE.read_text(encoding="utf-8") == dumps(fresh), f"{TABLE_FILE}: " + REGENERATE


def test_every_family_has_its_whole_subtree(table: CodeTable):
    for root in table_roots():
        assert table.descendants(root) == icd.get_descendants(root), root


def test_answers_equal_simple_icd_10_cm_for_every_code_the_coder_emits(
    table: CodeTable, code_table: dict[str, tuple[str, str | None]]
):
    for code in code_table:
        assert table.is_billable(code) == (
            icd.is_valid_item(code) and icd.is_leaf(code) and not icd.is_chapter_or_block(code)
        )
        assert table.ancestors(code) == icd.get_ancestors(code), code
        assert table.seventh_characters(code) == icd.get_seven_chr_def(code, True), code
        for name in (code, *icd.get_ancestors(code)):
            item = table[name]
            assert item.description == icd.get_description(name), name
            assert item.is_leaf == icd.is_leaf(name), name
            assert list(item.children) == icd.get_children(name), name
            assert list(item.excludes1) == icd.get_excludes1(name), name
            assert list(item.excludes2) == icd.get_excludes2(name), name
            assert list(item.inclusion_terms) == icd.get_inclusion_term(name), name
            assert item.parent == (icd.get_parent(name) or None), name


def test_excludes1_notes_read_as_in_the_whole_list(
    table: CodeTable, full: CodeTable, code_table: dict[str, tuple[str, str | None]]
):
    """Same notes, references and tabular positions: so every containment test, and
    with it every Excludes1 decision between the coder's codes, is the same."""

    def placed(t: CodeTable, code: str) -> object:
        return [
            (owner, note, [(r.lo, r.hi, t.extent(r.lo), t.extent(r.hi)) for r in refs])
            for owner, note, refs in excludes.notes_of(code, t)
        ]

    for code in code_table:
        assert table.extent(code) == full.extent(code), code
        assert placed(table, code) == placed(full, code), code


def test_code_outside_the_table():
    table = icd10cm.table()
    assert "J45.909" not in table and "J45909" not in table
    with pytest.raises(KeyError, match="E070"):
        table["J45.909"]
    with pytest.raises(ValueError, match="E070"):
        excludes.excluded_by("M54.50", "J45.909")
    assert "M5450" in table and table["M5450"].code == "M54.50"


def test_code_browser_answers_for_any_code():
    """Codes outside the compact table come from the whole list, read on first need."""
    for code in ("M54.50", "M50-M54", "J45.909", "J45", "S32.000A"):
        entry = code_entry(code)
        assert entry is not None, code
        assert entry["description"] == icd.get_description(code)
        assert entry["parent"] == icd.get_parent(code)
        assert entry["children"] == icd.get_children(code)
        assert entry["excludes1_inherited"] == [
            {"from": a, "note": n} for a in icd.get_ancestors(code) for n in icd.get_excludes1(a)
        ]
    assert code_entry("J45.909")["billable"] and not code_entry("J45")["billable"]
    assert code_entry("J99.999") is None


def test_coding_a_note_does_not_import_simple_icd_10_cm():
    """Its import parses the whole tabular XML: seconds and some 200 MB a process."""
    script = (
        "import notecoder, sys; notecoder.suggest('low back pain at L4-5'); "
        "assert 'simple_icd_10_cm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
