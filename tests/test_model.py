"""models/spine is the pipeline assembled from pipelines/spine, and loads on its own."""

from __future__ import annotations

import filecmp

import notecoder
from tests.conftest import REPO, SAMPLE

MODEL = REPO / "models" / "spine"


def test_committed_model_matches_a_fresh_build(tmp_path):
    fresh = notecoder.build(tmp_path / "spine")
    compared = filecmp.dircmp(fresh, MODEL)
    stale = _differences(compared)
    assert not stale, f"models/spine is stale ({stale}): run `notecoder build`"


def test_committed_model_codes_the_sample(nlp):
    model = notecoder.load(MODEL)
    text = SAMPLE.read_text()
    assert notecoder.suggest(text, nlp=model) == notecoder.suggest(text, nlp=nlp)


def _differences(cmp: filecmp.dircmp) -> list[str]:
    out = list(cmp.left_only + cmp.right_only + cmp.diff_files)
    for sub in cmp.subdirs.values():
        out.extend(_differences(sub))
    return out
