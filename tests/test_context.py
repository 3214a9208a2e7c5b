"""ConText on the clinical phrasings of docs/coding-rules.md section 3 and known medspaCy misses."""

from __future__ import annotations

import pytest

import notecoder


def _entity(result, text):
    found = [e for e in result["entities"] if e["text"].lower() == text.lower()]
    assert found, f"{text!r} not found in {[e['text'] for e in result['entities']]}"
    return found[0]


@pytest.mark.parametrize(
    ("note", "target", "attribute", "trigger"),
    [
        ("No evidence of discitis at L3-4.", "discitis", "negated", "No evidence of"),
        ("He denies back pain.", "back pain", "negated", "denies"),
        ("MRI is negative for discitis.", "discitis", "negated", "is negative for"),
        ("IMPRESSION:\nNo discitis.", "discitis", "negated", "No"),
        ("Assessment: no spinal stenosis.", "spinal stenosis", "negated", "no"),
        ("Discitis was ruled out.", "Discitis", "negated", "was ruled out"),
        ("Rule out discitis.", "discitis", "uncertain", "Rule out"),
        ("Concern for discitis at T12-L1.", "discitis", "uncertain", "Concern for"),
        ("Cannot exclude discitis.", "discitis", "uncertain", "Cannot exclude"),
        ("Findings could represent discitis.", "discitis", "uncertain", "could represent"),
        ("Appearance is consistent with discitis.", "discitis", "uncertain", "consistent with"),
        ("Findings compatible with discitis.", "discitis", "uncertain", "compatible with"),
        ("Changes suggestive of discitis.", "discitis", "uncertain", "suggestive of"),
        ("Probable facet syndrome.", "facet syndrome", "uncertain", "Probable"),
        ("Likely lumbar spondylosis.", "lumbar spondylosis", "uncertain", "Likely"),
        ("Most likely facet syndrome.", "facet syndrome", "uncertain", "Most likely"),
        ("Suspected discitis.", "discitis", "uncertain", "Suspected"),
        ("Questionable spondylolisthesis.", "spondylolisthesis", "uncertain", "Questionable"),
        ("This may be discitis.", "discitis", "uncertain", "may be"),
        ("Facet syndrome vs. discogenic pain.", "Facet syndrome", "uncertain", "vs."),
        (
            "If it worsens, we may consider injections.",
            "injections",
            "hypothetical",
            "we may consider",
        ),
        ("If no better in two weeks, physical therapy.", "physical therapy", "hypothetical", "If"),
        ("History of discitis in 2019, resolved.", "discitis", "historical", "History of"),
        ("History of discitis in 2019, resolved.", "discitis", "negated", "resolved"),
        (
            "Past medical history of lumbar stenosis.",
            "lumbar stenosis",
            "historical",
            "medical history of",
        ),
        ("Mother has degenerative disc disease.", "degenerative disc disease", "family", "Mother"),
    ],
)
def test_context_trigger(nlp, note, target, attribute, trigger):
    result = notecoder.suggest(note, nlp=nlp)
    ent = _entity(result, target)
    assert ent[attribute] is True
    mods = [m for m in ent["modifiers"] if m["attribute"] == attribute]
    assert trigger in [m["text"] for m in mods]
    for m in mods:
        assert note[m["start"] : m["end"]] == m["text"]


@pytest.mark.parametrize(
    ("note", "target"),
    [
        ("Discitis at T12-L1 confirmed on MRI.", "Discitis"),
        ("He failed physical therapy.", "physical therapy"),
        ("PT without relief.", "PT"),
        ("No change in his low back pain.", "low back pain"),
        ("Denies fever but reports low back pain.", "low back pain"),
    ],
)
def test_affirmed_mentions_stay_affirmed(nlp, note, target):
    ent = _entity(notecoder.suggest(note, nlp=nlp), target)
    assert not any(ent[a] for a in ("negated", "uncertain", "hypothetical", "historical", "family"))


def test_negation_scope_ends_at_sentence_and_list_item(nlp):
    note = "Assessment:\n1. No discitis\n2. Facet syndrome at L4-5"
    result = notecoder.suggest(note, nlp=nlp)
    assert _entity(result, "discitis")["negated"] is True
    assert _entity(result, "Facet syndrome")["negated"] is False
