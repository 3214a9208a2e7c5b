"""Spinal level notations (coding-rules.md section 1) and the level component."""

from __future__ import annotations

import json

import pytest
import spacy

from notecoder.levels import parse_level, root_levels, root_region
from tests.conftest import SHARED, blank_pipeline

NOTATIONS = [
    ("T12-L1", ("T12", "L1"), "thoracolumbar"),
    ("T12–L1", ("T12", "L1"), "thoracolumbar"),
    ("T12—L1", ("T12", "L1"), "thoracolumbar"),
    ("T12/L1", ("T12", "L1"), "thoracolumbar"),
    ("T12 to L1", ("T12", "L1"), "thoracolumbar"),
    ("T12 through L1", ("T12", "L1"), "thoracolumbar"),
    ("T12 thru L1", ("T12", "L1"), "thoracolumbar"),
    ("t12-l1", ("T12", "L1"), "thoracolumbar"),
    ("T-12 to L-1", ("T12", "L1"), "thoracolumbar"),
    ("thoracolumbar junction", ("T12", "L1"), "thoracolumbar"),
    ("the thoracolumbar junction", ("T12", "L1"), "thoracolumbar"),
    ("T-12", ("T12",), "thoracic"),
    ("T 12", ("T12",), "thoracic"),
    ("Th12", ("T12",), "thoracic"),
    ("the twelfth thoracic vertebra", ("T12",), "thoracic"),
    ("twelfth thoracic vertebral body", ("T12",), "thoracic"),
    ("T1-T2", ("T1", "T2"), "thoracic"),
    ("T6-7", ("T6", "T7"), "thoracic"),
    ("T11-T12", ("T11", "T12"), "thoracic"),
    ("T7 through T9", ("T7", "T9"), "thoracic"),
    ("L1", ("L1",), "lumbar"),
    ("first lumbar vertebra", ("L1",), "lumbar"),
    ("L4-5", ("L4", "L5"), "lumbar"),
    ("L4/5", ("L4", "L5"), "lumbar"),
    ("L4-L5", ("L4", "L5"), "lumbar"),
    ("L4 - L5", ("L4", "L5"), "lumbar"),
    ("L4–5", ("L4", "L5"), "lumbar"),
    ("L 4-5", ("L4", "L5"), "lumbar"),
    ("L1-L2", ("L1", "L2"), "lumbar"),
    ("L3 to L5", ("L3", "L5"), "lumbar"),
    ("L5-S1", ("L5", "S1"), "lumbosacral"),
    ("L5/S1", ("L5", "S1"), "lumbosacral"),
    ("L5 to S1", ("L5", "S1"), "lumbosacral"),
    ("lumbosacral junction", ("L5", "S1"), "lumbosacral"),
    ("S1", ("S1",), "sacral"),
    ("S2-S3", ("S2", "S3"), "sacral"),
    ("C7-T1", ("C7", "T1"), "cervicothoracic"),
    ("C 7-T 1", ("C7", "T1"), "cervicothoracic"),
    ("cervicothoracic junction", ("C7", "T1"), "cervicothoracic"),
    ("C5-6", ("C5", "C6"), "cervical"),
    ("C2-C3", ("C2", "C3"), "cervical"),
    ("C6/7", ("C6", "C7"), "cervical"),
    ("C5 through C7", ("C5", "C7"), "cervical"),
    ("C4", ("C4",), "cervical"),
    ("C1-C2", ("C1", "C2"), "occipito-atlanto-axial"),
    ("C2", ("C2",), "occipito-atlanto-axial"),
    ("craniocervical junction", ("C0", "C1"), "occipito-atlanto-axial"),
    ("fifth lumbar", ("L5",), "lumbar"),
    ("T15", None, None),
    ("L5-4", None, None),
    ("C9", None, None),
]


@pytest.mark.parametrize(("text", "levels", "region"), NOTATIONS)
def test_notation(text, levels, region):
    level = parse_level(text)
    if levels is None:
        assert level is None
    else:
        assert level is not None
        assert level.levels == levels
        assert level.region == region


def test_at_least_forty_notations():
    assert len([n for n in NOTATIONS if n[1]]) >= 40


def test_range_across_regions_lists_every_region():
    assert parse_level("L3-S1").regions == ("lumbar", "lumbosacral")
    assert parse_level("C6-T2").regions == ("cervical", "cervicothoracic", "thoracic")


@pytest.mark.parametrize(
    ("root", "disc", "region"),
    [
        ("C3", ("C2", "C3"), "cervical"),
        ("C6", ("C5", "C6"), "cervical"),
        ("C8", ("C7", "T1"), "cervicothoracic"),
        ("T6", ("T5", "T6"), "thoracic"),
        ("L1", ("T12", "L1"), "lumbar"),
        ("L5", ("L4", "L5"), "lumbar"),
        ("S1", ("L5", "S1"), "lumbosacral"),
        ("S2", ("S1", "S2"), "sacral"),
    ],
)
def test_nerve_root(root, disc, region):
    assert root_levels(root).levels == disc
    assert root_region(root) == region


@pytest.fixture(scope="module")
def levels_nlp():
    return blank_pipeline("notecoder_sentences", "notecoder_levels")


def _levels(nlp, text):
    doc = nlp(text)
    return [(s.text, s._.levels, s._.region) for s in doc.spans["notecoder"]]


def _words(nlp, text):
    doc = nlp(text)
    return [(s.text, s._.region) for s in doc.spans["notecoder_region_words"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Degenerative disc disease at T12-L1 and L4-5.",
            [("T12-L1", ["T12", "L1"], "thoracolumbar"), ("L4-5", ["L4", "L5"], "lumbar")],
        ),
        (
            "Thoracolumbar junction syndrome.",
            [("Thoracolumbar junction", ["T12", "L1"], "thoracolumbar")],
        ),
        ("Grade 1 anterolisthesis of L5 on S1.", [("L5 on S1", ["L5", "S1"], "lumbosacral")]),
        ("L5 spondylolisthesis.", [("L5", ["L5", "S1"], "lumbosacral")]),
        ("Spondylolisthesis of L4 is stable.", [("L4", ["L4", "L5"], "lumbar")]),
        ("Right L5 radiculopathy.", [("L5", ["L4", "L5"], "lumbar")]),
        ("Numbness in an S1 distribution.", [("S1", ["L5", "S1"], "lumbosacral")]),
        ("Pain in the C6 dermatome.", [("C6", ["C5", "C6"], "cervical")]),
        ("Compression of the left L4 nerve root.", [("L4", ["L3", "L4"], "lumbar")]),
        (
            "At the thoracolumbar junction, L1 has a compression deformity.",
            [
                ("thoracolumbar junction", ["T12", "L1"], "thoracolumbar"),
                ("L1", ["L1"], "thoracolumbar"),
            ],
        ),
        ("There is a compression deformity of L1.", [("L1", ["L1"], "lumbar")]),
        (
            "Fracture of the twelfth thoracic vertebra.",
            [("the twelfth thoracic vertebra", ["T12"], "thoracic")],
        ),
        ("HISTORY:,  Pain at L4-5.,IMPRESSION:,  Stenosis.", [("L4-5", ["L4", "L5"], "lumbar")]),
    ],
)
def test_component_finds_levels(levels_nlp, text, expected):
    assert _levels(levels_nlp, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Sagittal T1-weighted and T2 weighted images were obtained.",
        "Heart: S1 and S2 normal, no murmur.",
        "C3 and C4 complement levels are normal.",
        "Free T4 1.2 ng/dL, T3 normal, TSH normal.",
        "Vitals: T 98.6, P 72.",
        "C1 esterase inhibitor deficiency.",
    ],
)
def test_non_spinal_letters_and_numbers_are_not_levels(levels_nlp, text):
    assert _levels(levels_nlp, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Low back pain and neck pain.", [("Low back", "lumbar"), ("neck", "cervical")]),
        ("Lumbar radiculopathy, mid-back pain.", [("Lumbar", "lumbar"), ("mid-back", "thoracic")]),
        (
            "Thoracic spine and lumbosacral spine films.",
            [("Thoracic spine", "thoracic"), ("lumbosacral", "lumbosacral")],
        ),
        ("Tailbone pain.", [("Tailbone", "sacral")]),
        ("Lumbar puncture was performed.", []),
        ("Cervical lymphadenopathy.", []),
        ("Fracture of the femoral neck.", []),
        ("Thoracic surgery consulted.", []),
        ("Sacral decubitus ulcer.", []),
    ],
)
def test_region_words(levels_nlp, text, expected):
    assert _words(levels_nlp, text) == expected


def test_round_trip(levels_nlp, tmp_path):
    levels_nlp.to_disk(tmp_path / "p")
    reloaded = spacy.load(tmp_path / "p")
    text = "Discitis at T12-L1, L5 radiculopathy, anterolisthesis of L4 on L5, low back pain."
    assert _levels(reloaded, text) == _levels(levels_nlp, text)
    assert _words(reloaded, text) == _words(levels_nlp, text)


def test_never_raises_on_real_notes(levels_nlp):
    path = SHARED / "corpora" / "mtsamples_spine.jsonl"
    found = 0
    with path.open() as f:
        for line in f:
            doc = levels_nlp(json.loads(line)["text"])
            found += len(doc.spans["notecoder"])
            for span in doc.spans["notecoder"]:
                assert span._.region, span.text
    assert found > 300
