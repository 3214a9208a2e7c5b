"""Entity rules: labels, nested spans, abbreviations, modality, treatment detail, linking."""

from __future__ import annotations

import notecoder
from tests.conftest import SAMPLE


def _by_text(result):
    out = {}
    for e in result["entities"]:
        out.setdefault((e["text"], e["label"]), e)
    return out


def test_sample_note_entities(nlp):
    text = SAMPLE.read_text()
    ents = _by_text(notecoder.suggest(text, nlp=nlp))
    assert ("Thoracolumbar junction syndrome", "CONDITION") in ents
    assert ("thoracolumbar junction", "SPINAL_LEVEL") in ents or (
        "Thoracolumbar junction",
        "SPINAL_LEVEL",
    ) in ents
    imaging = ents[("Modic type 1 endplate changes", "IMAGING_FINDING")]
    assert imaging["modality"] == "MRI"
    assert imaging["region"] == "thoracolumbar"
    pt = ents[("physical therapy", "TREATMENT")]
    assert pt["duration"] == "8 weeks"
    assert pt["response"] == "failed"
    assert ents[("T12-L1", "SPINAL_LEVEL")]["levels"] == ["T12", "L1"]
    for e in ents.values():
        assert text[e["start"] : e["end"]] == e["text"]


def test_condition_contains_its_level(nlp):
    result = notecoder.suggest("Assessment: thoracolumbar junction syndrome.", nlp=nlp)
    cond = next(e for e in result["entities"] if e["label"] == "CONDITION")
    level = next(e for e in result["entities"] if e["label"] == "SPINAL_LEVEL")
    assert cond["start"] <= level["start"] and level["end"] <= cond["end"]
    assert cond["region"] == "thoracolumbar"


def test_two_levels_give_two_regions(nlp):
    result = notecoder.suggest("Degenerative disc disease at T12-L1 and L4-5.", nlp=nlp)
    cond = next(e for e in result["entities"] if e["label"] == "CONDITION")
    assert cond["regions"] == ["thoracolumbar", "lumbar"]
    assert cond["levels"] == ["T12", "L1", "L4", "L5"]


def test_levels_go_to_the_nearest_condition(nlp):
    result = notecoder.suggest("Disc herniation at L4-5 and facet arthropathy at L5-S1.", nlp=nlp)
    conds = [e for e in result["entities"] if e["label"] == "CONDITION"]
    assert [c["region"] for c in conds] == ["lumbar", "lumbosacral"]


def test_abbreviation_takes_the_long_forms_label(nlp):
    text = (
        "MRI showed degenerative disc disease (DDD) at L4-5.\n\n"
        "ASSESSMENT: DDD at L4-5 with low back pain."
    )
    result = notecoder.suggest(text, nlp=nlp)
    ddd = [e for e in result["entities"] if e["text"] == "DDD"]
    assert len(ddd) == 1 and ddd[0]["label"] == "CONDITION"
    assert ddd[0]["section"] == "assessment_and_plan"
    assert {c["code"] for c in result["codes"]} == {"M51.360"}


def test_ct_and_xray_modalities(nlp):
    result = notecoder.suggest(
        "CT of the lumbar spine shows endplate erosions at L2-3. "
        "Lumbar x-rays show disc space narrowing at L5-S1.",
        nlp=nlp,
    )
    modality = {e["text"]: e.get("modality") for e in result["entities"]}
    assert modality["endplate erosions"] == "CT"
    assert modality["disc space narrowing"] == "X-ray"


def test_treatment_kinds(nlp):
    text = (
        "He has tried chiropractic care for three months, an epidural steroid injection "
        "with temporary relief, a TLSO brace, and a gabapentin trial."
    )
    result = notecoder.suggest(text, nlp=nlp)
    concepts = {e["concept"] for e in result["entities"] if e["label"] == "TREATMENT"}
    assert concepts >= {"chiropractic", "injection", "bracing", "medication"}


def test_pt_abbreviation_is_not_patient(nlp):
    result = notecoder.suggest("Pt reports low back pain. Failed PT.", nlp=nlp)
    treatments = [e["text"] for e in result["entities"] if e["label"] == "TREATMENT"]
    assert treatments == ["PT"]


def test_phrase_patterns_added_later_match_as_the_note_is_tokenized():
    """Phrase patterns are tokenized by the tokenizer alone (LOWER), no component left disabled."""
    nlp = notecoder.load()
    ruler = nlp.get_pipe("notecoder_entities")
    ruler.add_patterns([{"label": "CONDITION", "pattern": "Junctional L4-5 Syndrome", "id": "t"}])
    assert nlp.disabled == []
    doc = nlp("Assessment: junctional l4-5 syndrome.")
    assert "junctional l4-5 syndrome" in [s.text for s in doc.spans["notecoder"]]
