"""The stages made linear in the note's length give the answers of the quadratic originals.

Speed itself is measured by ``benchmarks/hostile.py``; here each rewrite is checked
against the code it replaces, on real notes and on crafted ones.
"""

from __future__ import annotations

import json
from itertools import islice

import pytest
from medspacy.context import ConText
from scispacy.abbreviation import AbbreviationDetector

from tests.conftest import shared_corpus

CRAFTED = [
    "lumbar disc herniation (LDH) with stenosis (LSS) " * 40,
    "(a) " * 300 + "degenerative disc disease (DDD). DDD at L4-5 (see MRI (2019)).",
    "no back pain, denies radiculopathy, " * 60 + "but stenosis at L4-5.",
    "".join(f"{a}lpha {b}eta disease ({a.upper()}{b.upper()}D). " for a in "abcde" for b in "xyz")
    + "AXD and BYD at L4-5.",
]


@pytest.fixture(scope="module")
def real_notes() -> list[str]:
    """The first 300 MTSamples notes: real text of every specialty."""
    with shared_corpus("mtsamples_all.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in islice(f, 300)]


@pytest.fixture(params=["MTSamples", "crafted"])
def texts(request: pytest.FixtureRequest) -> list[str]:
    """The real notes, then the crafted ones: each rewrite is checked on both."""
    return CRAFTED if request.param == "crafted" else request.getfixturevalue("real_notes")


def run_until(nlp, text: str, last: str):
    doc = nlp.make_doc(text)
    for name, component in nlp.pipeline:
        doc = component(doc)
        if name == last:
            return doc
    raise ValueError(last)


@pytest.mark.parametrize("block", [16384, 3], ids=["whole", "3 parentheses at a time"])
def test_abbreviations_as_scispacy_finds_them(nlp, texts, block, monkeypatch):
    from notecoder import abbreviations

    monkeypatch.setattr(abbreviations, "_BLOCK", block)
    theirs = AbbreviationDetector(nlp, "scispacy")
    for text in texts:
        ours_doc = run_until(nlp, text, "abbreviations")
        their_doc = AbbreviationDetector.__call__(theirs, nlp.make_doc(text))

        def found(doc):
            return sorted(
                (s.start, s.end, s._.long_form.start, s._.long_form.end)
                for s in doc._.abbreviations
            )

        assert found(ours_doc) == found(their_doc)


def test_context_by_sentence_gives_medspacy_edges(nlp, texts):
    component = nlp.get_pipe("notecoder_context")
    for text in texts:
        doc = run_until(nlp, text, "notecoder_context")
        ours = sorted(
            (t.start, t.end, m.modifier_span, m.category) for t, m in doc._.context_graph.edges
        )
        again = run_until(nlp, text, "notecoder_linker")
        for span in again.spans["notecoder"]:
            span._.modifiers = ()
        ConText.__call__(component, again, targets="context_targets")
        theirs = sorted(
            (t.start, t.end, m.modifier_span, m.category) for t, m in again._.context_graph.edges
        )
        assert ours == theirs


def test_sentence_of_is_span_sent_and_sentences_are_bounded(nlp, real_notes):
    from notecoder.extensions import sentence_of

    limit = nlp.get_pipe("notecoder_sentences").data["max_sentence_tokens"]
    for text in real_notes[:100] + CRAFTED:
        doc = nlp(text)
        for span in doc.spans["notecoder"]:
            assert (sentence_of(span).start, sentence_of(span).end) == (
                span.sent.start,
                span.sent.end,
            )
        assert max(len(s) for s in doc.sents) <= limit
    run_on = nlp("stenosis and spondylosis, " * 400)
    lengths = [len(s) for s in run_on.sents]
    assert len(lengths) > 1 and max(lengths) <= limit
    assert all(s[0].nbor(-1).text == "," for s in list(run_on.sents)[1:])  # cut after a comma


def test_pruning_overlapping_matches_as_medspacy_does():
    import random

    from medspacy.common.util import prune_overlapping_matches

    from notecoder.matching import prune_overlapping

    rng = random.Random(20261130)
    for _ in range(2000):
        starts = [rng.randint(0, 40) for _ in range(rng.randint(0, 30))]
        matches = [(rng.randint(0, 3), a, a + rng.randint(1, 6)) for a in starts]
        assert prune_overlapping(list(matches)) == prune_overlapping_matches(list(matches))


def test_the_garbage_collector_is_back_on_after_each_note(nlp):
    import gc

    import notecoder

    assert gc.isenabled()
    notecoder.suggest("Low back pain. " * 50, nlp=nlp)
    assert gc.isenabled()

    class Broken:
        def make_doc(self, text):
            raise RuntimeError("broken")

    assert notecoder.suggest("Neck pain.", nlp=Broken())["error"] == "internal error: RuntimeError"
    assert gc.isenabled()
    gc.disable()  # someone else's choice is left alone
    try:
        notecoder.suggest("Neck pain.", nlp=nlp)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_entity_matches_are_spacys_in_spacys_order(nlp, texts):
    from spacy.pipeline import SpanRuler

    ruler = nlp.get_pipe("notecoder_entities")
    for text in texts:
        doc = run_until(nlp, text, "abbreviations")
        theirs = [(s.start, s.end, s.label_, s.id_) for s in SpanRuler.match(ruler, doc)]
        assert ruler._matches(doc) == theirs


def test_longest_matches_are_those_spacy_filter_spans_keeps(nlp, texts):
    """Every label's matches of real and crafted notes (nested, tied and overlapping),
    and random ones: the matches kept, and their order, as ``filter_spans``."""
    import random

    from spacy.tokens import Span
    from spacy.util import filter_spans

    from notecoder.entities import _longest

    def spacys(doc, matches):
        spans = [Span(doc, s, e, label=label, span_id=i) for s, e, label, i in matches]
        return [(s.start, s.end, s.label_, s.id_) for s in filter_spans(spans)]

    ruler = nlp.get_pipe("notecoder_entities")
    for text in texts:
        doc = run_until(nlp, text, "abbreviations")
        matches = ruler._matches(doc)
        for label in {m[2] for m in matches}:
            same = [m for m in matches if m[2] == label]
            assert _longest(same) == spacys(doc, same)
    doc = nlp.make_doc("word " * 60)
    rng = random.Random(7)
    for _ in range(200):
        starts = sorted(rng.randrange(55) for _ in range(rng.randrange(1, 30)))
        ends = [s + rng.randrange(1, 5) for s in starts]
        ids = [f"c{rng.randrange(3)}" for _ in starts]
        matches = list(zip(starts, ends, ["CONDITION"] * len(starts), ids, strict=True))
        assert _longest(matches) == spacys(doc, matches)


def test_a_note_is_freed_as_soon_as_it_is_coded(nlp):
    """Not left in cycles for the garbage collector (whose pass then walks every object
    of the note), nor kept by a component until the next note."""
    import gc

    from spacy.tokens import Doc

    import notecoder

    def docs() -> int:
        return sum(isinstance(o, Doc) for o in gc.get_objects())

    text = CRAFTED[0] + "Denies neck pain. Possible cervical stenosis at C5-6 and L4-5."
    gc.collect()
    gc.disable()
    try:
        before = docs()
        assert notecoder.suggest(text, nlp=nlp)["codes"]
        assert docs() == before
    finally:
        gc.enable()


def test_every_mention_attribute_reads_its_default_before_it_is_set(nlp):
    from notecoder.extensions import Mention

    span = nlp.make_doc("Low back pain.")[0:3]
    for name in Mention.__slots__:
        assert getattr(span._, name) is (False if name.startswith("is_") else None), name
    span._.concept = "low_back_pain"
    assert span.doc[0:3]._.concept == "low_back_pain"  # another Span over the same words


def test_trigger_scopes_are_medspacys_on_random_sentences(nlp):
    """The scopes ``_update_scopes`` computes with plain arithmetic are those of medspaCy's
    ``ConTextGraph.update_scopes`` (every trigger against every other, by its own
    ``limit_scope``), on random runs of the pipeline's own rules."""
    import random

    from medspacy.context import ConTextGraph, ConTextModifier

    from notecoder.context import _sentence_scope, _update_scopes

    rules = nlp.get_pipe("notecoder_context").rules
    rng = random.Random(20261130)
    for _ in range(1500):
        length, count = rng.randint(1, 120), rng.randint(0, 30)
        spans, position = [], 0
        while len(spans) < count and position < length:
            start = position + rng.choice([0, 0, 1, 2, 5])
            end = start + rng.randint(1, 3)
            spans.append((start, end))
            position = end
        picked = [(rng.choice(rules), s, e) for s, e in spans]
        theirs, ours = ConTextGraph(), ConTextGraph()
        for made in (theirs, ours):
            made.modifiers = [
                ConTextModifier(rule, s, e, None, *_sentence_scope(rule, s, e, 0, position))
                for rule, s, e in picked
            ]
        theirs.update_scopes()
        _update_scopes(ours)
        assert [m.scope_span for m in ours.modifiers] == [m.scope_span for m in theirs.modifiers]


def test_a_sentence_crowded_with_triggers_is_read_in_pieces(nlp):
    """ConText's work in a sentence grows with the square of its triggers; a sentence of
    more than ``max_sentence_triggers`` (none in MTSamples) is read as if the splitter had
    cut it before every further run of that many: the edges are medspaCy's on a Doc cut
    there."""
    component = nlp.get_pipe("notecoder_context")
    cap = component.rules_data()["max_sentence_triggers"]
    text = "stenosis vs no herniation vs possible " * 12 + "mother with scoliosis"
    doc = run_until(nlp, text, "notecoder_context")
    triggers = sorted(start for _, start, _ in component._ConText__matcher(doc))
    assert len(triggers) > 2 * cap and len(list(doc.sents)) == 1
    ours = sorted(
        (t.start, t.end, m.modifier_span, m.category) for t, m in doc._.context_graph.edges
    )
    assert ours

    again = run_until(nlp, text, "notecoder_linker")
    for span in again.spans["notecoder"]:
        span._.modifiers = ()
    for start in triggers[cap::cap]:
        again[start].is_sent_start = True
    ConText.__call__(component, again, targets="context_targets")
    theirs = sorted(
        (t.start, t.end, m.modifier_span, m.category) for t, m in again._.context_graph.edges
    )
    assert ours == theirs
