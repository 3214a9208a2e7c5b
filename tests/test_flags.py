"""Every documentation-gap flag of docs/coding-rules.md section 4, raised and not raised."""

from __future__ import annotations

import pytest

FULL = "MRI shows Modic type 1 endplate changes at {lvl}. He failed 8 weeks of physical therapy."

CASES = [
    # (flag, raised?, note, setting)
    ("PAIN_ONLY", True, "Assessment: low back pain.", "outpatient"),
    ("PAIN_ONLY", True, "Assessment: thoracolumbar back pain and neck pain.", "outpatient"),
    ("PAIN_ONLY", False, "Assessment: lumbar radiculopathy with low back pain.", "outpatient"),
    ("PAIN_ONLY", False, "Patient denies back pain. Here for a rash.", "outpatient"),
    ("REGION_UNSPECIFIED", True, "Assessment: discitis.", "outpatient"),
    ("REGION_UNSPECIFIED", True, "Assessment: spondylosis. Failed PT.", "outpatient"),
    ("REGION_UNSPECIFIED", False, "Assessment: discitis at L3-4.", "outpatient"),
    ("REGION_UNSPECIFIED", False, "Assessment: coccydynia.", "outpatient"),
    (
        "REGION_CONFLICT",
        True,
        "Assessment: thoracolumbar junction syndrome at L3-L4.",
        "outpatient",
    ),
    ("REGION_CONFLICT", True, "Assessment: cervical spondylosis at L4-5.", "outpatient"),
    ("REGION_CONFLICT", False, "Assessment: lumbar radiculopathy at L5-S1.", "outpatient"),
    ("REGION_CONFLICT", False, "Assessment: thoracic facet syndrome at T12-L1.", "outpatient"),
    ("IMAGING_MISSING", True, "Assessment: facet syndrome at L4-5. Failed PT.", "outpatient"),
    (
        "IMAGING_MISSING",
        True,
        "Assessment: facet syndrome at L4-5. MRI ordered. Failed PT.",
        "outpatient",
    ),
    (
        "IMAGING_MISSING",
        True,
        "MRI shows endplate changes at C5-6.\nAssessment: facet syndrome at L4-5. Failed PT.",
        "outpatient",
    ),
    (
        "IMAGING_MISSING",
        False,
        "Assessment: facet syndrome at L4-5. " + FULL.format(lvl="L4-5"),
        "outpatient",
    ),
    ("IMAGING_MISSING", False, "Assessment: low back pain.", "outpatient"),
    (
        "CONSERVATIVE_CARE_MISSING",
        True,
        "Assessment: facet syndrome at L4-5. MRI shows facet joint effusion at L4-5.",
        "outpatient",
    ),
    (
        "CONSERVATIVE_CARE_MISSING",
        True,
        "Assessment: facet syndrome at L4-5. MRI shows facet joint effusion at L4-5. "
        "He has not tried physical therapy. We may consider injections.",
        "outpatient",
    ),
    (
        "CONSERVATIVE_CARE_MISSING",
        False,
        "Assessment: facet syndrome at L4-5. MRI shows facet joint effusion at L4-5. "
        "Completed 6 weeks of chiropractic care.",
        "outpatient",
    ),
    (
        "CONSERVATIVE_CARE_MISSING",
        False,
        "Assessment: facet syndrome at L4-5. MRI shows facet joint effusion at L4-5. "
        "Gabapentin trial without relief.",
        "outpatient",
    ),
    ("MULTI_REGION", True, "Assessment: spondylosis at L4-5 and L5-S1.", "outpatient"),
    ("MULTI_REGION", True, "Assessment: facet syndrome at T12-L1 and C5-6.", "outpatient"),
    ("MULTI_REGION", False, "Assessment: spondylosis at L3-4 and L4-5.", "outpatient"),
    ("MULTI_REGION", False, "Assessment: lumbar spondylosis. Neck pain.", "outpatient"),
    ("DISCITIS_EXCLUDES1", True, "Assessment: discitis at T12-L1.", "outpatient"),
    ("DISCITIS_EXCLUDES1", True, "Impression: septic discitis at L4-5.", "inpatient"),
    ("DISCITIS_EXCLUDES1", False, "MRI: no evidence of discitis at T12-L1.", "outpatient"),
    ("DISCITIS_EXCLUDES1", False, "Assessment: possible discitis at L2-3.", "outpatient"),
    ("MORE_SPECIFIC_CODE", True, "Assessment: lumbar spinal stenosis at L4-5.", "outpatient"),
    ("MORE_SPECIFIC_CODE", True, "Assessment: segmental dysfunction at T12-L1.", "outpatient"),
    ("MORE_SPECIFIC_CODE", False, "Assessment: thoracolumbar junction syndrome.", "outpatient"),
    ("MORE_SPECIFIC_CODE", False, "Assessment: discitis at L2-3.", "outpatient"),
    ("EXCLUDES1", True, "Assessment: L1 compression fracture. Osteoporosis.", "outpatient"),
    ("EXCLUDES1", False, "Assessment: L1 compression fracture.", "outpatient"),
    ("EXCLUDES1", False, "Assessment: discitis at L2-3 with low back pain.", "outpatient"),
    ("UNCERTAIN_DX", True, "Assessment: back pain, rule out discitis at L2-3.", "outpatient"),
    ("UNCERTAIN_DX", True, "Assessment: probable discitis at L2-3.", "inpatient"),
    ("UNCERTAIN_DX", True, "Impression: findings suggestive of discitis at L2-3.", "outpatient"),
    ("UNCERTAIN_DX", False, "Assessment: discitis at L2-3.", "outpatient"),
    ("UNCERTAIN_DX", False, "Assessment: no evidence of discitis. Low back pain.", "outpatient"),
]


@pytest.mark.parametrize(("flag", "raised", "note", "setting"), CASES)
def test_flag(code, flag, raised, note, setting):
    _, flags, result = code(note, setting)
    assert (flag in flags) is raised
    for f in result["flags"]:
        assert f["message"]
        assert 0 < f["confidence"] <= 1
        assert f["evidence"], f"{f['flag']} has no evidence"
        for ev in f["evidence"]:
            assert note[ev["start"] : ev["end"]] == ev["text"]


def test_every_flag_is_exercised_both_ways():
    from notecoder.flags import FLAGS

    assert {(f, r) for f, r, _, _ in CASES} == {(f, r) for f in FLAGS for r in (True, False)}
