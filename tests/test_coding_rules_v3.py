"""docs/coding-rules.md version 3: each "(v3)" rule on short notes written for it.

The notes are our own sentences, in the shapes real notes take (run-on
dictation, operative notes, radiology impressions, AI-scribe visit notes); the
development set of real notes is scored by benchmarks/accuracy.py.
"""

from __future__ import annotations

import pytest

SCRIBE_KIDNEY_STONE = """CHIEF COMPLAINT

Back pain.

HISTORY OF PRESENT ILLNESS

Ms. A is a 45-year-old woman with right-sided back pain for 2 days. It radiates to the groin.

ASSESSMENT AND PLAN

1. Back pain.
Medical Reasoning: I believe her pain is from a kidney stone. Her urinalysis shows blood.
Medical Treatment: Flomax 0.4 mg daily.

2. Hypertension.
Medical Reasoning: Well controlled.
Medical Treatment: Continue lisinopril.
"""

SCRIBE_STRAIN = """HISTORY OF PRESENT ILLNESS

Mr. B is a 38-year-old man with low back pain since lifting boxes 3 days ago.

ASSESSMENT AND PLAN

1. Low back pain.
Medical Reasoning: I believe he has a lumbar strain from lifting.
Medical Treatment: Ibuprofen 600 mg three times a day.
"""

SCRIBE_HEDGE = """ASSESSMENT AND PLAN

1. Neck pain.
Medical Reasoning: I think this is likely cervical radiculopathy given the thumb numbness.
Medical Treatment: MRI of the cervical spine.
"""


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        # Descriptive findings name the condition (section 2).
        ("IMPRESSION: Degenerative changes of the lumbar spine.", {"M47.816"}),
        ("IMPRESSION: Facet arthrosis at L4-5.", {"M47.816"}),
        ("IMPRESSION: Disc-osteophyte complex at C5-6.", {"M47.812"}),
        ("IMPRESSION: Degenerative disk and joint disease at C5-C6.", {"M50.322", "M47.812"}),
        ("IMPRESSION: Severe foraminal narrowing at L4-5.", {"M48.061"}),
        ("IMPRESSION: C4-C5, C5-C6 stenosis.", {"M48.02"}),
        ("IMPRESSION: Disc desiccation at L3-4.", {"M51.369"}),
        # Words that are spinal only in spinal context.
        ("IMPRESSION: Degenerative changes of the right knee.", set()),
        ("IMPRESSION: Mild aortic stenosis.", set()),
        ("ASSESSMENT: Degenerative disk disease of the right hip.", set()),
        ("ASSESSMENT: Rheumatoid arthritis. Cervical spine films are normal.", set()),
        # Myelopathy and its "with" combinations.
        ("ASSESSMENT: Cervical spondylotic myelopathy at C5-6.", {"M47.12"}),
        ("ASSESSMENT: Herniated disc at C5-C6 with myelopathy.", {"M50.022"}),
        ("ASSESSMENT: Thoracic myelopathy.", {"G95.9"}),
        ("ASSESSMENT: Cervical spondylosis at C3-C4 with spinal cord compression.", {"M47.12"}),
        # New rows of section 2.
        ("ASSESSMENT: Bilateral L5 spondylolysis.", {"M43.06"}),
        ("ASSESSMENT: Left sacroiliitis.", {"M46.1"}),
        ("ASSESSMENT: Right sacroiliac joint dysfunction.", {"M53.3"}),
        ("ASSESSMENT: Failed back surgery syndrome.", {"M96.1"}),
        ("POSTOPERATIVE DIAGNOSIS: Lumbar osteomyelitis.", {"M46.26"}),
        ("ASSESSMENT: Central cord syndrome after a fall.", {"S14.129A"}),
        # M50: one code at the most superior level (section 1).
        ("ASSESSMENT: Disc herniations at C4-5, C5-6 and C6-7.", {"M50.221"}),
        # A level leads into its mention; levels further on belong to something else.
        (
            "DIAGNOSIS: L3 compression fracture adjacent to a fusion from T11 through L2.",
            {"M48.56XA"},
        ),
        # Coordinated conditions share their levels.
        ("DIAGNOSIS: Spondylolisthesis and stenosis at L4-5.", {"M43.16", "M48.061"}),
        # Pain in two regions; back pain radiating to the leg is low back pain.
        ("ASSESSMENT: Neck and low back pain.", {"M54.2", "M54.50"}),
        ("ASSESSMENT: Neck and back pain.", {"M54.2", "M54.9"}),
        ("ASSESSMENT: Back pain radiating down the right leg.", {"M54.50"}),
        # Pain at a non-spinal site or from a non-spinal cause.
        ("ASSESSMENT: Chronic left upper back pain located in the ribs.", set()),
        (SCRIBE_KIDNEY_STONE, set()),
        # First-person conclusions are diagnoses; a hedge stays uncertain.
        (SCRIBE_STRAIN, {"S39.012A"}),
        (SCRIBE_HEDGE, {"M54.2"}),
        # "(-)" negates what follows it.
        ("ROS: (-) back pain, (+) headache.", set()),
        # History versus current.
        ("ASSESSMENT: History of chronic low back pain, worse this week.", {"M54.50"}),
        ("HPI: Neck pain in 1995, resolved. Here for a rash.", set()),
        # The natural curve of the spine is not a condition; a named deformity is.
        ("TECHNIQUE: A pillow reduced the natural lumbar lordosis. Impression: normal.", set()),
        ("IMPRESSION: Straightening of the cervical lordosis. Lumbar lordosis is normal.", set()),
        ("IMPRESSION: Accentuated lumbar lordosis.", {"M40.56"}),
        ("ASSESSMENT: Thoracic kyphosis.", {"M40.204"}),
    ],
)
def test_v3_code(code, note, expected):
    codes, _, _ = code(note)
    assert codes == expected


def test_a_pains_cause_is_read_in_its_entry_not_pages_on(code):
    """An entry runs a few sentences and about 1,500 characters: kidney stones named
    after 2,000 characters of run-on dictation are not this back pain's cause."""
    assert code("ASSESSMENT: Low back pain. Kidney stones.")[0] == set()
    run_on = "Low back pain, " + "worse with bending and lifting and sitting, " * 45
    assert code(f"ASSESSMENT: {run_on}. Kidney stones.")[0] == {"M54.50"}


def test_limb_words_are_no_region(code):
    codes, flags, _ = code("ASSESSMENT: Right lower extremity radiculopathy.")
    assert codes == {"M54.10"}
    assert "REGION_UNSPECIFIED" in flags


def test_hedged_conclusion_raises_uncertain_dx(code):
    _, flags, result = code(SCRIBE_HEDGE)
    assert {"UNCERTAIN_DX", "PAIN_ONLY"} <= flags
    (uncertain,) = [e for e in result["entities"] if e["text"] == "cervical radiculopathy"]
    assert uncertain["uncertain"] and uncertain["section"] == "medical_reasoning"


def test_first_person_conclusion_is_not_uncertain(code):
    codes, flags, _ = code(SCRIBE_STRAIN)
    assert codes == {"S39.012A"}
    assert "UNCERTAIN_DX" not in flags


def test_osteoporotic_collapse_drops_m48_5_with_excludes1(code):
    codes, flags, result = code("IMPRESSION: L1 compression fracture. Osteoporosis.")
    assert codes == {"M80.08XA"}
    assert "EXCLUDES1" in flags
    (flag,) = [f for f in result["flags"] if f["flag"] == "EXCLUDES1"]
    assert flag["code"] == "M48.56XA"
    assert "M80.08XA" in flag["message"] and "M48.5" in flag["message"]


class TestOperativeNotes:
    """The diagnostic statement of an operative note (section 3, v3)."""

    def test_same_means_the_preoperative_diagnosis(self, code):
        note = (
            "PREOPERATIVE DIAGNOSIS: Lumbar stenosis at L4-5.\n"
            "POSTOPERATIVE DIAGNOSIS: Same.\n"
            "PROCEDURE PERFORMED: L4-5 decompression."
        )
        assert code(note)[0] == {"M48.061"}

    def test_symptom_diagnosis_codes_the_cause_with_procedure_levels(self, code):
        note = (
            "PREOPERATIVE DIAGNOSIS: Low back pain.\nPOSTOPERATIVE DIAGNOSIS: Same.\n"
            "PROCEDURE: Facet injections at L34, L45, L5S1.\n"
            "INDICATION: Pain in the lumbar spine secondary to facet arthrosis, seen on x-ray."
        )
        codes, flags, _ = code(note)
        assert codes == {"M47.816", "M47.817"}
        assert "MULTI_REGION" in flags

    def test_radiculopathy_takes_the_roots_of_the_procedure(self, code):
        note = (
            "POSTOPERATIVE DIAGNOSIS: Right lower extremity radiculopathy.\n"
            "PROCEDURE PERFORMED: Right L4 and S1 transforaminal epidural steroid injection."
        )
        assert code(note)[0] == {"M54.16", "M54.17"}

    def test_technique_text_names_no_diagnosis(self, code):
        note = (
            "POSTOPERATIVE DIAGNOSIS: Cervical spondylosis.\n"
            "DESCRIPTION OF PROCEDURE: The disc herniation at C5-6 was removed with a curette."
        )
        assert code(note)[0] == {"M47.812"}


def test_radiculopathy_links_a_disc_documented_elsewhere(code):
    note = (
        "HISTORY: MRI shows a right paracentral disc herniation at L5-S1.\n"
        "IMPRESSION: Acute right S1 radiculopathy."
    )
    assert code(note)[0] == {"M51.17"}


def test_region_words_in_a_list_give_one_code_each(code):
    note = "IMPRESSION: Mild degenerative changes in the cervical, thoracic and lumbar spine."
    codes, flags, _ = code(note)
    assert codes == {"M47.812", "M47.814", "M47.816"}
    assert "MULTI_REGION" in flags


def test_scoliosis_has_no_site_to_ask_for(code):
    codes, flags, _ = code("PREOPERATIVE DIAGNOSIS: Severe scoliosis.")
    assert codes == {"M41.9"}
    assert "REGION_UNSPECIFIED" not in flags


def test_evidence_is_the_whole_diagnostic_phrase(code):
    _, _, result = code("IMPRESSION: Severe foraminal narrowing at L4-5 and L5-S1.")
    texts = {e["text"] for c in result["codes"] for e in c["evidence"]}
    assert texts == {"Severe foraminal narrowing at L4-5 and L5-S1"}
    (evidence,) = result["codes"][0]["evidence"]
    assert evidence["mention"]["end"] - evidence["mention"]["start"] == len("foraminal narrowing")
