"""docs/coding-rules.md sections 1-3 on real sentences: which code for what the note says."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SAMPLE

IMAGING_PARAGRAPH = re.compile(r"^IMAGING:.*\n\n", re.M)


def test_sample_note_gives_m53_85_without_flags(code):
    codes, flags, result = code(SAMPLE.read_text())
    assert codes == {"M53.85"}
    assert flags == set()
    (m53,) = result["codes"]
    assert m53["description"] == "Other specified dorsopathies, thoracolumbar region"
    texts = {e["text"] for e in m53["evidence"]}
    assert "Thoracolumbar junction syndrome at T12-L1" in texts
    assert {e["section"] for e in m53["evidence"]} == {"assessment_and_plan"}


def test_sample_note_without_imaging_adds_imaging_missing(code):
    text = IMAGING_PARAGRAPH.sub("", SAMPLE.read_text())
    assert "MRI" not in text
    codes, flags, _ = code(text)
    assert codes == {"M53.85"}
    assert flags == {"IMAGING_MISSING"}


def test_thoracolumbar_back_pain_alone_is_pain_only(code):
    codes, flags, _ = code("Assessment: thoracolumbar back pain for three weeks.")
    assert codes and all(c.startswith("M54") for c in codes)
    assert "M53.85" not in codes
    assert flags == {"PAIN_ONLY"}


def test_discitis_at_t12_l1(code):
    codes, flags, result = code("Assessment: discitis at T12-L1.")
    assert codes == {"M46.45"}
    assert "DISCITIS_EXCLUDES1" in flags
    (flag,) = [f for f in result["flags"] if f["flag"] == "DISCITIS_EXCLUDES1"]
    assert "discitis NOS (M46.4-)" in flag["message"]  # quoted from the tabular list
    assert not any(c.startswith(("M53.8", "M54")) for c in codes)


def test_negated_discitis_gives_nothing(code):
    codes, flags, result = code("MRI shows no evidence of discitis.")
    assert codes == set()
    assert flags == set()
    (discitis,) = [e for e in result["entities"] if e["text"] == "discitis"]
    assert discitis["negated"] is True
    assert discitis["modifiers"][0]["text"] == "no evidence of"


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("T12-L1", "M53.85"),
        ("T12/L1", "M53.85"),
        ("T12–L1", "M53.85"),
        ("T1-T2", "M53.84"),
        ("T6-7", "M53.84"),
        ("T10-T11", "M53.84"),
        ("T11-T12", "M53.84"),
        ("L1-L2", "M53.86"),
        ("L3-4", "M53.86"),
        ("L4-5", "M53.86"),
        ("L5-S1", "M53.87"),
        ("C5-6", "M53.82"),
        ("C7-T1", "M53.83"),
    ],
)
def test_m53_8_region_character_from_level(code, level, expected):
    note = (
        f"Assessment: facet syndrome at {level}. MRI shows facet joint effusion at {level}. "
        "Failed 6 weeks of physical therapy."
    )
    codes, flags, _ = code(note)
    assert codes == {expected}
    assert flags == set()


def test_no_seventh_character_on_m53_m54_m46(code):
    codes, _, _ = code(
        "Assessment: 1. Facet syndrome at L3-4. 2. Discitis at T8-9. 3. Neck pain. "
        "MRI shows endplate edema at T8-9 and facet joint effusion at L3-4. Completed PT."
    )
    assert {"M53.86", "M46.44"} <= codes
    for c in codes:
        if c.startswith(("M53.8", "M54", "M46.4")):
            assert len(c.replace(".", "")) <= 5


def test_coccydynia_is_m53_3(code):
    codes, flags, _ = code("Assessment: coccydynia after a fall on the ice two months ago.")
    assert codes == {"M53.3"}
    assert "MORE_SPECIFIC_CODE" in flags
