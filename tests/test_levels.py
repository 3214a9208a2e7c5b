"""Spinal level notations (docs/coding-rules.md section 1) and the level component."""

from __future__ import annotations

import json

import pytest
import spacy

from notecoder.levels import parse_level, root_levels, root_pair, root_region
from tests.conftest import blank_pipeline, shared_corpus

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
    path = shared_corpus("mtsamples_spine.jsonl")
    found = 0
    with path.open() as f:
        for line in f:
            doc = levels_nlp(json.loads(line)["text"])
            found += len(doc.spans["notecoder"])
            for span in doc.spans["notecoder"]:
                assert span._.region, span.text
    assert found > 300


# -- v3: run-together levels ("L45"), MRI sequences, slash roots ("C8/T1") --------------

RUN_TOGETHER = [
    ("L34", "L3-L4"),
    ("L45", "L4-L5"),
    ("L5S1", "L5-S1"),
    ("C34", "C3-C4"),
    ("C45", "C4-C5"),
    ("C56", "C5-C6"),
    ("C67", "C6-C7"),
    ("C7T1", "C7-T1"),
    ("T12L1", "T12-L1"),
    ("T1011", "T10-T11"),
    ("T1112", "T11-T12"),
]


@pytest.mark.parametrize(("glued", "written"), RUN_TOGETHER)
def test_run_together_normalises_like_the_hyphenated_level(glued, written):
    assert parse_level(glued) == parse_level(written)


@pytest.mark.parametrize(
    ("text", "levels"),
    [("T12", ("T12",)), ("T11", ("T11",)), ("C78", None), ("L46", None), ("L54", None)],
)
def test_run_together_only_for_two_adjacent_vertebrae(text, levels):
    level = parse_level(text)
    assert (level.levels if level else None) == levels


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Medial branch blocks at L34, L45 and L5S1 bilaterally.",
            [
                ("L34", ["L3", "L4"], "lumbar"),
                ("L45", ["L4", "L5"], "lumbar"),
                ("L5S1", ["L5", "S1"], "lumbosacral"),
            ],
        ),
        ("Epidural catheter advanced to the L45 interspace.", [("L45", ["L4", "L5"], "lumbar")]),
        ("Large C56 disc herniation.", [("C56", ["C5", "C6"], "cervical")]),
        (
            "Injected at L45 and at L5-S1.",
            [("L45", ["L4", "L5"], "lumbar"), ("L5-S1", ["L5", "S1"], "lumbosacral")],
        ),
        ("Mild stenosis at T1112.", [("T1112", ["T11", "T12"], "thoracic")]),
        ("Spur at C7T1 on the left.", [("C7T1", ["C7", "T1"], "cervicothoracic")]),
    ],
)
def test_run_together_levels_in_spinal_context(levels_nlp, text, expected):
    assert _levels(levels_nlp, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Billing: C56 entered for today's visit.",
        "ICD-10 code C56 and C67 were listed by the oncologist.",
        "Form L45 was signed by the patient.",
        "Room C67 was cleaned.",
    ],
)
def test_run_together_alone_is_not_a_level(levels_nlp, text):
    assert _levels(levels_nlp, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "There is increased T2 signal within the cord at C5-6.",
            [("C5-6", ["C5", "C6"], "cervical")],
        ),
        ("Sagittal T1 and T2-weighted images were obtained.", []),
        ("Axial T2 and STIR sequences through the lumbar spine.", []),
        ("T2/STIR hyperintensity in the L2 vertebral body.", [("L2", ["L2"], "lumbar")]),
        ("The lesion is bright on T2 and dark on T1.", []),
        ("Hyperintense on T2, isointense on T1.", []),
        (
            "Decreased T1 and increased T2 signal at C4-5.",
            [("C4-5", ["C4", "C5"], "cervical")],
        ),
        ("Sagittal T1/T2 weighted images.", []),
        ("Several T2 abnormalities in the white matter.", []),
        ("Postcontrast T1 images show no enhancement.", []),
        # Real T1/T2 vertebrae beside MRI words stay levels.
        ("Increased signal in the cord at T2.", [("T2", ["T2"], "thoracic")]),
        (
            "Sagittal T2 images were reviewed. There is a compression fracture of T2.",
            [("T2", ["T2"], "thoracic")],
        ),
        ("Decreased pinprick below T2 on the left.", [("T2", ["T2"], "thoracic")]),
        (
            "Screws were placed at T1 and T2 bilaterally.",
            [("T1", ["T1"], "thoracic"), ("T2", ["T2"], "thoracic")],
        ),
    ],
)
def test_mri_sequences_are_not_levels(levels_nlp, text, expected):
    assert _levels(levels_nlp, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Labs: PT 12.1, PTT 30, INR 1.0.",
        "PT/PTT within normal limits.",
        "Continue PT twice a week.",
        "Heart: regular rhythm, S1/S2 normal.",
        "History of T2 DM, admitted for glucose control.",
        "Ordered a Zephyr Glide T4 wheelchair cushion.",
        "Pump settings were changed on the model S3 device.",
        "Tenderness over the first dorsal compartment of the wrist.",
        "Atrophy of the first dorsal interosseous muscle.",
    ],
)
def test_lab_therapy_device_and_muscle_names_are_not_levels(levels_nlp, text):
    assert _levels(levels_nlp, text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fusion was extended to S1-S2.", [("S1-S2", ["S1", "S2"], "sacral")]),
        (
            "Balloon Kyphoplasty T12 for the compression fracture.",
            [("T12", ["T12"], "thoracic")],
        ),
    ],
)
def test_levels_next_to_exclusion_words_in_spinal_context_stay(levels_nlp, text, expected):
    assert _levels(levels_nlp, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "EMG shows an active right C8/T1 radiculopathy.",
            [("C8/T1", ["C7", "T1"], "cervicothoracic")],
        ),
        ("Chronic left C8/T1 denervation.", [("C8/T1", ["C7", "T1"], "cervicothoracic")]),
        ("Left C6/C7 radiculopathy.", [("C6/C7", ["C5", "C7"], "cervical")]),
        ("Numbness in a C5/C6 distribution.", [("C5/C6", ["C4", "C6"], "cervical")]),
        ("Right L5/S1 radiculopathy.", [("L5/S1", ["L4", "S1"], "lumbosacral")]),
        ("T12/L1 radiculopathy.", [("T12/L1", ["T11", "L1"], "thoracolumbar")]),
        ("Inactive left S1 (L5) radiculopathy.", [("S1 (L5)", ["L4", "S1"], "lumbosacral")]),
        (
            "Decompression of the L5 and S1 nerve roots.",
            [("L5", ["L4", "L5"], "lumbar"), ("S1", ["L5", "S1"], "lumbosacral")],
        ),
        # Disc notations stay discs: one letter, a hyphen, or no root word.
        ("C5/6 radiculopathy.", [("C5/6", ["C5", "C6"], "cervical")]),
        ("L4/5 radiculopathy.", [("L4/5", ["L4", "L5"], "lumbar")]),
        ("C6-C7 radiculopathy.", [("C6-C7", ["C6", "C7"], "cervical")]),
        ("Fusion at C6/C7.", [("C6/C7", ["C6", "C7"], "cervical")]),
    ],
)
def test_slash_roots(levels_nlp, text, expected):
    assert _levels(levels_nlp, text) == expected


def test_c8_t1_pair_has_one_region(levels_nlp):
    doc = levels_nlp("Right C8/T1 radiculopathy.")
    (span,) = doc.spans["notecoder"]
    assert span._.regions == ["cervicothoracic"]


@pytest.mark.parametrize(
    ("upper", "lower", "levels", "regions"),
    [
        ("C8", "T1", ("C7", "T1"), ("cervicothoracic",)),
        ("C6", "C7", ("C5", "C7"), ("cervical",)),
        ("C7", "C8", ("C6", "T1"), ("cervical", "cervicothoracic")),
        ("L5", "S1", ("L4", "S1"), ("lumbosacral",)),
        ("S1", "S2", ("L5", "S2"), ("lumbosacral", "sacral")),
    ],
)
def test_root_pair(upper, lower, levels, regions):
    pair = root_pair(upper, lower)
    assert pair is not None
    assert pair.levels == levels
    assert pair.regions == regions


def test_root_pair_needs_adjacent_roots():
    assert root_pair("C6", "C8") is None
    assert root_pair("T1", "C8") is None


def test_c8_pair_is_roots_whatever_follows():
    assert parse_level("C8/T1") == root_pair("C8", "T1")
    assert parse_level("C7-8") == root_pair("C7", "C8")


def test_c8_t1_radiculopathy_is_one_cervicothoracic_code(code):
    codes, _, _ = code("Assessment: right C8/T1 radiculopathy on EMG.")
    assert codes == {"M54.13"}
