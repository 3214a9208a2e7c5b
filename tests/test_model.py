"""`notecoder build` writes a pipeline folder that loads on its own and codes as ``load()`` does."""

from __future__ import annotations

import spacy

import notecoder
from notecoder.rulefile import PIPELINES_DIR
from tests.conftest import SAMPLE


def test_built_model_codes_the_sample_as_the_definition_does(nlp, built_model):
    text = SAMPLE.read_text()
    expected = notecoder.suggest(text, nlp=nlp)
    assert notecoder.suggest(text, nlp=notecoder.load(built_model)) == expected
    assert notecoder.suggest(text, nlp=spacy.load(built_model)) == expected


def test_built_model_names_no_folder_of_the_install(built_model):
    """The rules travel inside the components; the folder they were read from (a
    checkout's or an install's) is no part of the saved pipeline."""
    config = (built_model / "config.cfg").read_text()
    assert str(PIPELINES_DIR) not in config
    assert "rules = null" in config
