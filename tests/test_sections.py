"""Sections: clinic headings, SOAP, radiology, unlisted headings, serialisation."""

from __future__ import annotations

import json

import pytest
import spacy

from notecoder.sections import DIAGNOSTIC_SECTIONS, section_of
from tests.conftest import SHARED, blank_pipeline


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
        ("POSTOPERATIVE DIAGNOSIS: Lumbar stenosis.", "Lumbar", "diagnoses"),
        ("HISTORY:,  Back pain.,IMPRESSION:,  Stenosis at L4-5.", "Stenosis", "impression"),
        ("He is here for follow up. The assessment: pain is better.", "pain is", None),
        ("Back pain for 3 weeks.", "Back pain", None),
    ],
)
def test_section(sec_nlp, text, phrase, expected):
    assert section_at(sec_nlp, text, phrase) == expected


def test_unlisted_heading_is_not_absorbed(sec_nlp):
    text = "ASSESSMENT: Facet syndrome at L4-5.\nWORK STATUS: Off work until cleared."
    assert section_at(sec_nlp, text, "Facet") == "assessment_and_plan"
    assert section_at(sec_nlp, text, "Off work") == "other"


def test_diagnostic_sections():
    assert {"assessment_and_plan", "impression", "diagnoses"} == DIAGNOSTIC_SECTIONS


def test_round_trip(sec_nlp, tmp_path):
    sec_nlp.to_disk(tmp_path / "p")
    reloaded = spacy.load(tmp_path / "p")
    text = "S: LBP.\nO: Tender.\nA: Lumbar strain.\nWORK STATUS: off.\nP: PT."
    assert [section_of(t) for t in reloaded(text)] == [section_of(t) for t in sec_nlp(text)]


def test_real_radiology_note_has_findings_and_impression(sec_nlp):
    with (SHARED / "corpora" / "mtsamples_spine.jsonl").open() as f:
        notes = [json.loads(line) for line in f]
    radiology = [n for n in notes if n["specialty"] == "Radiology" and "IMPRESSION:" in n["text"]]
    assert radiology
    for note in radiology[:20]:
        doc = sec_nlp(note["text"])
        categories = {section_of(t) for t in doc}
        assert "impression" in categories, note["id"]
