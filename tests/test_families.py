"""Each row of docs/coding-rules.md section 2 and the context rules of section 3."""

from __future__ import annotations

import pytest

FAMILIES = [
    # (note, setting, expected codes)
    ("Assessment: thoracolumbar junction syndrome.", "outpatient", {"M53.85"}),
    ("A: Low back pain, mechanical, no radicular features.", "outpatient", {"M54.50"}),
    ("Impression: vertebrogenic low back pain.", "outpatient", {"M54.51"}),
    ("Assessment: mid back pain after lifting.", "outpatient", {"M54.6"}),
    ("Assessment: neck pain.", "outpatient", {"M54.2"}),
    ("Assessment: back pain.", "outpatient", {"M54.9"}),
    ("Assessment: right-sided sciatica.", "outpatient", {"M54.31"}),
    ("Assessment: left sciatica.", "outpatient", {"M54.32"}),
    ("Assessment: low back pain with left sciatica.", "outpatient", {"M54.42"}),
    ("Assessment: lumbar radiculopathy.", "outpatient", {"M54.16"}),
    ("Assessment: cervical radiculopathy. Neck pain.", "outpatient", {"M54.12"}),
    ("Assessment: L5 radiculopathy due to disc herniation at L4-5.", "outpatient", {"M51.16"}),
    ("Assessment: C6 radiculopathy from C5-6 disc protrusion.", "outpatient", {"M50.122"}),
    ("Assessment: lumbar spondylosis with radiculopathy at L4-5.", "outpatient", {"M47.26"}),
    ("Assessment: discitis at L2-3 and T7-8.", "outpatient", {"M46.49"}),
    ("Assessment: pyogenic discitis at L3-4, cultures grew MSSA.", "inpatient", {"M46.36"}),
    (
        "Assessment: degenerative disc disease at L4-5 with low back pain.",
        "outpatient",
        {"M51.360"},
    ),
    (
        "Assessment: degenerative disc disease at L4-5 with radiating leg pain.",
        "outpatient",
        {"M51.361"},
    ),
    (
        "Assessment: degenerative disc disease at L4-5 and L5-S1 with low back pain and sciatica.",
        "outpatient",
        {"M51.362", "M51.372"},
    ),
    ("Assessment: degenerative disc disease at L5-S1.", "outpatient", {"M51.379"}),
    ("Assessment: degenerative disc disease at T12-L1.", "outpatient", {"M51.35"}),
    ("Assessment: C5-C6 degenerative disc disease.", "outpatient", {"M50.322"}),
    ("Assessment: disc herniation at L5-S1.", "outpatient", {"M51.27"}),
    ("Assessment: lumbar spondylosis.", "outpatient", {"M47.816"}),
    ("Assessment: lumbar spinal stenosis at L3-4.", "outpatient", {"M48.061"}),
    (
        "Assessment: spinal stenosis at L4-5 with neurogenic claudication.",
        "outpatient",
        {"M48.062"},
    ),
    ("Assessment: segmental instability at L4-5.", "outpatient", {"M53.2X6"}),
    ("Assessment: grade 1 anterolisthesis of L5 on S1.", "outpatient", {"M43.17"}),
    ("Assessment: coccydynia.", "outpatient", {"M53.3"}),
    ("Assessment: segmental dysfunction at L3.", "outpatient", {"M99.03"}),
    ("Assessment: somatic dysfunction of the cervical spine.", "outpatient", {"M99.01"}),
    ("Assessment: segmental dysfunction at T12-L1.", "outpatient", {"M99.02", "M99.03"}),
    ("Assessment: collapsed vertebra at L2.", "outpatient", {"M48.56XA"}),
    ("Assessment: sacralization of L5.", "outpatient", {"Q76.49"}),
    ("Assessment: acute lumbar strain. Low back pain.", "outpatient", {"S39.012A"}),
    (
        "Assessment: cervical sprain after a motor vehicle collision. Neck pain.",
        "outpatient",
        {"S13.4XXA"},
    ),
    (
        "Assessment: L1 compression fracture after a fall from a ladder. Low back pain.",
        "inpatient",
        {"S32.010A"},
    ),
    (
        "Assessment: unstable burst fracture of T12 after a motor vehicle collision.",
        "inpatient",
        {"S22.082A"},
    ),
    ("Assessment: C5 fracture from a diving accident.", "inpatient", {"S12.400A"}),
    ("Assessment: compression fracture of L2. No trauma.", "outpatient", {"M48.56XA"}),
    ("Assessment: right hip fracture after a fall.", "outpatient", set()),
]


@pytest.mark.parametrize(("note", "setting", "expected"), FAMILIES)
def test_code_family(code, note, setting, expected):
    codes, _, _ = code(note, setting)
    assert codes == expected


CONTEXT = [
    # Section 3: mentions that are not coded, and what is coded instead.
    ("Assessment: no evidence of discitis.", "outpatient", set()),
    ("The patient denies back pain.", "outpatient", set()),
    ("MRI is negative for discitis.", "outpatient", set()),
    ("Assessment:\nNo discitis at T12-L1.", "outpatient", set()),
    ("Family history: mother has degenerative disc disease.", "outpatient", set()),
    ("History of discitis in 2019, resolved.", "outpatient", set()),
    ("If the pain worsens, we may consider an MRI to look for discitis.", "outpatient", set()),
    ("Assessment: low back pain, rule out discitis at L3-4.", "outpatient", {"M54.50"}),
    ("Assessment: low back pain, rule out discitis at L3-4.", "inpatient", {"M46.46"}),
    ("Assessment: back pain; concern for discitis at T12-L1.", "outpatient", {"M54.89"}),
    ("Assessment: low back pain. Cannot exclude discitis at L4-5.", "outpatient", {"M54.50"}),
    ("Assessment: possible facet syndrome at L4-5. Low back pain.", "outpatient", {"M54.50"}),
    ("Assessment: findings consistent with discitis at L2-3.", "inpatient", {"M46.46"}),
    (
        "HPI: back pain, rule out discitis.\nAssessment: discitis at L2-3 confirmed on MRI.",
        "outpatient",
        {"M46.46"},
    ),
]


@pytest.mark.parametrize(("note", "setting", "expected"), CONTEXT)
def test_context_decides_whether_a_mention_counts(code, note, setting, expected):
    codes, _, _ = code(note, setting)
    assert codes == expected


def test_settled_differential_raises_no_uncertain_dx(code):
    _, flags, _ = code(
        "HPI: back pain, rule out discitis.\nAssessment: discitis at L2-3 confirmed on MRI."
    )
    assert "UNCERTAIN_DX" not in flags


def test_condition_only_in_history_is_not_coded_when_assessment_exists(code):
    codes, _, _ = code(
        "HPI: prior workup showed a disc herniation at L4-5.\n\n"
        "ASSESSMENT: Thoracolumbar junction syndrome at T12-L1.\n"
    )
    assert codes == {"M53.85"}


def test_note_without_diagnostic_statement_is_coded_from_whole_text(code):
    codes, _, _ = code(
        "Patient seen for lumbar spinal stenosis at L4-5 and neurogenic claudication."
    )
    assert codes == {"M48.062"}


def test_each_region_gets_its_own_m53_8_code(code):
    codes, flags, _ = code("Assessment: facet syndrome at T12-L1 and L4-5.")
    assert codes == {"M53.85", "M53.86"}
    assert "MULTI_REGION" in flags


def test_integral_symptom_is_not_coded(code):
    codes, _, _ = code("Assessment: discitis at L3-4 with low back pain.")
    assert codes == {"M46.46"}
