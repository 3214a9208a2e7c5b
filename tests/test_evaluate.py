"""Evaluation metrics on small gold/pred pairs whose numbers are computed by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from notecoder.evaluate import compare, formatted, match_names, render, score
from notecoder.io.gold import GoldError, Note, read_jsonl, require_notes

TEXT = "Low back pain at L4-5. Discitis at T12. Took PT and naproxen daily."
#       0123456789012345678901234567890123456789012345678901234567890123456789


def ent(start, end, label, **attrs):
    return {"start": start, "end": end, "label": label, "text": TEXT[start:end], **attrs}


GOLD = Note(
    "n1",
    TEXT,
    entities=[
        ent(0, 13, "PAIN", negated=False),
        ent(17, 21, "SPINAL_LEVEL", region="lumbar"),
        ent(23, 31, "CONDITION", negated=True, region="thoracic"),
    ],
)
PRED = Note(
    "n1",
    TEXT,
    entities=[
        ent(4, 13, "PAIN", negated=True),  # overlaps the gold PAIN: lenient only
        ent(17, 21, "SPINAL_LEVEL", region="lumbosacral"),  # exact, wrong region
        ent(35, 38, "CONDITION"),  # no gold: FP, and the gold CONDITION is a FN
        ent(45, 47, "TREATMENT"),  # FP
    ],
)


def row(frame, **where):
    for key, value in where.items():
        frame = frame[frame[key] == value]
    assert len(frame) == 1, where
    return frame.iloc[0]


def test_strict_and_lenient_span_scores():
    s = score([GOLD], [PRED], n_boot=0)
    strict = row(s.spans, mode="strict", label="(micro)")
    assert (strict.tp, strict.fp, strict.fn) == (1, 3, 2)
    assert strict.precision == pytest.approx(0.25)
    assert strict.recall == pytest.approx(1 / 3)
    assert strict.f1 == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))
    lenient = row(s.spans, mode="lenient", label="(micro)")
    assert (lenient.tp, lenient.fp, lenient.fn) == (2, 2, 1)
    assert lenient.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # macro: PAIN 1, SPINAL_LEVEL 1, CONDITION 0, TREATMENT 0
    assert row(s.spans, mode="lenient", label="(macro)").f1 == pytest.approx(0.5)
    assert row(s.spans, mode="strict", label="PAIN").f1 == 0


def test_attributes_and_regions_on_matched_spans():
    s = score([GOLD], [PRED], n_boot=0)
    negated = row(s.attributes, attribute="negated")
    # matched: PAIN (gold False, pred True) -> FP; the gold CONDITION is unmatched.
    assert (negated.n, negated.tp, negated.fp, negated.fn, negated.tn) == (1, 0, 1, 0, 0)
    assert negated.accuracy == 0
    assert row(s.attributes, attribute="family").n == 0  # gold never states it
    level = row(s.regions, label="SPINAL_LEVEL")
    assert (level.n, level.correct, level.accuracy) == (1, 0, 0.0)


def test_codes_with_wildcards():
    gold = [
        Note("a", "x", codes=["M54.*", "M53.85"]),
        Note("b", "x", codes=[]),
        Note("c", "x", codes=["M51.16"]),
    ]
    pred = [
        Note("a", "x", codes=["M54.50", "M54.9", "M46.45"]),
        Note("b", "x", codes=[]),
        Note("c", "x", codes=["M51.16"]),
    ]
    s = score(gold, pred, n_boot=0)
    micro = row(s.codes, code="(micro)")
    assert (micro.tp, micro.fp, micro.fn) == (2, 1, 1)
    assert micro.f1 == pytest.approx(2 / 3)
    assert row(s.codes, code="M54.*").tp == 1  # one gold item, two predictions absorbed
    assert row(s.codes, code="M46.45").fp == 1
    assert row(s.codes, code="M53.85").fn == 1
    # macro over M46.45 (0), M51.16 (1), M53.85 (0), M54.* (1)
    assert row(s.codes, code="(macro)").f1 == pytest.approx(0.5)


def test_match_names():
    matched, extra = match_names(["M54.*", "M46.45"], ["M54.50", "M53.85"])
    assert matched == {"M54.*": ["M54.50"], "M46.45": []}
    assert extra == ["M53.85"]


def test_wildcard_listed_first_leaves_the_exact_code_its_match():
    matched, extra = match_names(["M54.*", "M54.16"], ["M54.16", "M54.50"])
    assert matched == {"M54.*": ["M54.50"], "M54.16": ["M54.16"]}
    assert extra == []


def test_bootstrap_interval_brackets_the_estimate():
    gold = [Note(str(i), "x", flags=["PAIN_ONLY"] if i % 2 else []) for i in range(40)]
    pred = [Note(str(i), "x", flags=["PAIN_ONLY"] if i % 3 else []) for i in range(40)]
    s = score(gold, pred, n_boot=500)
    micro = row(s.flags, flag="(micro)")
    assert micro.f1_low <= micro.f1 <= micro.f1_high
    assert micro.f1_low < micro.f1_high


def test_empty_inputs_score_without_error():
    s = score([], [], n_boot=100)
    assert s.summary.empty or (s.summary["f1"] == 0).all()
    s = score([Note("a", "x", codes=[], flags=[], entities=[])], [], n_boot=100)
    assert s.missing == ["a"]


def test_paired_bootstrap():
    gold = [Note(str(i), "x", codes=["M53.85"]) for i in range(30)]
    weak = [Note(str(i), "x", codes=["M53.85"] if i < 10 else []) for i in range(30)]
    strong = [Note(str(i), "x", codes=["M53.85"] if i < 28 else []) for i in range(30)]
    same = compare(gold, weak, weak, n_boot=300)
    assert row(same, level="codes").delta == 0
    assert row(same, level="codes").p_value == 1.0
    better = row(compare(gold, weak, strong, n_boot=300), level="codes")
    assert better.delta > 0 and better.delta_low > 0
    assert better.p_value < 0.05


def test_malformed_gold_is_reported_with_line_and_the_rest_is_read(tmp_path):
    lines = [
        json.dumps({"id": "ok1", "text": "Low back pain.", "codes": ["M54.50"]}),
        "{not json",
        json.dumps(
            {"id": "off", "text": "short", "entities": [{"start": 2, "end": 50, "label": "PAIN"}]}
        ),
        json.dumps(
            {
                "id": "mismatch",
                "text": "Low back pain.",
                "entities": [{"start": 0, "end": 3, "label": "PAIN", "text": "Neck"}],
            }
        ),
        json.dumps(
            {
                "id": "label",
                "text": "Low back pain.",
                "entities": [{"start": 0, "end": 3, "label": "SYMPTOM"}],
            }
        ),
        json.dumps({"id": "ok1", "text": "again"}),
        json.dumps({"text": "no id"}),
        "",
        json.dumps({"id": "ok2", "text": "Neck pain.", "codes": ["M54.2"]}),
    ]
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(lines) + "\n")
    corpus = read_jsonl(path)
    assert [n.id for n in corpus.notes] == ["ok1", "off", "mismatch", "label", "ok2"]
    messages = [str(p) for p in corpus.problems]
    assert any(m.startswith(f"{path}:2: bad JSON") for m in messages)
    assert any(f"{path}:3:" in m and "outside the text" in m for m in messages)
    assert any(f"{path}:4:" in m and "does not match" in m for m in messages)
    assert any(f"{path}:5:" in m and "unknown label 'SYMPTOM'" in m for m in messages)
    assert any(f"{path}:6:" in m and "duplicate id 'ok1'" in m for m in messages)
    assert any(f"{path}:7:" in m and "missing 'id'" in m for m in messages)
    with pytest.raises(GoldError, match=":2: bad JSON"):
        read_jsonl(path, strict=True)


def test_empty_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    gold = read_jsonl(empty)
    assert gold.notes == [] and gold.problems == []
    s = score(empty, empty, n_boot=100)
    assert s.errors.empty and s.missing == []


def test_why_lines_gave_no_note_is_counted(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"\n"
        b"id,text\n"
        b"caf\xe9 au lait\n"
        b"[1, 2]\n"
        b'{"text": "no id"}\n'
        b'{"id": "k", "text": "kept", "codes": []}\n'
        b'{"id": "s", "text": "stray \xe9 byte", "codes": []}\n'
    )
    corpus = read_jsonl(path)
    assert corpus.lines == 7
    assert dict(corpus.skipped) == {
        "blank": 1,
        "bad JSON": 1,
        "not UTF-8 text": 1,
        "not a JSON object": 1,
        "missing 'id' or 'text'": 1,
    }
    # A stray byte inside a note's text is replaced, as ever: the note is kept.
    assert [n.id for n in corpus.notes] == ["k", "s"]
    assert corpus.notes[1].text == "stray \ufffd byte"
    assert any(f"{path}:3: not UTF-8 text" in str(p) for p in corpus.problems)


def test_require_notes_says_why_in_counts(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("id,text\n1,a\n\n")
    with pytest.raises(
        GoldError, match=r"no gold notes in .*notes.csv: 3 lines read, 2 bad JSON, 1 blank$"
    ):
        require_notes(read_jsonl(path), path)
    with pytest.raises(GoldError, match=r"no predictions in .*: 3 lines read"):
        require_notes(read_jsonl(path), path, predictions=True)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    with pytest.raises(GoldError, match="no annotations in"):
        require_notes(read_jsonl(plain), plain)
    assert require_notes(read_jsonl(plain), plain, predictions=True).notes


def test_levels_without_gold_have_no_rows_and_the_report_says_so():
    gold = [Note("a", "x", codes=["M54.50"]), Note("b", "x", codes=[])]
    pred = [Note("a", "x", codes=["M54.50"], flags=["PAIN_ONLY"], entities=[])]
    s = score(gold, pred, n_boot=0)
    assert s.unannotated == ("entities", "flags")
    for frame in (s.spans, s.attributes, s.regions, s.flags):
        assert frame.empty and len(frame.columns)  # columns kept for code that selects them
    assert set(s.summary["level"]) == {"codes"}
    assert [title for title, _ in s.titled_tables()] == [
        "Summary (95% bootstrap interval of F1)",
        "Codes",
    ]
    assert set(s.to_json()) == {"summary", "codes", "errors", "omitted", "missing_predictions"}
    text = render(s)
    assert "no span annotations in the gold: span, attribute and region scores omitted" in text
    assert "no flags in the gold: flag scores omitted" in text
    assert "Spans per label" not in text and "Flags" not in text
    # An empty list is gold too: "no spans here".
    s = score([Note("a", "x", entities=[], flags=[])], pred, n_boot=0)
    assert s.unannotated == ("codes",)
    assert row(s.spans, mode="lenient", label="(micro)").fp == 0


def test_counts_are_integers_in_tables_json_and_print():
    s = score([GOLD], [PRED], n_boot=50)
    for frame, columns in (
        (s.spans, ("tp", "fp", "fn")),
        (s.attributes, ("n", "tp", "fp", "fn", "tn")),
        (s.regions, ("n", "correct")),
        (s.errors, ("start", "end")),
    ):
        for column in columns:
            assert pd.api.types.is_integer_dtype(frame[column]), column
    micro = next(r for r in s.to_json()["spans"] if r["label"] == "(micro)")
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 3, 2)
    assert all(type(micro[k]) is int for k in ("tp", "fp", "fn"))
    macro = next(r for r in s.to_json()["spans"] if r["label"] == "(macro)")
    assert macro["tp"] is None and isinstance(macro["f1"], float)
    shown = formatted(s.spans).set_index(["mode", "label"])
    assert tuple(shown.loc[("strict", "(micro)"), ["tp", "fp", "fn"]]) == ("1", "3", "2")
    assert shown.loc[("strict", "(macro)"), "tp"] == "-"
    assert shown.loc[("strict", "PAIN"), "precision"] == "0.000"
