"""BRAT standoff: a researcher's folder with a mapping, and our corpus round trip."""

from __future__ import annotations

import json

from notecoder.io import read_annotated
from notecoder.io.brat import read_brat, write_brat
from tests.conftest import REPO

NOTE = "Pt denies back pain. Lumbar DDD at L4-5."


def test_researcher_folder_with_mapping(tmp_path):
    (tmp_path / "n1.txt").write_text(NOTE)
    (tmp_path / "n1.ann").write_text(
        "T1\tSymptom 10 19\tback pain\n"
        "T2\tDisorder 21 31\tLumbar DDD\n"
        "T3\tLevel 35 39\tL4-5\n"
        "T4\tDrug 0 2\tPt\n"
        "A1\tNegation T1\n"
        "A2\tTemporality T2 historical\n"
        "#1\tAnnotatorNotes T2\tchecked by RN\n"
    )
    (tmp_path / "n2.ann").write_text("T1\tSymptom 0 4\tPain\n")  # its .txt is missing
    (tmp_path / "n3.txt").write_text("Neck and low back pain.")
    (tmp_path / "n3.ann").write_text("T1\tSymptom 0 4;9 22\tNeck low back pain\n")
    mapping = tmp_path / "map.json"
    mapping.write_text(
        json.dumps(
            {
                "labels": {"Symptom": "PAIN", "Disorder": "CONDITION", "Level": "SPINAL_LEVEL"},
                "attributes": {"Negation": "negated", "Temporality": "historical"},
            }
        )
    )
    corpus = read_annotated(tmp_path, mapping=mapping)
    note = corpus.by_id()["n1"]
    assert [(e["label"], e["text"]) for e in note.entities] == [
        ("PAIN", "back pain"),
        ("CONDITION", "Lumbar DDD"),
        ("SPINAL_LEVEL", "L4-5"),
    ]
    pain, ddd, _ = note.entities
    assert pain["negated"] is True and pain["historical"] is False
    assert ddd["historical"] is True and ddd["negated"] is False
    problems = [str(p) for p in corpus.problems]
    assert any("n1.ann:4" in p and "unknown label 'Drug'" in p for p in problems)
    assert any("n2.ann" in p and "no n2.txt beside it" in p for p in problems)
    assert any("n3.ann:1" in p and "discontinuous" in p for p in problems)
    assert corpus.by_id()["n3"].entities[0]["text"] == "Neck and low back pain"


def test_gold_corpus_round_trip_is_lossless(tmp_path):
    original = [json.loads(line) for line in (REPO / "corpora/gold/notes.jsonl").open()]
    write_brat(original, tmp_path)
    back = read_brat(tmp_path).by_id()
    assert len(back) == len(original)
    for note in original:
        assert back[note["id"]].to_json() == note


def test_predictions_open_in_brat(nlp, tmp_path):
    import notecoder

    text = "Assessment: no evidence of discitis. Facet syndrome at L4-5."
    result = notecoder.suggest(text, note_id="p1", nlp=nlp) | {"text": text}
    write_brat([result], tmp_path)
    ann = (tmp_path / "p1.ann").read_text()
    assert "\tCONDITION " in ann and "Negated T" in ann
    back = read_brat(tmp_path).by_id()["p1"]
    assert back.codes == [c["code"] for c in result["codes"]]
    assert [e["text"] for e in back.entities] == [e["text"] for e in result["entities"]]


def test_docbin_with_ents_and_span_group(tmp_path):
    import spacy
    from spacy.tokens import DocBin, Span

    nlp = spacy.blank("en")
    doc = nlp("Low back pain at L4-5.")
    doc.ents = [Span(doc, 0, 3, label="PAIN")]
    doc.spans["sc"] = [Span(doc, 0, 3, label="PAIN"), Span(doc, 4, 7, label="SPINAL_LEVEL")]
    doc.user_data["id"] = "d1"
    other = nlp("Neck pain.")
    other.ents = [Span(other, 0, 2, label="SYMPTOM")]
    path = tmp_path / "gold.spacy"
    DocBin(docs=[doc, other], store_user_data=True).to_disk(path)

    ents = read_annotated(path)
    assert [n.id for n in ents.notes] == ["d1", "1"]
    assert ents.notes[0].entities == [
        {"start": 0, "end": 13, "text": "Low back pain", "label": "PAIN"}
    ]
    assert any("unknown label 'SYMPTOM'" in str(p) for p in ents.problems)
    group = read_annotated(path, span_key="sc")
    assert [e["label"] for e in group.notes[0].entities] == ["PAIN", "SPINAL_LEVEL"]
