"""CONDITION phrases derived from the tabular list (notecoder.terminology)."""

from __future__ import annotations

import json

import pytest
import simple_icd_10_cm as icd
import srsly

from notecoder import codes
from notecoder.regions import REGIONS
from notecoder.terminology import (
    CONFIG_FILE,
    EXCLUDED_PREFIX,
    HAND_MADE_FILE,
    PATTERNS_FILE,
    PREFIX,
    Derivation,
    _Rules,
    derive,
    derive_patterns,
    load_config,
    read_patterns,
)

ALL_REGIONS: list[str | None] = [None, *REGIONS, "multiple"]


@pytest.fixture(scope="module")
def derivation() -> Derivation:
    return derive(load_config())


@pytest.fixture(scope="module")
def by_phrase(derivation: Derivation) -> dict[str, str]:
    return {p["pattern"]: p["id"] for p in derivation.patterns if isinstance(p["pattern"], str)}


def _stems(patterns: list[dict]) -> set[str]:
    return {p["id"][len(PREFIX) :] for p in patterns if p["id"].startswith(PREFIX)}


@pytest.mark.parametrize(
    ("phrase", "concept"),
    [
        ("kyphosis", "icd:M40.20"),  # "Unspecified kyphosis" wins over "Other kyphosis"
        ("scoliosis", "icd:M41.9"),
        ("postural lordosis", "icd:M40.4"),
        ("scheuermann's disease", "icd:M42.0"),
        ("diffuse idiopathic skeletal hyperostosis", "icd:M48.1"),
        ("ossification of the posterior longitudinal ligament", "icd:M48.8X"),
        ("torticollis", "icd:M43.6"),
        ("congenital scoliosis", EXCLUDED_PREFIX + "Q67.5"),
    ],
)
def test_derived_phrase_and_its_stem(by_phrase, phrase, concept):
    assert by_phrase.get(phrase) == concept


def test_committed_file_is_up_to_date():
    committed = list(srsly.read_jsonl(PATTERNS_FILE))
    assert committed == derive_patterns(load_config()), (
        "pipelines/spine/terminology_patterns.jsonl is stale: run `python -m notecoder.terminology`"
    )


def test_every_stem_resolves_to_its_own_codes():
    """What the coder will do with ``icd:<stem>``: codes.resolve must give the stem's own code."""
    stems = _stems(list(srsly.read_jsonl(PATTERNS_FILE)))
    assert stems
    for stem in stems:
        resolved = {}
        for region in ALL_REGIONS:
            try:
                resolved[region] = codes.resolve(stem, region)
            except codes.CodeNotFound:
                continue
        assert resolved, f"{stem} resolves for no region"
        own = icd.get_description(stem).lower()
        for region, code in resolved.items():
            assert codes.is_billable(code), (stem, region, code)
            assert code == stem or icd.is_descendant(code, stem), (stem, region, code)
            # M45 -> M45.A2 would be a descendant but another condition: the words must match.
            assert own in codes.description(code).lower(), (stem, region, code)


def test_stems_vary_by_region_only(derivation):
    """Every child of a stem that the coder can reach is that stem with a region."""
    for stem in _stems(derivation.patterns):
        if icd.is_leaf(stem):
            continue
        reached = set()
        for region in ALL_REGIONS:
            try:
                reached.add((region, codes.resolve(stem, region)))
            except codes.CodeNotFound:
                continue
        regions = [r for r, _ in reached]
        assert len(regions) == len(set(regions)) and len(reached) >= 2, stem


def test_no_stem_under_a_hand_made_family(derivation):
    owned = list(load_config()["not_derived"])
    for stem in _stems(derivation.patterns):
        for family in owned:
            assert stem != family and not icd.is_descendant(stem, family), (stem, family)


def test_stop_list_and_dropped_words(by_phrase):
    config = load_config()
    for stopped in config["stop"]:
        assert stopped not in by_phrase
    for phrase in by_phrase:
        assert "specified" not in phrase.split() and "other" not in phrase.split()[:1]
    # Bare "lordosis" is derived: the entity ruler drops the normal curve ("the
    # natural lumbar lordosis"), see tests/test_coding_rules_v3.py.
    assert by_phrase["lordosis"] == "icd:M40.5"


def test_stop_list_is_applied_to_a_new_entry():
    config = load_config()
    config["stop"] = [*config["stop"], "kyphosis"]
    phrases = {p["pattern"] for p in derive_patterns(config) if isinstance(p["pattern"], str)}
    assert "kyphosis" not in phrases
    assert "postural kyphosis" in phrases


def test_descriptions_become_natural_phrases():
    rules = _Rules(load_config())

    def texts(text: str) -> set[str]:
        return {p for p, _ in rules.phrases(text) if isinstance(p, str)}

    assert texts("Kyphosis, unspecified") == {"kyphosis"}
    assert texts("Scoliosis, idiopathic") == {"idiopathic scoliosis"}
    assert "kyphosis" in texts("Unspecified kyphosis, thoracic region")
    assert texts("Infection of intervertebral disc (pyogenic), lumbar region") >= {
        "infection of intervertebral disc"
    }
    assert texts("Other forms of scoliosis") == set()
    found = rules.phrases("Diffuse idiopathic skeletal hyperostosis [DISH]")
    assert ([{"ORTH": "DISH"}], 0) in found


def test_family_of_a_hand_made_concept_is_left_to_it():
    """M46.2 derives fine on its own, but code_families.json gives it to a hand-made concept."""
    config = load_config()
    config["nodes"] = {"M46.2": "osteomyelitis of vertebra"}
    alone = derive(config, hand_made=[], families={})
    phrases = {p["pattern"]: p["id"] for p in alone.patterns}
    assert phrases["osteomyelitis of vertebra"] == "icd:M46.2"
    assert phrases["vertebral osteomyelitis"] == "icd:M46.2"
    owned = derive(config, hand_made=[], families={"mine": {"family": "M46.2"}})
    assert owned.patterns == []
    assert owned.dropped == {"M46.2": "owned by the hand-made concept mine"}


def test_schmorls_nodes_derive_but_are_left_to_the_hand_made_imaging_finding(derivation):
    """Two mentions of one span would share their span extensions (concept, regions)."""
    alone = derive(load_config(), hand_made=[], families={})
    phrases = {str(p["pattern"]): p["id"] for p in alone.patterns}
    for phrase in ("schmorl's nodes", "schmorl's node", "schmorl nodes", "schmorl\u2019s nodes"):
        assert phrases[phrase] == "icd:M51.4"
    assert "M51.4" not in _stems(derivation.patterns)
    assert ("schmorl's nodes", "IMAGING_FINDING:bony") in derivation.shadowed


def test_hand_made_pattern_keeps_its_span():
    hand = [{"label": "PAIN", "id": "hand_enthesopathy", "pattern": "Spinal enthesopathy"}]
    result = derive(load_config(), hand_made=hand)
    derived = {str(p["pattern"]) for p in result.patterns}
    assert ("spinal enthesopathy", "PAIN:hand_enthesopathy") in result.shadowed
    # The term is the hand-made concept's: no variant of it is derived either.
    assert "spinal enthesopathy" not in derived
    assert "disorder of ligamentous or muscular attachments of spine" in derived  # other term


def test_no_derived_phrase_ties_with_a_hand_made_one(derivation):
    hand = {
        p["pattern"].lower()
        for p in srsly.read_jsonl(HAND_MADE_FILE)
        if isinstance(p["pattern"], str)
    }
    derived = {p["pattern"] for p in derivation.patterns if isinstance(p["pattern"], str)}
    assert not derived & hand


def test_reader_concatenates_files(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text(json.dumps({"label": "CONDITION", "pattern": "a"}) + "\n")
    second.write_text(json.dumps({"label": "CONDITION", "pattern": "b"}) + "\n")
    assert [p["pattern"] for p in read_patterns([str(first), str(second)])] == ["a", "b"]


def test_entity_ruler_loads_both_files(nlp):
    patterns = nlp.get_pipe("notecoder_entities").patterns
    ids = {p.get("id") for p in patterns}
    assert "icd:M40.20" in ids and "disc_degeneration" in ids
    assert CONFIG_FILE.exists()


def test_pipeline_marks_a_derived_condition(nlp):
    doc = nlp("MRI shows thoracic kyphosis.")
    spans = [s for s in doc.spans["notecoder"] if s.label_ == "CONDITION"]
    assert [(s.text, s._.concept) for s in spans] == [("kyphosis", "icd:M40.20")]
    assert spans[0]._.regions == ["thoracic"]


def test_excluded_term_swallows_the_phrase_inside_it(nlp):
    doc = nlp("Impression: congenital scoliosis.")
    concepts = [s._.concept for s in doc.spans["notecoder"] if s.label_ == "CONDITION"]
    assert concepts == [EXCLUDED_PREFIX + "Q67.5"]
