"""The whole pipeline survives to_disk/from_disk, to_bytes/from_bytes and pickle with
identical results, and each component saves and loads its rules all four ways alike."""

from __future__ import annotations

import json
import pickle

import pytest
import spacy
import srsly
from spacy.language import Language
from spacy.util import load_model_from_config

import notecoder
from notecoder.tokenizer import NoteTokenizer
from tests.conftest import SAMPLE, shared_corpus
from tests.test_gold import GOLD

#: Enough MTSamples spine notes for every component to matter, in well under a minute.
CORPUS_NOTES = 250


def test_round_trip_gives_identical_results(nlp, tmp_path):
    nlp.to_disk(tmp_path / "spine")
    reloaded = spacy.load(tmp_path / "spine")
    also = notecoder.load(tmp_path / "spine")
    notes = [SAMPLE.read_text()] + [g["text"] for g in GOLD[:40]]
    for text in notes:
        expected = notecoder.suggest(text, nlp=nlp)
        assert notecoder.suggest(text, nlp=reloaded) == expected
        assert notecoder.suggest(text, nlp=also) == expected


def test_saved_pipeline_carries_its_rules(nlp, tmp_path):
    nlp.to_disk(tmp_path / "spine")
    saved = {p.relative_to(tmp_path / "spine").as_posix() for p in (tmp_path / "spine").rglob("*")}
    for component in (
        "notecoder_context",
        "notecoder_coder",
        "notecoder_entities",
        "notecoder_levels",
        "notecoder_sectionizer",
        "notecoder_sentences",
    ):
        assert any(p.startswith(component + "/") for p in saved), component


@pytest.fixture(scope="module")
def notes() -> list[str]:
    lines = shared_corpus("mtsamples_spine.jsonl").read_text(encoding="utf-8").splitlines()
    return [SAMPLE.read_text()] + [json.loads(line)["text"] for line in lines[:CORPUS_NOTES]]


@pytest.fixture(scope="module")
def expected(nlp, notes) -> list[dict]:
    return [notecoder.suggest(text, nlp=nlp) for text in notes]


def _from_config(nlp: Language) -> Language:
    """The pipeline the config describes, uninitialised: what ``from_bytes`` fills."""
    return load_model_from_config(nlp.config, auto_fill=True)


def test_bytes_round_trip_gives_identical_results(nlp, notes, expected):
    reloaded = _from_config(nlp).from_bytes(nlp.to_bytes())
    assert [notecoder.suggest(text, nlp=reloaded) for text in notes] == expected


def test_pickled_pipeline_gives_identical_results(nlp, notes, expected):
    # ``nlp`` has coded notes: what a component keeps of the last one must not stop it.
    reloaded = pickle.loads(pickle.dumps(nlp))
    assert [notecoder.suggest(text, nlp=reloaded) for text in notes] == expected


def _parts(nlp: Language) -> dict:
    return {"tokenizer": nlp.tokenizer, **dict(nlp.pipeline)}


def test_every_component_and_the_tokenizer_load_what_they_save(nlp, tmp_path):
    """Bytes and disk hold the same: what either loads gives the same bytes back."""
    by_bytes, by_disk = _parts(_from_config(nlp)), _parts(_from_config(nlp))
    stateless = set()
    for name, part in _parts(nlp).items():
        if not hasattr(part, "to_bytes"):
            stateless.add(name)
            continue
        data = part.to_bytes(exclude=["vocab"])
        by_bytes[name].from_bytes(data, exclude=["vocab"])
        part.to_disk(tmp_path / name, exclude=["vocab"])
        by_disk[name].from_disk(tmp_path / name, exclude=["vocab"])
        assert by_bytes[name].to_bytes(exclude=["vocab"]) == data, name
        assert by_disk[name].to_bytes(exclude=["vocab"]) == data, name
    # Built from their config alone, as spaCy does with a component that saves nothing.
    assert stateless == {"abbreviations", "notecoder_linker"}
    assert isinstance(by_bytes["tokenizer"], NoteTokenizer)


def test_an_excluded_component_is_left_out(nlp):
    reloaded = _from_config(nlp).from_bytes(
        nlp.to_bytes(exclude=["notecoder_coder"]), exclude=["notecoder_coder"]
    )
    assert reloaded.get_pipe("notecoder_coder").rules_data() == {}
    levels = reloaded.get_pipe("notecoder_levels").rules_data()
    assert levels == nlp.get_pipe("notecoder_levels").rules_data()
    assert "error" in notecoder.suggest(SAMPLE.read_text(), nlp=reloaded)


def test_a_components_rule_file_is_excluded_by_its_name(nlp, tmp_path):
    coder = nlp.get_pipe("notecoder_coder")
    assert srsly.msgpack_loads(coder.to_bytes(exclude=["code_families"])) == {}
    coder.to_disk(tmp_path / "coder", exclude=["code_families"])
    assert not (tmp_path / "coder" / "code_families.json").exists()
    ruler = nlp.get_pipe("notecoder_entities")
    assert set(srsly.msgpack_loads(ruler.to_bytes(exclude=["entity_attributes"]))) == {"patterns"}
    fresh = _from_config(nlp).get_pipe("notecoder_entities")
    fresh.from_bytes(ruler.to_bytes(), exclude=["patterns"])
    assert fresh.patterns == [] and fresh.attributes.data == ruler.attributes.data
