"""spaCy and medspaCy conventions: factory contracts, the attribute table, doc.ents,
section_category, displaCy and medspaCy's DocConsumer."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from itertools import islice, pairwise

import medspacy
import pytest
import spacy
from medspacy.io import DocConsumer
from medspacy.section_detection import Sectionizer
from medspacy.visualization import visualize_ent
from spacy import displacy
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans

import notecoder.pipeline  # noqa: F401  (registers the factories)
from notecoder.extensions import ATTRIBUTES, SPANS_KEY
from notecoder.result import doc_to_result
from notecoder.sections import section_of
from tests.conftest import SAMPLE, shared_corpus

_OWNERS = {"doc": Doc, "span": Span, "token": Token}
_LABELS = ("CONDITION", "PAIN", "IMAGING_FINDING", "TREATMENT", "SPINAL_LEVEL")


def _declared(attr: str) -> str:
    """An ATTRIBUTES key as a factory declares it: a span group is "doc.spans"."""
    return "doc.spans" if attr.startswith("doc.spans[") else attr


@pytest.fixture(scope="module")
def metas(nlp):
    """The factory meta of every component, by factory name."""
    return {nlp.get_pipe_meta(name).factory: nlp.get_pipe_meta(name) for name in nlp.pipe_names}


@pytest.fixture(scope="module")
def sample_doc(nlp):
    return nlp(SAMPLE.read_text(encoding="utf-8"))


# -- factory contracts ----------------------------------------------------------------


def test_analyze_pipes_finds_no_problem(nlp, metas):
    analysis = nlp.analyze_pipes(pretty=False)
    assert analysis["problems"] == {name: [] for name in nlp.pipe_names}
    assert all(meta.assigns for meta in metas.values())


def test_analyze_pipes_reports_levels_after_entities():
    """The declarations are what tell a misordered pipeline."""
    nlp = spacy.blank("en")
    for name in ("notecoder_sentences", "notecoder_entities", "notecoder_levels"):
        nlp.add_pipe(name)
    problems = nlp.analyze_pipes(pretty=False)["problems"]
    assert problems["notecoder_entities"] == [
        "doc.spans",
        "doc._.abbreviations",
        "span._.long_form",
    ]
    assert problems["notecoder_levels"] == []


def test_every_declared_custom_attribute_is_registered_and_in_the_table(metas):
    for factory, meta in metas.items():
        for attr in [*meta.assigns, *meta.requires]:
            if "._." not in attr:
                continue
            owner, name = attr.split("._.")
            assert _OWNERS[owner].has_extension(name), (factory, attr)
            assert attr in ATTRIBUTES, (factory, attr)


def test_the_table_is_what_the_factories_declare(metas):
    """Who sets an attribute assigns it; who reads one set in the pipeline requires it.

    An attribute set outside the pipeline (``doc._.setting``, by ``suggest``) is no
    component's requirement: ``analyze_pipes`` would report it unmet.
    """
    for attr, entry in ATTRIBUTES.items():
        for name in [*entry.set_by, *entry.read_by]:
            if "." in name:
                importlib.import_module(name)
            else:
                assert name in metas, (attr, name)
        declared = _declared(attr)
        setters = {name for name in entry.set_by if "." not in name}
        readers = {name for name in entry.read_by if "." not in name} if setters else set()
        assigners = {f for f, meta in metas.items() if declared in meta.assigns}
        requirers = {f for f, meta in metas.items() if declared in meta.requires}
        if declared == "doc.spans":  # (two groups, one declaration)
            assert setters <= assigners and readers <= requirers, attr
        else:
            assert (assigners, requirers) == (setters, readers), attr


def test_every_extension_of_ours_is_in_the_table():
    """Every extension importing notecoder registers or replaces (medspaCy's and
    scispaCy's own registered first, as they are on import) is in the table, as ours.

    In a fresh interpreter: this one has registered everything long ago.
    """
    script = """
import json
import medspacy, scispacy.abbreviation  # noqa: F401
from spacy.tokens.underscore import Underscore

def registered():
    kinds = {"doc": Underscore.doc_extensions, "span": Underscore.span_extensions,
             "token": Underscore.token_extensions}
    return {f"{k}._.{n}": repr(v) for k, table in kinds.items() for n, v in table.items()}

before = registered()
import notecoder.pipeline  # noqa: F401
print(json.dumps(sorted(a for a, v in registered().items() if before.get(a) != v)))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = json.loads(done.stdout)
    assert "span._.concept" in ours and "span._.section_category" in ours
    assert {a for a in ours if a not in ATTRIBUTES} == set()
    assert {a for a in ours if ATTRIBUTES[a].owner != "notecoder"} == set()


def test_entities_score_weights_name_its_scores(nlp, sample_doc):
    """The weights are of what the component's scorer (SpanRuler's) reports."""
    from spacy.training import Example

    weights = nlp.get_pipe_meta("notecoder_entities").default_score_weights
    ruler = nlp.get_pipe("notecoder_entities")
    scores = ruler.score([Example(sample_doc, sample_doc)])
    assert set(weights) <= set(scores)
    assert scores[f"spans_{SPANS_KEY}_f"] == 1.0


# -- doc.ents -------------------------------------------------------------------------


def _check_ents(doc: Doc) -> None:
    ents = list(doc.ents)
    mentions = list(doc.spans[SPANS_KEY])
    assert [(e.start, e.end, e.label_) for e in ents] == [
        (s.start, s.end, s.label_) for s in filter_spans(mentions)
    ]
    assert all(a.end <= b.start for a, b in pairwise(ents))
    # Every mention is an entity or lies inside, or overlaps, one at least as long.
    for span in mentions:
        over = [e for e in ents if e.start < span.end and span.start < e.end]
        assert over and all(len(e) >= len(span) for e in over), span.text
    assert all(e.id_ for e in ents if e.label_ != "SPINAL_LEVEL")  # the concept, as ent_id_


def test_ents_are_the_outermost_mentions(sample_doc):
    _check_ents(sample_doc)
    ents = {(e.text, e.label_) for e in sample_doc.ents}
    assert ("Thoracolumbar junction syndrome", "CONDITION") in ents
    assert ("Modic type 1 endplate changes", "IMAGING_FINDING") in ents
    assert ("T12-L1", "SPINAL_LEVEL") in ents
    assert ("facet injection", "TREATMENT") in ents
    assert ("low back pain", "PAIN") in ents
    # The level inside the condition stays in the span group only.
    nested = [s for s in sample_doc.spans[SPANS_KEY] if s.text == "Thoracolumbar junction"]
    assert [s.label_ for s in nested] == ["SPINAL_LEVEL"]
    assert (nested[0].start, nested[0].end) not in {(e.start, e.end) for e in sample_doc.ents}


def test_ents_and_section_category_on_real_notes(nlp):
    """The first MTSamples spine notes: ents as on the sample, and every mention's
    section_category that of its section."""
    labels = set()
    categories = set()
    with shared_corpus("mtsamples_spine.jsonl").open(encoding="utf-8") as f:
        for doc in nlp.pipe(json.loads(line)["text"] for line in islice(f, 30)):
            _check_ents(doc)
            labels.update(e.label_ for e in doc.ents)
            for span in [*doc.spans[SPANS_KEY], *doc.ents]:
                assert span._.section_category == section_of(span)
                categories.add(span._.section_category)
    assert {"CONDITION", "PAIN", "TREATMENT", "SPINAL_LEVEL"} <= labels <= set(_LABELS)
    assert {"assessment_and_plan", "history_of_present_illness", "findings"} <= categories


def test_ents_change_no_result(nlp, sample_doc):
    """The later components read the span group: a Doc whose ents are taken away
    after the entity component codes the same."""
    doc = nlp.make_doc(sample_doc.text)
    for name, component in nlp.pipeline:
        doc = component(doc)
        if name == "notecoder_entities":
            assert doc.ents
            doc.ents = []
    assert doc_to_result(doc, None) == doc_to_result(sample_doc, None)


# -- section_category ---------------------------------------------------------------


def test_section_category_of_every_mention(sample_doc):
    for span in [*sample_doc.spans[SPANS_KEY], *sample_doc.ents]:
        assert span._.section_category == section_of(span)
        assert span[0]._.section_category == section_of(span)
    category = {e.text: e._.section_category for e in sample_doc.ents}
    assert category["Thoracolumbar junction syndrome"] == "assessment_and_plan"
    assert category["Modic type 1 endplate changes"] == "imaging"
    assert category["facet injection"] == "plan"
    assert category["low back pain"] == "chief_complaint"


def test_medspacy_does_not_take_section_category_back(nlp, sample_doc):
    medspacy.set_extensions()
    Sectionizer(nlp, name="medspacy_sectionizer", rules=None)
    assert Span.get_extension("section_category")[2] is section_of
    assert Token.get_extension("section_category")[2] is section_of
    assert {e._.section_category for e in sample_doc.ents} >= {"imaging", "plan"}


# -- displaCy and medspaCy ----------------------------------------------------------


def test_displacy_names_the_entities(sample_doc):
    html = displacy.render(sample_doc, style="ent")
    for ent in sample_doc.ents:
        assert ent.text in html
    for label in _LABELS:
        assert label in html


def test_medspacy_visualizer_shows_entities_and_context(sample_doc):
    html = visualize_ent(sample_doc, jupyter=False)
    assert "Thoracolumbar junction syndrome" in html
    assert "NEGATED_EXISTENCE" in html  # "No evidence of discitis"
    assert "ASSESSMENT_AND_PLAN" in html  # a section title's category


def test_medspacy_doc_consumer_sees_the_entities(nlp, sample_doc):
    doc = DocConsumer(nlp)(sample_doc)
    frame = doc._.to_dataframe()
    assert list(frame["text"]) == [e.text for e in sample_doc.ents]
    assert list(frame["label_"]) == [e.label_ for e in sample_doc.ents]
    assert list(frame["section_category"]) == [section_of(e) for e in sample_doc.ents]
    negated = set(frame[frame["is_negated"]]["text"])
    assert negated == {"discitis", "leg symptoms"}


def test_every_factory_is_an_entry_point():
    """``spacy.load`` of a packaged pipeline finds each factory without importing notecoder."""
    from importlib.metadata import entry_points

    from spacy.language import Language
    from spacy.util import registry

    import notecoder.factories  # noqa: F401  (registers them)

    declared = {e.name for e in entry_points(group="spacy_factories")}
    ours = {
        name
        for name in Language.factories
        if registry.factories.get(name).__module__ == "notecoder.factories"
    }
    assert ours and ours <= declared
