"""``notecoder evaluate`` on our own corpus and on prediction files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from notecoder import api
from notecoder.cli import main
from tests.conftest import REPO

GOLD = REPO / "corpora" / "gold" / "notes.jsonl"


def test_evaluate_runs_the_pipeline_on_the_corpus(nlp, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(api, "_nlp", nlp)
    pred = tmp_path / "pred.jsonl"
    assert main(["evaluate", str(GOLD), "--bootstrap", "200", "--write-pred", str(pred)]) == 0
    out = capsys.readouterr().out
    for title in (
        "Summary",
        "Spans per label",
        "Attributes on matched spans",
        "Region assignment",
        "Codes",
        "Flags",
    ):
        assert title in out
    assert "M53.85" in out
    assert len(pred.read_text().splitlines()) == len(GOLD.read_text().splitlines())


def test_evaluate_json_with_predictions_and_compare(nlp, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(api, "_nlp", nlp)
    pred = tmp_path / "pred.jsonl"
    main(["evaluate", str(GOLD), "--bootstrap", "0", "--write-pred", str(pred)])
    capsys.readouterr()
    worse = tmp_path / "worse.jsonl"
    rows = [json.loads(line) for line in pred.open()]
    for r in rows[::2]:
        r["codes"] = []
    worse.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert (
        main(
            [
                "evaluate",
                str(GOLD),
                "--pred",
                str(pred),
                "--compare",
                str(worse),
                "--bootstrap",
                "300",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    codes = next(r for r in report["summary"] if r["level"] == "codes" and r["average"] == "micro")
    assert codes["f1"] == 1.0
    delta = next(r for r in report["compare"] if r["level"] == "codes")
    assert delta["delta"] < 0 and delta["p_value"] < 0.05
    assert report["problems"] == []


def test_strict_mode_stops_on_malformed_gold(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{oops\n')
    assert main(["evaluate", str(bad), "--pred", str(bad), "--strict"]) == 2
    assert f"{bad}:2: bad JSON" in capsys.readouterr().err


def test_context_rules_keep_the_corpus_attribute_scores(nlp):
    """The rules were tuned on the NegEx kit; our own corpus must not pay for it."""
    import notecoder
    from notecoder.evaluate import score

    rows = [json.loads(line) for line in GOLD.open()]
    pred = [
        notecoder.suggest(r["text"], note_id=r["id"], setting=r["setting"], nlp=nlp) for r in rows
    ]
    attributes = score(GOLD, pred, n_boot=0).attributes.set_index("attribute")
    # Measured before the NegEx tuning: negated, uncertain, family 1.0; hypothetical 0.545.
    for name in ("negated", "uncertain", "family"):
        assert attributes.loc[name, "f1"] == 1.0, name
    assert attributes.loc["hypothetical", "f1"] >= 0.545


# -- inputs that hold nothing to evaluate: one line on stderr, exit 2, no pipeline --
SECRET = "Zebulon Quackenbush, lumbar pain"  # stands for note text: must never be echoed
CODED = json.dumps({"id": "a", "text": "Low back pain.", "codes": ["M54.50"]}) + "\n"


def _gold_files(tmp_path) -> dict[str, tuple[Path, str]]:
    """Every kind of file with no gold note: its path, and what the error must say."""
    csv = tmp_path / "notes.csv"
    csv.write_text(f'id,text\n1,"{SECRET}"\n2,"{SECRET}"\n')
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n")
    zero = tmp_path / "zero.jsonl"
    zero.write_bytes(b"")
    binary = tmp_path / "image.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8\xff\xe0" + SECRET.encode())
    latin1 = tmp_path / "note.txt"
    latin1.write_bytes(f"{SECRET}, lésion at L4-5.\n".encode("latin-1"))
    no_id = tmp_path / "no_id.jsonl"
    no_id.write_text("".join(json.dumps({"note": SECRET}) + "\n" for _ in range(3)))
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"id": "a", "text": SECRET}) + "\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.csv").write_text(f"id,text\n1,{SECRET}\n")
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "n1.ann").write_text(f"T1\tPAIN 0 7\t{SECRET[:7]}\n")  # its .txt is missing
    return {
        "csv": (csv, "[E040] no gold notes in {path}: 3 lines read, 3 bad JSON"),
        "blank": (blank, "[E040] no gold notes in {path}: 2 lines read, 2 blank"),
        "0 bytes": (zero, "[E040] no gold notes in {path}: 0 lines read, the file is empty"),
        "binary": (binary, "not UTF-8 text"),
        "latin-1": (latin1, "[E040] no gold notes in {path}: 1 lines read, 1 not UTF-8 text"),
        "no id": (no_id, "3 lines read, 3 missing 'id' or 'text'"),
        "plain notes": (plain, "[E043] no annotations in {path}"),
        "folder": (folder, "[E042] {path} is a folder with no .jsonl or .ann files"),
        "brat": (brat, "[E040] no gold notes in {path}: 0 lines read, 1 .ann without its .txt"),
        "missing": (tmp_path / "missing.jsonl", "[E001] no such file or folder: {path}"),
    }


def _refused(capsys, argv: list[str]) -> str:
    """Run the command; check it failed as a user error in one clean line, and return it."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("notecoder evaluate: ")
    assert "Traceback" not in err
    for word in ("Zebulon", "Quackenbush"):
        assert word not in err and word not in out
    return lines[0]


@pytest.mark.parametrize(
    "kind",
    [
        "csv",
        "blank",
        "0 bytes",
        "binary",
        "latin-1",
        "no id",
        "plain notes",
        "folder",
        "brat",
        "missing",
    ],
)
def test_gold_with_no_notes_is_refused_before_the_pipeline(kind, capsys, tmp_path):
    path, expected = _gold_files(tmp_path)[kind]
    pred = tmp_path / "pred.jsonl"
    line = _refused(capsys, ["evaluate", str(path), "--write-pred", str(pred)])
    assert expected.format(path=path) in line, kind
    assert not pred.exists(), kind  # refused before predicting


@pytest.mark.parametrize(
    ("option", "content", "expected"),
    [
        ("--pred", None, "[E001] no such file or folder"),
        ("--pred", "", "[E041] no predictions in {path}: 0 lines read, the file is empty"),
        ("--compare", f"id,text\n1,{SECRET}\n", "[E041] no predictions in {path}: 2 lines read"),
        ("--mapping", None, "[E001] no such file or folder"),
        ("--mapping", f"labels: {SECRET}", "[E008] {path} is not a JSON mapping file: bad JSON"),
    ],
)
def test_option_files_that_are_missing_or_empty_are_refused(
    option, content, expected, capsys, tmp_path
):
    gold = tmp_path / "gold.jsonl"
    gold.write_text(CODED)
    given = tmp_path / "given.file"
    if content is not None:
        given.write_text(content)
    extra = [] if option == "--pred" else ["--pred", str(gold)]
    line = _refused(capsys, ["evaluate", str(gold), *extra, option, str(given)])
    assert expected.format(path=given) in line


def test_strict_mode_does_not_quote_the_note(capsys, tmp_path):
    gold = tmp_path / "gold.jsonl"
    entity = {"start": 0, "end": 8, "label": "PAIN", "text": SECRET}
    gold.write_text(json.dumps({"id": "a", "text": "Low back pain.", "entities": [entity]}) + "\n")
    line = _refused(capsys, ["evaluate", str(gold), "--pred", str(gold), "--strict"])
    assert f"{gold}:1: entity 0: entity text does not match" in line
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "a.txt").write_text("Low back pain.")
    (brat / "a.ann").write_text(f"T1\tPAIN 0 8\t{SECRET}\n")
    line = _refused(capsys, ["evaluate", str(brat), "--pred", str(gold), "--strict"])
    assert line.endswith("a.ann:1: T1 text does not match the note's text there")


# -- tables without gold behind them are left out, counts print as integers --------
def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gold_without_spans_omits_the_span_tables(capsys, tmp_path):
    rows = [{"id": str(i), "text": "Low back pain.", "codes": ["M54.50"]} for i in range(3)]
    gold = _write(tmp_path / "gold.jsonl", rows)
    html = tmp_path / "report.html"
    argv = ["evaluate", str(gold), "--pred", str(gold), "--bootstrap", "0"]
    assert main([*argv, "--html", str(html)]) == 0
    out = capsys.readouterr().out
    no_spans = "no span annotations in the gold: span, attribute and region scores omitted"
    page = html.read_text()
    for report in (out, page):
        assert no_spans in report and "no flags in the gold: flag scores omitted" in report
        for title in ("Spans per label", "Attributes on matched spans", "Region assignment"):
            assert title not in report
        assert "Codes" in report
    assert "spans strict" not in out and "flags" not in out.split(no_spans)[0]
    assert re.search(r"\(micro\)\s+3\s+0\s+0\s+1\.000", out)  # integers, in the text too
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "spans" not in report and "attributes" not in report and "flags" not in report
    assert report["omitted"] == [no_spans, "no flags in the gold: flag scores omitted"]
    assert {r["level"] for r in report["summary"]} == {"codes"}
    micro = next(r for r in report["codes"] if r["code"] == "(micro)")
    assert (micro["tp"], micro["fp"], micro["fn"]) == (3, 0, 0)
    assert all(isinstance(micro[k], int) for k in ("tp", "fp", "fn"))


def test_html_counts_are_integers(capsys, tmp_path):
    text = "Low back pain. Neck pain."
    spans = [
        {"start": 0, "end": 13, "label": "PAIN", "text": "Low back pain"},
        {"start": 15, "end": 24, "label": "PAIN", "text": "Neck pain"},
    ]
    gold = _write(
        tmp_path / "gold.jsonl",
        [{"id": str(i), "text": text, "entities": spans} for i in range(16)],
    )
    html = tmp_path / "report.html"
    assert main(["evaluate", str(gold), "--pred", str(gold), "--html", str(html)]) == 0
    capsys.readouterr()
    page = html.read_text()
    assert "no codes in the gold: code scores omitted" in page
    assert "<h2>Codes</h2>" not in page and "<h2>Spans per label</h2>" in page
    # PAIN: 32 true positives, no false ones, and "-" for the macro row's counts.
    assert re.search(r"<td>PAIN</td>\s*<td>32</td>\s*<td>0</td>\s*<td>0</td>", page)
    assert re.search(r"<td>\(macro\)</td>\s*<td>-</td>", page)
    assert not re.search(r"<td>32\.0+</td>", page)
    negated = re.search(r"<td>negated</td>\s*<td>(\S+)</td>", page)
    assert negated and negated.group(1) == "0"  # n: gold states no attribute
