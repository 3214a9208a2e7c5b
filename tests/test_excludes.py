"""Excludes1 between suggested codes (spec section 2, the EXCLUDES1 flag of section 4).

Notes are read from the tabular list at test time, never typed, so a change in
the list shows up here as a changed note, not as a stale string. The parsing
tests read notes about codes outside the coder's compact table, so they place
them in the whole list (``full``).
"""

from __future__ import annotations

import itertools

import pytest
import simple_icd_10_cm as icd

from notecoder import icd10cm
from notecoder.excludes import Dropped, excluded_by, references, resolve
from notecoder.icd10cm import CodeTable


def always(_a: str, _b: str) -> bool:
    return True


def never(_a: str, _b: str) -> bool:
    return False


def tabular_note(owner: str, code: str) -> str:
    """The first Excludes1 note of ``owner`` (tabular order) whose references contain ``code``."""
    found = [
        note
        for note in icd.get_excludes1(owner)
        if any(ref.contains(code) for ref in references(note))
    ]
    assert found, (owner, code)
    return found[0]


@pytest.fixture(scope="module")
def full() -> CodeTable:
    return icd10cm.full_table()


@pytest.fixture(scope="module")
def table(code_table: dict[str, tuple[str, str | None]]) -> dict[str, tuple[str, str | None]]:
    return code_table


def assert_no_excludes1(codes: list[str]) -> None:
    for a, b in itertools.permutations(codes, 2):
        assert excluded_by(a, b) is None, (a, b, excluded_by(a, b))


# --- the three examples of docs/coding-rules.md section 2 -------------------


def test_osteoporotic_collapse_keeps_m80_over_m48_5():
    """M48.5 and M80 exclude each other; M80's note calls M48.5 "NOS", so M48.5- goes."""
    m48_note = tabular_note("M48.5", "M80.08XA")
    m80_note = tabular_note("M80", "M48.56XA")
    assert excluded_by("M48.56XA", "M80.08XA") == m48_note
    assert excluded_by("M80.08XA", "M48.56XA") == m80_note
    assert "NOS" in m80_note.split()
    expected = (["M80.08XA"], [Dropped("M48.56XA", "M80.08XA", m48_note, "M48.5")])
    assert resolve(["M48.56XA", "M80.08XA"], always) == expected
    assert resolve(["M80.08XA", "M48.56XA"], always) == expected


def test_low_back_strain_keeps_s39_over_m54_50():
    note = tabular_note("M54.5", "S39.012A")
    assert excluded_by("M54.50", "S39.012A") == note
    assert excluded_by("S39.012A", "M54.50") is None
    expected = (["S39.012A"], [Dropped("M54.50", "S39.012A", note, "M54.5")])
    assert resolve(["M54.50", "S39.012A"], always) == expected
    assert resolve(["S39.012A", "M54.50"], always) == expected


def test_discitis_keeps_m46_4_over_m54_50():
    """The note sits on the block M50-M54, two levels above M54.50."""
    note = tabular_note("M50-M54", "M46.46")
    assert excluded_by("M54.50", "M46.46") == note
    assert excluded_by("M46.46", "M54.50") is None
    kept, dropped = resolve(["M46.46", "M54.50"], always)
    assert kept == ["M46.46"]
    assert dropped == [Dropped("M54.50", "M46.46", note, "M50-M54")]


# --- parsing and containment ------------------------------------------------


def test_category_range_contains_its_codes_in_tabular_order(full: CodeTable):
    (ref,) = references("dorsopathies (M50-M54)", full)
    for code in ("M50.121", "M51.26", "M53.2X7", "M54.50", "M54.9"):
        assert ref.contains(code), code
    for code in ("M49.86", "M46.46", "M60.9", "S39.012A"):
        assert not ref.contains(code), code
    # M1A is filed before M10 in the tabular list: string order would miss it.
    (gout,) = references("(M05-M14)", full)
    assert gout.contains(icd.get_descendants("M1A")[-1])


def test_code_range_contains_codes_between_its_ends(full: CodeTable):
    (ref,) = references("(M46.40-M46.49)")
    assert ref.contains("M46.40") and ref.contains("M46.46") and ref.contains("M46.49")
    assert not ref.contains("M46.39") and not ref.contains("M46.50")
    (ref,) = references("(J60-J67.9)", full)  # mixed lengths: up to J67.9's subtree
    assert ref.contains("J67.9") and not ref.contains("J68.0")


def test_trailing_dash_names_a_subtree(full: CodeTable):
    (ref,) = references("collapsed vertebra in osteoporosis (M80.-)", full)
    assert ref.contains("M80.08XA") and not ref.contains("M81.0")
    (ref,) = references("discitis NOS (M46.4-)")
    assert ref.contains("M46.46") and not ref.contains("M46.36")
    (ref,) = references("(S13.4-)")
    assert ref.contains("S13.4XXA")
    (ref,) = references("low back strain (S39.012)")  # no dash, still the subtree
    assert ref.contains("S39.012A")


def test_several_references_in_one_note():
    refs = references("traumatic fracture of vertebra (S12.-, S22.-, S32.-)")
    assert [ref.lo for ref in refs] == ["S12", "S22", "S32"]
    assert all(any(ref.contains(c) for ref in refs) for c in ("S12.000A", "S22.000A", "S32.000A"))


def test_qualifier_narrows_a_reference(full: CodeTable):
    (ref,) = references("disc NOS (M51.- with fifth character 4)")
    assert ref.contains("M51.14") and ref.contains("M51.24") and not ref.contains("M51.26")
    (ref,) = references("angiopathy (E08-E13 with .51-.52)", full)
    assert ref.contains("E11.51") and ref.contains("E11.52") and not ref.contains("E11.59")
    assert references("open fracture (S52.- with open fracture 7th character)") == ()
    # The tabular S23.0 note: thoracic discs (5th character 4), not lumbar ones.
    assert excluded_by("S23.0XXA", "M51.24", full) is not None
    assert excluded_by("S23.0XXA", "M51.26", full) is None


def test_narrowest_note_is_quoted():
    """M43 names Q76.49 twice: in a range for hemivertebra, and as Q76.4 itself."""
    naming = [
        note
        for note in icd.get_excludes1("M43")
        if any(ref.contains("Q76.49") for ref in references(note))
    ]
    assert len(naming) >= 2
    note = excluded_by("M43.16", "Q76.49")
    assert note in naming
    assert all(ref.lo == ref.hi for ref in references(note))
    assert any(ref.lo != ref.hi for other in naming for ref in references(other))


def test_index_pointer_names_no_code():
    pointers = [note for note in icd.get_excludes1("M50-M54") if "(" not in note]
    assert pointers
    for note in pointers:
        assert references(note) == ()
    assert references("(G6PD)") == ()


def test_codes_without_dots_and_unknown_codes():
    assert excluded_by("M5450", "S39012A") == excluded_by("M54.50", "S39.012A") is not None
    with pytest.raises(ValueError):
        excluded_by("M54.50", "X99.99")


# --- resolve ----------------------------------------------------------------


def test_unrelated_pairs_are_both_kept():
    codes = ["M54.50", "S39.012A", "M46.46", "M48.56XA", "M80.08XA"]
    assert resolve(codes, never) == (codes, [])


def test_related_is_asked_only_about_forbidden_pairs():
    asked: list[tuple[str, str]] = []

    def related(a: str, b: str) -> bool:
        asked.append((a, b))
        return True

    assert resolve(["M54.2", "M47.816", "S39.012A", "M54.50"], related)[0] == [
        "M54.2",
        "M47.816",
        "S39.012A",
    ]
    assert asked == [("S39.012A", "M54.50")]


def test_mutual_notes_drop_the_code_named_nos():
    """M51.1 calls M54.16 "lumbar radiculitis NOS"; M54.1 names M51.1- too."""
    assert excluded_by("M51.16", "M54.16") is not None
    note = excluded_by("M54.16", "M51.16")
    assert note is not None
    expected = (["M51.16"], [Dropped("M54.16", "M51.16", note, "M54.1")])
    assert resolve(["M54.16", "M51.16"], always) == expected
    assert resolve(["M51.16", "M54.16"], always) == expected


def test_a_dropped_code_drops_nothing():
    """M54.8 excludes M54.5-, which discitis drops: M54.89 then stays."""

    def related(a: str, b: str) -> bool:
        return {a, b} != {"M54.89", "M46.46"}

    assert excluded_by("M54.89", "M54.50") is not None
    kept, dropped = resolve(["M54.89", "M54.50", "M46.46"], related)
    assert kept == ["M54.89", "M46.46"]
    assert [(d.code, d.kept) for d in dropped] == [("M54.50", "M46.46")]


def test_result_does_not_depend_on_order():
    codes = ["M54.89", "M54.50", "M46.46", "S39.012A", "M51.16", "M54.16", "M54.30"]
    outcomes = set()
    for order in itertools.permutations(codes):
        kept, dropped = resolve(list(order), always)
        outcomes.add((frozenset(kept), frozenset(dropped)))
    assert len(outcomes) == 1


# --- the coder's code table -------------------------------------------------


def test_every_pair_of_the_code_table_resolves(table: dict[str, tuple[str, str | None]]):
    codes = sorted(table)
    for a, b in itertools.combinations(codes, 2):
        kept, dropped = resolve([a, b], always)
        forbidden = excluded_by(a, b) is not None or excluded_by(b, a) is not None
        assert len(dropped) == forbidden, (a, b)
        assert len(kept) == 2 - forbidden, (a, b)
        if forbidden:
            (d,) = dropped
            assert excluded_by(d.code, d.kept) == d.note, (a, b)
        assert_no_excludes1(kept)


def test_all_codes_of_the_table_at_once(table: dict[str, tuple[str, str | None]]):
    codes = sorted(table)
    kept, dropped = resolve(codes, always)
    assert_no_excludes1(kept)
    assert sorted(kept + [d.code for d in dropped]) == codes
    for d in dropped:
        assert d.kept in kept and excluded_by(d.code, d.kept) == d.note
    again, _ = resolve(codes[::-1], always)
    assert set(again) == set(kept)
