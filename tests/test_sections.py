"""Sections: clinic headings, SOAP, radiology, unlisted headings, serialisation."""

from __future__ import annotations

import json
import re

import pytest
import spacy
import srsly

from notecoder.rulefile import RULES_DIR
from notecoder.sections import section_of
from tests.conftest import blank_pipeline, shared_corpus


@pytest.fixture(scope="module")
def sec_nlp():
    return blank_pipeline("notecoder_sentences", "notecoder_sectionizer")


def section_at(nlp, text, phrase):
    doc = nlp(text)
    start = text.index(phrase)
    span = doc.char_span(start, start + len(phrase), alignment_mode="expand")
    return section_of(span)


@pytest.mark.parametrize(
    ("text", "phrase", "expected"),
    [
        (
            "CHIEF COMPLAINT: Back pain.\nHPI: Pain for 3 weeks.\n",
            "Pain for",
            "history_of_present_illness",
        ),
        ("CHIEF COMPLAINT: Back pain.\nHPI: Pain for 3 weeks.\n", "Back pain", "chief_complaint"),
        (
            "PAST MEDICAL HISTORY: Discitis 2019.\nFAMILY HISTORY: Mother with DDD.",
            "Mother",
            "family_history",
        ),
        ("ASSESSMENT: Facet syndrome.\nPLAN: PT.", "Facet", "assessment_and_plan"),
        ("ASSESSMENT: Facet syndrome.\nPLAN: PT.", "PT", "plan"),
        ("Assessment and Plan:\n1. Lumbar radiculopathy", "Lumbar", "assessment_and_plan"),
        ("S: LBP.\nO: Tender.\nA: Lumbar strain.\nP: PT.", "Lumbar strain", "assessment_and_plan"),
        ("S: LBP.\nO: Tender.\nA: Lumbar strain.\nP: PT.", "LBP", "subjective"),
        ("S: LBP.\nO: Tender.\nA: Lumbar strain.\nP: PT.", "Tender", "objective"),
        (
            "CLINICAL HISTORY: Back pain.\nFINDINGS: Disc bulge.\nIMPRESSION: Mild DDD.",
            "Disc bulge",
            "findings",
        ),
        (
            "CLINICAL HISTORY: Back pain.\nFINDINGS: Disc bulge.\nIMPRESSION: Mild DDD.",
            "Mild DDD",
            "impression",
        ),
        ("CLINICAL HISTORY: Back pain.\nFINDINGS: Disc bulge.", "Back pain", "clinical_history"),
        ("MRI LUMBAR SPINE: Endplate changes at L1-2.", "Endplate", "imaging"),
        # Both the imaging rule and the unlisted-heading rule match: the first listed wins.
        ("EXAM: CT.,CT ABDOMEN: , Mild facet changes at L4-5.", "Mild facet", "imaging"),
        ("RETURN TO WORK: Off work for L5 pain.", "Off work", "other"),
        ("POSTOPERATIVE DIAGNOSIS: Lumbar stenosis.", "Lumbar", "postoperative_diagnosis"),
        ("HISTORY:,  Back pain.,IMPRESSION:,  Stenosis at L4-5.", "Stenosis", "impression"),
        ("He is here for follow up. The assessment: pain is better.", "pain is", None),
        ("Back pain for 3 weeks.", "Back pain", None),
    ],
)
def test_section(sec_nlp, text, phrase, expected):
    assert section_at(sec_nlp, text, phrase) == expected


# Heading spellings of operative, clinic and radiology notes, written as
# MTSamples writes them (a comma for each line break, with or without a colon).
OP_NOTE = (
    "PREOPERATIVE DIAGNOSES,1. Lumbar stenosis.,2. Spondylolisthesis.,"
    "POSTOPERATIVE DIAGNOSES,1. Same as above.,"
    "PROCEDURES PERFORMED,1. L4-5 laminectomy.,"
    "INDICATIONS FOR THE PROCEDURE: , Leg pain for a year.,"
    "DESCRIPTION OF THE PROCEDURE: , The patient was placed prone."
)


@pytest.mark.parametrize(
    ("text", "phrase", "expected"),
    [
        (OP_NOTE, "Lumbar stenosis", "preoperative_diagnosis"),
        (OP_NOTE, "Same as", "postoperative_diagnosis"),
        (OP_NOTE, "L4-5 laminectomy", "procedure"),
        (OP_NOTE, "Leg pain", "indication"),
        (OP_NOTE, "placed prone", "procedure_detail"),
        ("PREOPERATIVE DIAGNOSIS: , Disc herniation.", "Disc", "preoperative_diagnosis"),
        ("POSTOPERATIVE DIAGNOSIS: , Same.", "Same", "postoperative_diagnosis"),
        ("PRE-OP DX: Disc herniation.\nPOST-OP DX: Same.", "Disc", "preoperative_diagnosis"),
        ("PRE-OP DX: Disc herniation.\nPOST-OP DX: Same.", "Same", "postoperative_diagnosis"),
        ("Preop Diagnosis: Disc herniation.", "Disc", "preoperative_diagnosis"),
        ("Post-procedure diagnosis: Facet arthropathy.", "Facet", "postoperative_diagnosis"),
        ("PREOPERATIVE DIAGNOSIS (ES):,1. Disc herniation.", "Disc", "preoperative_diagnosis"),
        ("POSTOPERATIVE DIAGNOSIS (ES): , Same.", "Same", "postoperative_diagnosis"),
        ("PRE AND POSTOPERATIVE DIAGNOSIS: Stenosis.", "Stenosis", "postoperative_diagnosis"),
        ("DIAGNOSES,1. Discitis at L2-3.", "Discitis", "diagnoses"),
        ("Fever.,DISCHARGE DIAGNOSES,1. Discitis.", "Discitis", "diagnoses"),
        ("FINAL DIAGNOSIS: Discitis.", "Discitis", "diagnoses"),
        ("DIAGNOSES ON DISCHARGE: , Discitis.", "Discitis", "diagnoses"),
        ("ADMITTING DIAGNOSES,1. Back pain.", "Back pain", "diagnoses"),
        ("VIDEO EEG DIAGNOSES:,1. Normal.", "Normal", "diagnoses"),
        ("DIFFERENTIAL DIAGNOSIS: Discitis versus tumor.", "Discitis", "differential_diagnosis"),
        ("INDICATIONS: Back pain.", "Back pain", "indication"),
        ("INDICATION: Low back pain.\nTECHNIQUE: Sagittal images.", "Low back", "indication"),
        ("INDICATION: Low back pain.\nTECHNIQUE: Sagittal images.", "Sagittal", "technique"),
        ("INDICATION FOR SURGERY,The patient has leg pain.", "leg pain", "indication"),
        ("CLINICAL INDICATION: Neck pain.", "Neck pain", "indication"),
        ("REASON FOR PROCEDURE: Facet pain.", "Facet pain", "indication"),
        ("REASON FOR EXAM: Back pain.", "Back pain", "clinical_history"),
        ("PROCEDURE: L4-5 medial branch block.", "L4-5", "procedure"),
        ("TITLE OF OPERATION: L4-5 fusion.", "L4-5", "procedure"),
        ("NAME OF PROCEDURE: L4-5 fusion.", "L4-5", "procedure"),
        ("OPERATION PERFORMED,L4-5 fusion.", "L4-5", "procedure"),
        ("PROCEDURE #1: L4-5 fusion.", "L4-5", "procedure"),
        ("PROCEDURE IN DETAIL: The patient was placed prone.", "placed", "procedure_detail"),
        ("DETAILS OF PROCEDURE: The patient was placed prone.", "placed", "procedure_detail"),
        ("OPERATIVE TECHNIQUE: The patient was placed prone.", "placed", "procedure_detail"),
        # The second PROCEDURE heading of an operative note is its narrative, and
        # so is TECHNIQUE there; a radiology report's TECHNIQUE stays technique.
        ("PROCEDURE PERFORMED: Fusion.,PROCEDURE: The patient was prone.", "Fusion", "procedure"),
        (
            "PROCEDURE PERFORMED: Fusion.,PROCEDURE: The patient was prone.",
            "prone",
            "procedure_detail",
        ),
        (
            "PROCEDURE: L4 block.,TECHNIQUE: The medial branch was found.",
            "medial",
            "procedure_detail",
        ),
        ("OPERATIVE PROCEDURE: L4-5 fusion.", "L4-5", "procedure"),
        ("IMPRESSION/PLAN:,  Lumbar strain.", "Lumbar", "assessment_and_plan"),
        ("IMPRESSION / PLAN: Lumbar strain.", "Lumbar", "assessment_and_plan"),
        ("IMPRESSION AND PLAN: Lumbar strain.", "Lumbar", "assessment_and_plan"),
        ("Assessment/Plan: Lumbar strain.", "Lumbar", "assessment_and_plan"),
        ("A/P: Lumbar strain.", "Lumbar", "assessment_and_plan"),
        ("Tender.,ASSESSMENT,1. Lumbar strain.", "Lumbar", "assessment_and_plan"),
        ("Tender.,IMPRESSION,1. Stenosis at L4-5.", "Stenosis", "impression"),
        ("CONCLUSIONS,1. Mild stenosis.", "Mild", "impression"),
        ("CONCLUSION: Mild stenosis.", "Mild", "impression"),
        ("OPINION: Mild stenosis.", "Mild", "impression"),
        ("FINAL IMPRESSION: Mild stenosis.", "Mild", "impression"),
        ("Diagnostic Impression: Mild stenosis.", "Mild", "impression"),
        # Without a colon, on a line of its own, in upper or title case.
        ("ASSESSMENT AND PLAN\n\n1. Lumbar radiculopathy.", "Lumbar", "assessment_and_plan"),
        ("Assessment and Plan\n1. Lumbar radiculopathy", "Lumbar", "assessment_and_plan"),
        ("History of Present Illness\nPain for 3 weeks.", "Pain for", "history_of_present_illness"),
        ("Tender.\nImpression\nMild stenosis.", "Mild", "impression"),
        # An unlisted heading before a numbered list opens a section of its own.
        ("PLAN: PT.,WORK RESTRICTIONS,1. No lifting.", "No lifting", "other"),
    ],
)
def test_heading_spellings(sec_nlp, text, phrase, expected):
    assert section_at(sec_nlp, text, phrase) == expected


@pytest.mark.parametrize(
    ("text", "phrase", "expected"),
    [
        # Headings words in running prose are text.
        ("Pain improved. The assessment was reviewed with him.", "reviewed", None),
        ("Pain improved.\nWe reviewed the assessment and plan\nwith him.", "with him", None),
        ("Pain improved.\nAssessment was reviewed.", "reviewed", None),
        ("Pain improved, plan to return.", "return", None),
        # Without a colon only upper or title case is a heading.
        ("Pain improved.\nassessment and plan\nReturn.", "Return", None),
        # A title-case line before a comma is a heading only before a numbered list.
        ("Pain improved.,Impression,The patient is better.", "better", None),
        # An upper-case line that is not a heading stays in its section.
        ("ASSESSMENT:\nLUMBAR STENOSIS\nPLAN: PT.", "LUMBAR", "assessment_and_plan"),
        ("ASSESSMENT:,LUMBAR STENOSIS,PLAN: PT.", "LUMBAR", "assessment_and_plan"),
        # Too short to tell from a list of tests.
        ("IMAGING: Reviewed.,CT,MRI,Fracture at L1.", "Fracture", "imaging"),
    ],
)
def test_no_heading_in_text(sec_nlp, text, phrase, expected):
    assert section_at(sec_nlp, text, phrase) == expected


AI_SCRIBE_NOTE = """CHIEF COMPLAINT

Low back pain.

HISTORY OF PRESENT ILLNESS

Ms. Doe reports back pain for 2 weeks.

REVIEW OF SYSTEMS

Musculoskeletal: Reports back pain.

PHYSICAL EXAMINATION

Back: Tenderness over the lower paraspinals.

VITALS REVIEWED

Blood Pressure: 130/80 mmHg.

RESULTS

X-ray of the lumbar spine shows mild spondylosis at L4-5.

ASSESSMENT AND PLAN

1. Back pain.
Medical Reasoning: I believe her pain is from a kidney stone.
Medical Treatment: Flomax 0.4 mg daily.
Patient Education and Counseling: We discussed hydration.
Additional Testing: CT of the abdomen.
Specialty Referrals: Urology.

2. Hypertension.
Medical Reasoning: Her blood pressure is elevated today.
Medical Treatment: Continue lisinopril.

INSTRUCTIONS

Return in 2 weeks.
"""


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("Low back pain", "chief_complaint"),
        ("Ms. Doe", "history_of_present_illness"),
        ("Musculoskeletal", "review_of_systems"),
        ("Tenderness", "physical_exam"),
        ("130/80", "physical_exam"),
        ("X-ray", "imaging"),
        ("Back pain.", "assessment_and_plan"),
        ("kidney stone", "medical_reasoning"),
        ("Flomax", "plan"),
        ("hydration", "plan"),
        ("CT of the abdomen", "plan"),
        ("Urology", "plan"),
        # The next entry's complaint is the assessment again, not the plan above it.
        ("Hypertension", "assessment_and_plan"),
        ("elevated today", "medical_reasoning"),
        ("lisinopril", "plan"),
        ("Return in", "plan"),
    ],
)
def test_ai_scribe_note(sec_nlp, phrase, expected):
    assert section_at(sec_nlp, AI_SCRIBE_NOTE, phrase) == expected


def test_long_upper_case_line_is_fast(sec_nlp):
    """The heading patterns must not backtrack on a line of upper-case words."""
    import time

    text = " ".join(["LUMBAR SPINE L4-5"] * 3000) + "\n" + ",ABC DEF" * 3000
    start = time.perf_counter()
    sec_nlp(text)
    assert time.perf_counter() - start < 2.0


def test_unlisted_heading_is_not_absorbed(sec_nlp):
    text = "ASSESSMENT: Facet syndrome at L4-5.\nWORK STATUS: Off work until cleared."
    assert section_at(sec_nlp, text, "Facet") == "assessment_and_plan"
    assert section_at(sec_nlp, text, "Off work") == "other"


def test_diagnostic_statement_sections_are_section_categories():
    """The coder's diagnostic-statement policy names categories the sectionizer gives."""
    policy = srsly.read_json(RULES_DIR / "code_families.json")["diagnostic_statement"]
    rules = srsly.read_json(RULES_DIR / "section_rules.json")["section_rules"]
    categories = {rule["category"] for rule in rules}
    operative = policy["operative"]
    named = {*policy["sections"], *operative["cause_sections"], *operative["uncertain_sections"]}
    assert named <= categories
    assert {"medical_reasoning", "postoperative_diagnosis"} <= set(policy["sections"])


def test_round_trip(sec_nlp, tmp_path):
    sec_nlp.to_disk(tmp_path / "p")
    reloaded = spacy.load(tmp_path / "p")
    for text in (
        "S: LBP.\nO: Tender.\nA: Lumbar strain.\nWORK STATUS: off.\nP: PT.",
        OP_NOTE + ",PROCEDURE: The patient was placed prone.",
        AI_SCRIBE_NOTE,
    ):
        assert [section_of(t) for t in reloaded(text)] == [section_of(t) for t in sec_nlp(text)]


def test_real_radiology_note_has_findings_and_impression(sec_nlp):
    with shared_corpus("mtsamples_spine.jsonl").open() as f:
        notes = [json.loads(line) for line in f]
    radiology = [n for n in notes if n["specialty"] == "Radiology" and "IMPRESSION:" in n["text"]]
    assert radiology
    for note in radiology[:20]:
        doc = sec_nlp(note["text"])
        categories = {section_of(t) for t in doc}
        assert "impression" in categories, note["id"]


# How the real notes write the headings the diagnostic statement comes from:
# at a line start or after the comma left for one, with a colon or before a
# numbered list ("POSTOPERATIVE DIAGNOSES,1. ...").
_REAL_HEADINGS = {
    "PREOPERATIVE DIAGNOSIS": "preoperative_diagnosis",
    "PREOPERATIVE DIAGNOSES": "preoperative_diagnosis",
    "POSTOPERATIVE DIAGNOSIS": "postoperative_diagnosis",
    "POSTOPERATIVE DIAGNOSES": "postoperative_diagnosis",
    "DIAGNOSIS": "diagnoses",
    "DIAGNOSES": "diagnoses",
    "DISCHARGE DIAGNOSES": "diagnoses",
    "FINAL DIAGNOSES": "diagnoses",
    "IMPRESSION": "impression",
    "CONCLUSION": "impression",
    "CONCLUSIONS": "impression",
    "ASSESSMENT": "assessment_and_plan",
    "ASSESSMENT AND PLAN": "assessment_and_plan",
    "ASSESSMENT/PLAN": "assessment_and_plan",
    "IMPRESSION/PLAN": "assessment_and_plan",
    "IMPRESSION AND PLAN": "assessment_and_plan",
    "INDICATION": "indication",
    "INDICATIONS": "indication",
    "INDICATIONS FOR PROCEDURE": "indication",
    "PROCEDURE PERFORMED": "procedure",
    "PROCEDURES PERFORMED": "procedure",
    "OPERATION PERFORMED": "procedure",
    "DESCRIPTION OF PROCEDURE": "procedure_detail",
    "PROCEDURE IN DETAIL": "procedure_detail",
}
_REAL_HEADING = re.compile(
    r"(?:^|,)\s*("
    + "|".join(sorted(map(re.escape, _REAL_HEADINGS), key=len, reverse=True))
    + r")\s*(?::|,(?=\s*\d))"
)


def test_real_note_headings_are_named(sec_nlp):
    with shared_corpus("mtsamples_spine.jsonl").open() as f:
        notes = [json.loads(line) for line in f]
    found = 0
    for note in notes:
        text = note["text"]
        doc = sec_nlp(text)
        starts = {s.title_start: s.category for s in doc._.sections}
        for m in _REAL_HEADING.finditer(text):
            heading = doc.char_span(*m.span(1), alignment_mode="expand")
            assert starts.get(heading.start) == _REAL_HEADINGS[m.group(1)], (note["id"], m[1])
            found += 1
    assert found > 300
