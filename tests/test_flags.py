"""Every documentation-gap flag of docs/coding-rules.md section 4, raised and not raised."""

from __future__ import annotations

import re

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


#: (flag, note, setting, the flag's exact message): every flag and every case of its
#: message, on wording as dictated.
MESSAGES = [
    (
        "PAIN_ONLY",
        "Assessment: thoracolumbar back pain and neck pain.",
        "outpatient",
        "Only pain is coded (M54.89 ('thoracolumbar back pain'); M54.2 ('neck pain')): no "
        "spine condition is coded as its cause. A diagnosis of the cause, where one is "
        "established, would resolve this.",
    ),
    (
        "REGION_UNSPECIFIED",
        "Assessment: spondylosis. Failed PT.",
        "outpatient",
        "M47.819 ('spondylosis') is coded to an unspecified site: the note documents no spinal "
        "region or level for it. The region or levels affected would resolve this.",
    ),
    (
        "REGION_CONFLICT",
        "Assessment: cervical spondylosis at L4-5.",
        "outpatient",
        "M47.816 ('cervical spondylosis'): 'cervical' names the cervical region, but the levels "
        "documented for it, L4-5, are lumbar; the code follows the levels. The region affected "
        "would resolve this.",
    ),
    (
        "IMAGING_MISSING",
        "MRI shows endplate changes at C5-6.\nAssessment: facet syndrome at L4-5. Failed PT.",
        "outpatient",
        "M53.86 ('facet syndrome' at L4-5): no imaging finding (MRI, CT, X-ray) is documented "
        "for the lumbar region. The imaging of that region and its findings, or that none was "
        "done, would resolve this.",
    ),
    (
        "CONSERVATIVE_CARE_MISSING",
        "MRI shows facet arthropathy at L4-5.\nAssessment: facet syndrome at L4-5.",
        "outpatient",
        "M53.86 ('facet syndrome'): no conservative treatment (physical therapy, chiropractic, "
        "injections, bracing, a medication trial) is documented. The treatment tried and the "
        "response to it would resolve this.",
    ),
    (
        "UNCERTAIN_DX",
        "Assessment: probable lumbar radiculopathy. Low back pain.",
        "outpatient",
        "Documented as uncertain: 'lumbar radiculopathy'. Not coded (outpatient); the documented "
        "symptoms are coded (M54.50 ('Low back pain')). A diagnosis confirmed or ruled out would "
        "resolve this.",
    ),
    (
        "UNCERTAIN_DX",
        "Assessment: possible discitis at L3-4.",
        "outpatient",
        "Documented as uncertain: 'discitis'. Not coded (outpatient), and no symptom is coded in "
        "its place. A diagnosis confirmed or ruled out would resolve this.",
    ),
    (
        "UNCERTAIN_DX",
        "Assessment: probable lumbar radiculopathy at L4-5.",
        "inpatient",
        "Documented as uncertain: 'lumbar radiculopathy'. Coded as established (M54.16 ('lumbar "
        "radiculopathy')), as inpatient coding allows. A diagnosis confirmed or ruled out would "
        "resolve this.",
    ),
    (
        "MULTI_REGION",
        "Assessment: cervical spondylosis at C5-6 and lumbar disc herniation at L4-5.",
        "outpatient",
        "Conditions are coded in 2 regions (cervical, lumbar): M47.812 ('cervical spondylosis'); "
        "M51.26 ('lumbar disc herniation'). One code per region.",
    ),
    (
        "DISCITIS_EXCLUDES1",
        "Assessment: discitis at L3-4.",
        "outpatient",
        "M46.46 ('discitis'): discitis is coded to M46.46, never to M53.8- or M54.- (M50-M54 "
        "Excludes1 'discitis NOS (M46.4-)').",
    ),
    (
        "MORE_SPECIFIC_CODE",
        "Assessment: lumbar disc herniation at L4-5.",
        "outpatient",
        "M51.26 (Other intervertebral disc displacement, lumbar region) codes 'lumbar disc "
        "herniation' at L4-5: a specific code, used instead of M53.8- or M54.-.",
    ),
    (
        "EXCLUDES1",
        "Assessment: osteoporosis with compression fracture of L1.",
        "outpatient",
        "M48.56XA ('compression fracture') is not coded beside M80.08XA ('compression "
        "fracture'): M48.5 Excludes1 'pathological fracture of vertebra due to osteoporosis "
        "(M80.-)'.",
    ),
]


@pytest.mark.parametrize(("flag", "note", "setting", "message"), MESSAGES)
def test_each_flag_says_what_it_is_about(code, flag, note, setting, message):
    _, _, result = code(note, setting)
    assert [f["message"] for f in result["flags"] if f["flag"] == flag] == [message]


def test_every_flag_and_message_case_has_a_message_test(nlp):
    rules = nlp.get_pipe("notecoder_coder").rules["flags"]
    cases = {(f, s) for f, _, s, _ in MESSAGES}
    assert {f for f, _ in cases} == set(FLAGS_OF_SPEC)
    uncertain = {s for f, s in cases if f == "UNCERTAIN_DX"}
    assert len(uncertain) == 2  # outpatient with and without symptoms coded, inpatient
    assert len(rules["UNCERTAIN_DX"]["message"]) == 4  # (+ inpatient with nothing coded)


#: docs/coding-rules.md section 4: each flag's kind.
FLAGS_OF_SPEC = {
    "PAIN_ONLY": "query",
    "REGION_UNSPECIFIED": "query",
    "REGION_CONFLICT": "query",
    "IMAGING_MISSING": "query",
    "CONSERVATIVE_CARE_MISSING": "query",
    "UNCERTAIN_DX": "query",
    "MULTI_REGION": "coding",
    "DISCITIS_EXCLUDES1": "coding",
    "MORE_SPECIFIC_CODE": "coding",
    "EXCLUDES1": "coding",
}

_CODE = re.compile(r"\b[A-Z][0-9][0-9A-Z]\.[0-9A-Z]{1,4}\b(?!-)")
_REGION = re.compile(
    r"\b(occipito-atlanto-axial|cervicothoracic|cervical|thoracolumbar|thoracic|lumbosacral|"
    r"lumbar|sacral)\b"
)


def test_no_message_on_the_development_set_claims_what_the_result_does_not_hold(nlp):
    """Every code a message names is suggested (an EXCLUDES1 flag's dropped code is not),
    and every region it names is the region of a suggested code; the kinds are the spec's."""
    import json

    import notecoder
    from tests.conftest import shared_corpus

    seen = set()
    for line in shared_corpus("mtsamples_dev_gold.jsonl").open(encoding="utf-8"):
        note = json.loads(line)
        result = notecoder.suggest(note["text"], setting=note.get("setting", "outpatient"), nlp=nlp)
        codes = {c["code"]: c for c in result["codes"]}
        regions = {c["region"] for c in result["codes"]}
        for f in result["flags"]:
            seen.add(f["flag"])
            assert f["kind"] == FLAGS_OF_SPEC[f["flag"]], f
            # ("M48.5 Excludes1 '...'" quotes the tabular list's note at a category.)
            named = set(_CODE.findall(re.sub(r"\S+ Excludes1", "", f["message"])))
            if f["flag"] == "EXCLUDES1":
                assert f["code"] in named and f["code"] not in codes, (note["id"], f)
                named.discard(f["code"])
            assert named <= set(codes), (note["id"], f["message"])
            if f.get("code") and f["flag"] != "EXCLUDES1":
                assert f["code"] in codes, (note["id"], f)
            if f["flag"] in ("IMAGING_MISSING", "MULTI_REGION"):
                assert set(_REGION.findall(f["message"])) <= regions, (note["id"], f["message"])
            if f["flag"] == "UNCERTAIN_DX" and "symptoms are coded" in f["message"]:
                assert any(c["code"].startswith("M54.") for c in result["codes"]), note["id"]
    assert {"MORE_SPECIFIC_CODE", "PAIN_ONLY", "UNCERTAIN_DX", "MULTI_REGION"} <= seen
