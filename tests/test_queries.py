"""Draft provider queries: one per query flag, compliant in form, naming no code or fee."""

from __future__ import annotations

import json
import re

import pytest

import notecoder
from notecoder.errors import PipelineLoadError
from notecoder.rulefile import RULES_DIR
from tests.conftest import shared_corpus

CLOSING = ["Other (please specify)", "Unable to determine"]
#: An ICD-10-CM code or family as a query might name it ("M54.5", "M53.8-").
CODE = re.compile(r"\b[A-Z][0-9][0-9A-Z]\.[0-9A-Z]{0,4}")
MONEY = re.compile(r"(?i)\$|\b(reimburs\w*|payment|fee|DRG|revenue|billing)\b")


def check(result: dict, text: str) -> list[str]:
    """Every flag's query as formats.md says; returns the flags with a query."""
    drafted = []
    for flag in result["flags"]:
        query = flag["query"]
        if flag["kind"] == "coding":
            assert query is None, flag
            continue
        drafted.append(flag["flag"])
        assert set(query) == {"title", "question", "options", "indicators"}
        assert query["options"][-2:] == CLOSING and len(query["options"]) >= 3
        assert len(set(query["options"])) == len(query["options"])
        for part in (query["title"], query["question"], *query["options"]):
            assert not CODE.search(part) and not MONEY.search(part), part
        assert query["indicators"], flag
        for indicator in query["indicators"]:
            assert text[indicator["start"] : indicator["end"]] == indicator["text"]
        spans = [(e["start"], e["end"]) for e in flag["evidence"]]
        assert [(i["start"], i["end"]) for i in query["indicators"]] == spans
    return drafted


def test_a_query_in_full(code):
    text = "Assessment: thoracolumbar junction syndrome at T12-L1."
    _, _, result = code(text)
    (imaging,) = [f for f in result["flags"] if f["flag"] == "IMAGING_MISSING"]
    assert imaging["query"] == {
        "title": "Imaging of the thoracolumbar region",
        "question": "The note documents 'thoracolumbar junction syndrome' at T12-L1. No imaging "
        "of the thoracolumbar region is found in the note. Please document any imaging of that "
        "region and its findings.",
        "options": [
            "Imaging was performed (please document the study, its date and findings)",
            "No imaging has been performed",
            "Imaging is planned",
            *CLOSING,
        ],
        "indicators": [
            {
                "start": 12,
                "end": 53,
                "text": "thoracolumbar junction syndrome at T12-L1",
                "section": "assessment_and_plan",
            }
        ],
    }
    assert check(result, text) == ["IMAGING_MISSING", "CONSERVATIVE_CARE_MISSING"]


@pytest.mark.parametrize(
    ("note", "flag", "options"),
    [
        ("Assessment: low back pain.", "PAIN_ONLY", 2),
        ("Assessment: spondylosis. Failed PT.", "REGION_UNSPECIFIED", 8),
        ("Assessment: possible cervical radiculopathy. Neck pain.", "UNCERTAIN_DX", 3),
        ("MRI shows arthropathy at L4-5.\nAssessment: facet syndrome at L4-5.", None, 0),
    ],
)
def test_each_query_flag_gets_its_draft(code, note, flag, options):
    _, _, result = code(note)
    check(result, note)
    if flag:
        (query,) = [f["query"] for f in result["flags"] if f["flag"] == flag]
        assert len(query["options"]) == options + len(CLOSING)


def test_a_region_conflict_offers_both_documented_regions(code):
    note = "Assessment: cervical spondylosis at L4-5."
    _, _, result = code(note)
    (query,) = [f["query"] for f in result["flags"] if f["flag"] == "REGION_CONFLICT"]
    assert query["options"][:3] == ["cervical", "lumbar", "Both regions"]
    assert "'cervical' (cervical) and at L4-5 (lumbar)" in query["question"]


def test_every_query_on_the_real_notes_is_compliant_in_form(nlp):
    """The spine notes and the development set: each query flag has a draft and no draft
    names a code, a fee or a payment."""
    drafted: set[str] = set()
    for name in ("mtsamples_spine.jsonl", "mtsamples_dev_gold.jsonl"):
        for line in shared_corpus(name).open(encoding="utf-8"):
            note = json.loads(line)
            result = notecoder.suggest(
                note["text"], setting=note.get("setting", "outpatient"), nlp=nlp
            )
            drafted.update(check(result, note["text"]))
    assert {"PAIN_ONLY", "IMAGING_MISSING", "CONSERVATIVE_CARE_MISSING", "UNCERTAIN_DX"} <= drafted


def _queries(nlp, tmp_path, change) -> None:
    data = json.loads((RULES_DIR / "provider_queries.json").read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "provider_queries.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    nlp.get_pipe("notecoder_queries").initialize(data_path=path)


def test_a_template_naming_a_code_is_refused_when_loaded(nlp, tmp_path):
    def leading(data):
        data["queries"]["PAIN_ONLY"]["options"].append("Radiculopathy (M54.16)")

    with pytest.raises(PipelineLoadError, match=r"E059.*PAIN_ONLY.*forbidden"):
        _queries(notecoder.load(), tmp_path, leading)


def test_a_template_field_that_carries_codes_is_refused_when_loaded(tmp_path):
    def coded(data):
        data["queries"]["IMAGING_MISSING"]["question"] += " ({coded})"

    with pytest.raises(PipelineLoadError, match=r"E059.*IMAGING_MISSING.*field 'coded'"):
        _queries(notecoder.load(), tmp_path, coded)


def test_an_unknown_key_in_the_templates_is_refused_with_its_line(tmp_path):
    def typo(data):
        data["queries"]["PAIN_ONLY"]["option"] = []

    with pytest.raises(PipelineLoadError, match=r"E058.*line \d+.*option"):
        _queries(notecoder.load(), tmp_path, typo)


def test_without_the_query_component_flags_keep_their_kind_and_no_draft(nlp):
    with nlp.select_pipes(disable=["notecoder_queries"]):
        result = notecoder.suggest("Assessment: low back pain.", nlp=nlp)
    (flag,) = result["flags"]
    assert flag["kind"] == "query" and flag["query"] is None
