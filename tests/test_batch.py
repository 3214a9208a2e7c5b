"""``notecoder batch``: every input format, error rows, SQLite and NOTE_NLP, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from notecoder import api, batch
from notecoder.batch import BatchOptions, run_batch
from notecoder.io.sources import SourceError, iter_notes
from tests.conftest import broken_pipeline, shared_corpus


@pytest.fixture(scope="module")
def spine_notes() -> list[dict[str, str]]:
    """The first 40 MTSamples spine notes: real dictation for the runs to code."""
    with shared_corpus("mtsamples_spine.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(40), f, strict=False)]


@pytest.fixture(autouse=True)
def shared_pipeline(nlp, monkeypatch):
    """In-process runs reuse the session's pipeline instead of building their own."""
    monkeypatch.setattr(batch, "_NLP", nlp)


def run(rows, out, **kw):
    options = BatchOptions(
        output=out,
        workers=kw.pop("workers", 1),
        progress=False,
        chunk_size=kw.pop("chunk_size", 7),
        **kw,
    )
    return run_batch(rows, options)


def results(out):
    return pd.read_parquet(out / "results").sort_values("note_id").reset_index(drop=True)


def test_formats_give_the_same_results(tmp_path, spine_notes):
    ids, texts = [n["id"] for n in spine_notes], [n["text"] for n in spine_notes]
    frame = pd.DataFrame({"note_id": ids, "note_text": texts})
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"id": n["id"], "text": n["text"]}) + "\n" for n in spine_notes)
    )
    frame.to_csv(tmp_path / "in.csv", index=False)
    frame.to_parquet(tmp_path / "in.parquet")
    folder = tmp_path / "txt"
    folder.mkdir()
    for n in spine_notes:
        (folder / f"{n['id']}.txt").write_text(n["text"])
    db = tmp_path / "omop.db"
    with sqlite3.connect(db) as conn:
        frame.to_sql("note", conn, index=False)  # OMOP CDM NOTE: found without options
    outs = []
    for name, rows in [
        ("jsonl", iter_notes(tmp_path / "in.jsonl")),
        ("csv", iter_notes(tmp_path / "in.csv")),
        ("parquet", iter_notes(tmp_path / "in.parquet")),
        ("txt", iter_notes(folder)),
        ("sqlite", iter_notes(db=str(db))),
    ]:
        summary = run(rows, tmp_path / f"out-{name}")
        assert summary["notes"] == len(spine_notes) and summary["errors"] == 0, name
        outs.append(results(tmp_path / f"out-{name}")[["note_id", "codes", "flags"]])
    for other in outs[1:]:
        pd.testing.assert_frame_equal(outs[0], other)
    assert sorted(outs[0]["note_id"]) == sorted(n["id"] for n in spine_notes)


def test_every_tabular_format_reads_the_note_date(tmp_path):
    frame = pd.DataFrame(
        {"note_id": ["a", "b"], "note_text": ["Back pain.", "Neck pain."], "note_date": None}
    )
    frame["note_date"] = pd.to_datetime(["2026-11-02 08:30", None])
    frame.to_parquet(tmp_path / "in.parquet")
    frame.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "in.jsonl").write_text(
        '{"id": "a", "text": "Back pain.", "date": "2026-11-02T08:30:00"}\n'
        '{"id": "b", "text": "Neck pain."}\n'
    )
    with sqlite3.connect(tmp_path / "omop.db") as conn:
        frame.to_sql("note", conn, index=False)
    for source in ("in.parquet", "in.csv", "in.jsonl", "omop.db"):
        rows = list(iter_notes(tmp_path / source))
        assert rows == [("a", "Back pain.", None, "2026-11-02"), ("b", "Neck pain.", None)], source


def test_bad_values_become_error_rows(tmp_path):
    lines = [
        json.dumps({"id": "ok", "text": "Assessment: discitis at T12-L1."}),
        json.dumps({"id": "none", "text": None}),
        json.dumps({"id": "number", "text": 42}),
        json.dumps({"text": "no id"}),
        "{broken",
        json.dumps({"id": "empty", "text": ""}),
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    summary = run(iter_notes(tmp_path / "in.jsonl"), tmp_path / "out")
    frame = results(tmp_path / "out").set_index("note_id")
    assert summary["notes"] == 6
    assert list(frame.loc["ok", "codes"]) == ["M46.45"]
    assert frame.loc["none", "error"] == "note text is missing, not text"
    assert frame.loc["number", "error"] == "note text is int, not text"
    assert frame.loc["in.jsonl:4", "error"] == "missing note id"
    assert frame.loc["in.jsonl:5", "error"] == "bad JSON at line 5"
    assert pd.isna(frame.loc["empty", "error"])
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "binary.txt").write_bytes(b"\xff\xfe\x00\x01")
    run(iter_notes(folder), tmp_path / "out-txt")
    assert results(tmp_path / "out-txt").loc[0, "error"] == "note text is not UTF-8"


def test_note_failing_outside_the_pipeline_is_an_error_row(tmp_path, monkeypatch):
    """An exception past suggest() (here: building the NOTE_NLP rows) costs one note only."""
    real = batch.note_nlp_rows

    def fragile(result):
        if result["note_id"] == "b" and result["error"] is None:
            raise RuntimeError("boom")
        return real(result)

    monkeypatch.setattr(batch, "note_nlp_rows", fragile)
    rows = [("a", "Lumbar stenosis at L4-5.", None), ("b", "Neck pain.", None)]
    rows.append(("c", "Discitis at T12-L1.", None))
    run(rows, tmp_path / "out")
    frame = results(tmp_path / "out").set_index("note_id")
    assert list(frame.index) == ["a", "b", "c"]
    assert frame.loc["b", "error"] == "internal error: RuntimeError"
    assert pd.isna(frame.loc["a", "error"]) and list(frame.loc["a", "codes"])
    assert pd.isna(frame.loc["c", "error"])
    entities = pd.read_parquet(tmp_path / "out" / "entities")
    assert "b" not in set(entities["note_id"])  # no half-written rows of the failed note


def test_missing_column_is_a_clear_error(tmp_path):
    pd.DataFrame({"doc": ["a"], "body": ["x"]}).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(SourceError, match=r"no id column .*columns are \['doc', 'body'\]"):
        list(iter_notes(tmp_path / "in.csv"))
    rows = list(iter_notes(tmp_path / "in.csv", id_col="doc", text_col="body"))
    assert rows == [("a", "x", None)]


def test_timeout_becomes_an_error_row(tmp_path, spine_notes):
    # Long enough that the alarm fires inside the pipeline, where suggest() catches
    # every Exception: the timeout must still be reported as one, and the next note coded.
    rows = [
        ("slow", spine_notes[0]["text"] * 400, None),
        (spine_notes[0]["id"], spine_notes[0]["text"], None),
    ]
    run(rows, tmp_path / "out", timeout=0.2)
    errors = results(tmp_path / "out").set_index("note_id")["error"]
    assert errors["slow"] == "timeout after 0.2 s"
    assert pd.isna(errors[spine_notes[0]["id"]])


def test_note_nlp_out_and_into_sqlite(tmp_path):
    db = tmp_path / "omop.db"
    with sqlite3.connect(db) as conn:
        pd.DataFrame(
            {
                "note_id": ["n1", "n2"],
                "note_text": [
                    "Assessment: discitis at T12-L1. No evidence of spinal stenosis.",
                    "Neck pain.",
                ],
            }
        ).to_sql("note", conn, index=False)
    run(iter_notes(db=str(db)), tmp_path / "out")
    rows = pd.read_parquet(tmp_path / "out" / "note_nlp")
    assert {
        "note_id",
        "snippet",
        "offset",
        "lexical_variant",
        "note_nlp_source_concept_id",
        "icd10cm_code",
        "nlp_system",
        "nlp_date",
        "term_exists",
        "term_temporal",
        "term_modifiers",
    } <= set(rows.columns)
    coded = rows[rows["icd10cm_code"] == "M46.45"].iloc[0]
    assert coded["lexical_variant"] == "discitis at T12-L1" and coded["term_exists"] == "Y"
    negated = rows[rows["snippet"] == "spinal stenosis"].iloc[0]
    assert negated["term_exists"] == "N" and "negated" in negated["term_modifiers"]
    for _ in range(2):  # written twice: replaced, not duplicated
        written = batch.write_note_nlp_sql(tmp_path / "out", str(db))
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT COUNT(*) FROM note_nlp").fetchone()[0]
    assert count == written == len(rows)


def test_vocabulary_does_not_grow_with_the_notes(tmp_path, monkeypatch, spine_notes):
    """Token texts would pile up in spaCy's StringStore: past ``api.NEW_STRINGS_KEPT`` new
    strings, spaCy 3.8 codes each note in a memory zone, which drops them; on 3.7 the
    pipeline is rebuilt."""
    # Each note brings words no earlier test has shown the session's pipeline.
    fresh = " ".join(uuid.uuid4().hex for _ in range(60))
    rows = [(n["id"], f"{n['text']}\nReference {fresh}.", None) for n in spine_notes[:14]]
    first = batch._NLP
    strings = len(first.vocab.strings)
    monkeypatch.setattr(batch, "_BASE_STRINGS", strings)
    run(rows, tmp_path / "before")
    learnt = len(first.vocab.strings)
    assert learnt > strings  # under the bound, the new words are kept
    monkeypatch.setattr(api, "NEW_STRINGS_KEPT", 50)
    fresher = " ".join(uuid.uuid4().hex for _ in range(60))
    rows = [(i, f"{text}\nReference {fresher}.", e) for i, text, e in rows]
    run(rows, tmp_path / "after")
    if hasattr(first, "memory_zone"):
        assert batch._NLP is first and len(first.vocab.strings) == learnt
    else:
        assert batch._NLP is not first
        assert len(batch._NLP.vocab.strings) < len(first.vocab.strings)
    pd.testing.assert_frame_equal(results(tmp_path / "before"), results(tmp_path / "after"))


def test_one_and_two_workers_agree(tmp_path, spine_notes):
    rows = [(n["id"], n["text"], None) for n in spine_notes]
    run(rows, tmp_path / "one", workers=1)
    run(rows, tmp_path / "two", workers=2)
    pd.testing.assert_frame_equal(results(tmp_path / "one"), results(tmp_path / "two"))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_killed_run_resumes_without_loss_or_duplicates(tmp_path, workers, spine_notes):
    source = tmp_path / "in.jsonl"
    notes = spine_notes * 3
    source.write_text(
        "".join(
            json.dumps({"id": f"{n['id']}-{i}", "text": n["text"]}) + "\n"
            for i, n in enumerate(notes)
        )
    )
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "notecoder.cli",
        "batch",
        str(source),
        "--output",
        str(out),
        "--workers",
        workers,
        "--chunk-size",
        "5",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((out / "results").glob("part-*"))) < 3:
        time.sleep(0.05)
    workers_left = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30  # orphaned workers notice and end, writing nothing more
    while time.monotonic() < deadline and any(_running(pid) for pid in workers_left):
        time.sleep(0.2)
    assert not any(_running(pid) for pid in workers_left)
    parts = sorted((out / "results").glob("part-*"))
    assert 3 <= len(parts) < len(notes) / 5, "the run was not killed mid-way"
    first = parts[0].stat().st_mtime_ns
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = list(pd.read_parquet(out / "results")["note_id"])
    assert sorted(ids) == sorted(f"{n['id']}-{i}" for i, n in enumerate(notes))
    assert len(ids) == len(set(ids))
    assert parts[0].stat().st_mtime_ns == first  # completed chunks are not redone
    assert not list(out.rglob("*.tmp"))  # the killed run's half-written part is gone


def test_jsonl_output_keeps_formats_md_results(tmp_path, spine_notes):
    rows = [(n["id"], n["text"], None) for n in spine_notes[:12]]
    options = BatchOptions(
        output=tmp_path / "out", workers=1, chunk_size=5, progress=False, output_format="jsonl"
    )
    summary = run_batch(rows, options)
    lines = [
        json.loads(line)
        for p in sorted((tmp_path / "out" / "results").glob("part-*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    assert [r["note_id"] for r in lines] == [n["id"] for n in spine_notes[:12]]
    assert set(lines[0]) >= {"note_id", "codes", "flags", "entities", "error"}
    assert summary["notes"] == 12


def test_dates_and_html_report(tmp_path, nlp, monkeypatch):
    from notecoder import api
    from notecoder.cli import main

    monkeypatch.setattr(api, "_nlp", nlp)
    texts = [
        "Assessment: thoracolumbar back pain.",
        "Assessment: discitis at T12-L1.",
        "Assessment: low back pain.",
        "Rash.",
    ]
    frame = pd.DataFrame(
        {
            "note_id": list("abcd"),
            "note_text": texts,
            "note_date": ["2026-11-01", "2026-11-01", "2026-11-02", "2026-11-02"],
        }
    )
    frame.to_csv(tmp_path / "notes.csv", index=False)
    report = tmp_path / "report.html"
    assert (
        main(
            [
                "batch",
                str(tmp_path / "notes.csv"),
                "--output",
                str(tmp_path / "out"),
                "--workers",
                "1",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    dates = results(tmp_path / "out").set_index("note_id")["note_date"]
    assert dates.to_dict() == {
        "a": "2026-11-01",
        "b": "2026-11-01",
        "c": "2026-11-02",
        "d": "2026-11-02",
    }
    page = report.read_text()
    assert page.count("<svg") >= 4
    for text in ("M46.45", "PAIN_ONLY", "50.0%", "per day", "assessment_and_plan"):
        assert text in page, text


@pytest.mark.parametrize("name", ["my notes", "o\"brien's notes", "note"])
def test_sql_table_names_are_quoted_not_formatted(tmp_path, name):
    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as conn:
        quoted = '"' + name.replace('"', '""') + '"'
        conn.execute(f"CREATE TABLE {quoted} (note_id TEXT, note_text TEXT)")
        conn.execute(f"INSERT INTO {quoted} VALUES ('n1', 'Assessment: low back pain.')")
    rows = list(iter_notes(db=str(db), table=name))
    assert [r[0] for r in rows] == ["n1"]


def test_sql_injection_in_table_reads_nothing(tmp_path):
    db = tmp_path / "notes.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE note (note_id TEXT, note_text TEXT)")
        conn.execute("CREATE TABLE secret (note_id TEXT, note_text TEXT)")
        conn.execute("INSERT INTO secret VALUES ('s1', 'not for us')")
    attack = "note UNION SELECT * FROM secret"
    with pytest.raises(SourceError, match=r"no table .* its tables: note, secret"):
        list(iter_notes(db=str(db), table=attack))
    with pytest.raises(SourceError):
        list(iter_notes(db=str(db), table="note; DROP TABLE secret"))
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM secret").fetchone() == (1,)


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jsonl", ""), ("header.csv", "note_id,note_text\n"), ("zero.csv", "")],
)
@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_zero_notes_give_empty_tables_and_a_summary(tmp_path, name, content, fmt):
    source = tmp_path / name
    source.write_text(content)
    out = tmp_path / "out"
    summary = batch.run_batch(
        iter_notes(source), batch.BatchOptions(output=out, workers=1, output_format=fmt)
    )
    assert summary["notes"] == 0 and summary["errors"] == 0
    assert json.loads((out / "summary.json").read_text())["notes"] == 0
    if fmt == "parquet":
        for table in batch.TABLES:
            assert pd.read_parquet(out / table).empty


# -- failing well (issue 11) -----------------------------------------------------------
def _write_jsonl(path, notes):
    path.write_text("".join(json.dumps(n) + "\n" for n in notes), encoding="utf-8")
    return path


def _children(pid):
    """The worker processes of a batch run (Linux: /proc lists a process's children)."""
    found = []
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _running(pid):
    """Whether a process still runs (an exited one may linger as a zombie)."""
    try:
        return "State:\tZ" not in (Path("/proc") / str(pid) / "status").read_text()
    except FileNotFoundError:
        return False


def test_worker_killed_mid_run_is_replaced_and_no_note_is_lost(tmp_path, spine_notes):
    notes = [{"id": f"n{i}", "text": n["text"]} for i, n in enumerate(spine_notes * 2)]
    source = _write_jsonl(tmp_path / "in.jsonl", notes)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "notecoder.cli", "batch", str(source), "--output", str(out)]
    cmd += ["--workers", "2", "--chunk-size", "5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((out / "results").glob("part-*"))) < 2:
        time.sleep(0.05)
    victim = _children(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=300)  # never a wait without end
    assert proc.returncode == 0, stderr[-2000:]
    assert "a worker died (killed by SIGKILL)" in stderr
    ids = list(pd.read_parquet(out / "results")["note_id"])
    assert sorted(ids) == sorted(n["id"] for n in notes)  # every note exactly once
    assert json.loads((out / "summary.json").read_text())["errors"] == 0
    assert stdout.startswith(f"{len(notes)} notes, 0 errors")


def test_note_that_kills_its_worker_twice_is_an_error_row(tmp_path, monkeypatch, spine_notes):
    import notecoder.api

    real = notecoder.api.suggest

    def crashing(text, **kw):
        if "CRASH" in text:
            os.kill(os.getpid(), signal.SIGKILL)  # as a segfault or the OOM killer would
        return real(text, **kw)

    monkeypatch.setattr(notecoder.api, "suggest", crashing)  # the forked workers inherit it
    rows = [(n["id"], n["text"], None) for n in spine_notes[:9]]
    rows.insert(4, ("killer", "Low back pain. CRASH", None))
    summary = run(rows, tmp_path / "out", workers=2, chunk_size=3)
    frame = results(tmp_path / "out")
    assert sorted(frame["note_id"]) == sorted(r[0] for r in rows)
    errors = frame.dropna(subset=["error"])
    assert list(errors["note_id"]) == ["killer"]
    assert errors["error"].iloc[0] == "the worker coding this note died twice (killed by SIGKILL)"
    assert summary["error_notes"] == [{"note_id": "killer", "error": errors["error"].iloc[0]}]


def test_pipeline_that_cannot_load_stops_the_run_at_once(tmp_path, capsys):
    from notecoder.cli import main

    source = _write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "text": "Low back pain."}])
    broken = broken_pipeline(tmp_path / "broken", "levels.json")
    started = time.monotonic()
    args = ["batch", str(source), "--output", str(tmp_path / "out"), "--model", str(broken)]
    assert main([*args, "--workers", "2"]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err == (
        "notecoder batch: [E020] cannot load the pipeline: [E021] rule file "
        f"{broken / 'levels.json'}: missing\n"
    )
    assert not (tmp_path / "out").exists()  # nothing created before the pipeline loaded


def test_workers_that_cannot_build_the_pipeline_stop_the_run_with_its_cause(tmp_path, monkeypatch):
    from notecoder.errors import PipelineLoadError

    # Workers build their own pipeline when the main process holds none (spawn start).
    monkeypatch.setattr(batch, "_NLP", None)
    monkeypatch.setattr(batch, "_MODEL", str(broken_pipeline(tmp_path / "broken", "levels.json")))
    options = BatchOptions(output=tmp_path / "out", workers=2, progress=False)
    workers = batch._Workers(options, progress=None)
    started = time.monotonic()
    with pytest.raises(PipelineLoadError, match=r"rule file .*levels\.json: missing"):
        workers.run(iter([(0, [("1", "Low back pain.", None)])]))
    assert time.monotonic() - started < 60
    assert workers.workers == []  # none left behind


def test_resume_with_other_input_or_chunking_stops_with_the_manifest(tmp_path, capsys):
    from notecoder.cli import main

    neck = [{"id": f"a{i}", "text": "Neck pain."} for i in range(6)]
    a = _write_jsonl(tmp_path / "a.jsonl", neck)
    back = [{"id": f"b{i}", "text": "Back pain."} for i in range(9)]
    b = _write_jsonl(tmp_path / "b.jsonl", back)
    out = str(tmp_path / "out")
    common = ["--output", out, "--workers", "1"]
    assert main(["batch", str(a), *common, "--chunk-size", "2"]) == 0
    capsys.readouterr()
    assert main(["batch", str(b), *common, "--chunk-size", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"notecoder batch: [E013] {out} holds a run with other settings (input)")
    assert "--restart" in err and err.count("\n") == 1
    assert main(["batch", str(a), *common, "--chunk-size", "3"]) == 2
    assert "(chunk_size)" in capsys.readouterr().err
    assert sorted(pd.read_parquet(out + "/results")["note_id"]) == [f"a{i}" for i in range(6)]
    assert main(["batch", str(a), *common, "--chunk-size", "2"]) == 0  # same run: resumed
    assert main(["batch", str(b), *common, "--chunk-size", "2", "--restart"]) == 0
    assert sorted(pd.read_parquet(out + "/results")["note_id"]) == [f"b{i}" for i in range(9)]


def test_output_is_checked_before_anything_is_written(tmp_path, capsys):
    from notecoder.cli import main

    source = _write_jsonl(tmp_path / "in.jsonl", [{"doc": "1", "body": "Neck pain."}])
    out = tmp_path / "out"
    assert main(["batch", str(source), "--output", str(out)]) == 2
    assert "no id column (note_id or id)" in capsys.readouterr().err
    assert not out.exists()  # a wrong column leaves no empty folder behind
    (tmp_path / "file").write_text("x")
    good = _write_jsonl(tmp_path / "good.jsonl", [{"id": "1", "text": "Neck pain."}])
    assert main(["batch", str(good), "--output", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == (
        f"notecoder batch: [E010] --output {tmp_path / 'file'} is a file; give a folder\n"
    )
    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "cat.jpg").write_bytes(b"\xff\xd8")
    assert main(["batch", str(good), "--output", str(stranger)]) == 2
    assert "[E012]" in capsys.readouterr().err
    assert sorted(p.name for p in stranger.iterdir()) == ["cat.jpg"]


def test_duplicate_ids_code_the_first_and_report_the_others(tmp_path):
    lines = [
        {"id": 1, "text": "Low back pain."},
        {"id": "2", "text": "Neck pain."},
        {"id": "1", "text": "Thoracic spine pain."},
        {"id": 1.0, "text": "Cervical radiculopathy."},
    ]
    run(iter_notes(_write_jsonl(tmp_path / "in.jsonl", lines)), tmp_path / "out", chunk_size=2)
    frame = pd.read_parquet(tmp_path / "out" / "results")  # input order
    assert list(frame["note_id"]) == ["1", "2", "1", "1"]
    assert list(frame["error"].isna()) == [True, True, False, False]
    assert set(frame["error"].dropna()) == {
        "duplicate note id: note 1 of the input has it too; not coded"
    }
    assert list(frame["codes"].iloc[0]) == ["M54.50"]


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_invalid_utf8_is_an_error_row_under_its_own_id(tmp_path, kind):
    path = tmp_path / f"in.{kind}"
    if kind == "jsonl":
        path.write_bytes(
            b'{"id": "a", "text": "Low back pain."}\n'
            b'{"id": "b", "text": "Caf\xe9 back pain."}\n'
            b'{"id": "c\xff", "text": "Neck pain."}\n'
            b'{"id": "d", "text": "Neck pain."}\n'
        )
    else:
        path.write_bytes(
            b"id,text\na,Low back pain.\nb,Caf\xe9 back pain.\nc\xff,Neck pain.\nd,Neck pain.\n"
        )
    run(iter_notes(path), tmp_path / "out")
    frame = pd.read_parquet(tmp_path / "out" / "results")
    where = "in.jsonl:3" if kind == "jsonl" else "in.csv:row 4"
    assert list(frame["note_id"]) == ["a", "b", where, "d"]
    assert list(frame["error"].fillna("-")) == [
        "-",
        "note text is not UTF-8",
        "note id is not UTF-8",
        "-",
    ]


def test_workers_retire_and_are_replaced_without_a_note_lost(
    tmp_path, monkeypatch, caplog, spine_notes
):
    monkeypatch.setattr(batch, "CHUNKS_PER_WORKER", 2)  # forked workers inherit it
    rows = [(n["id"], n["text"], None) for n in spine_notes[:20]]
    summary = run(rows, tmp_path / "out", workers=2, chunk_size=2)
    assert sorted(results(tmp_path / "out")["note_id"]) == sorted(r[0] for r in rows)
    assert summary["notes"] == 20 and summary["errors"] == 0
    assert not [r for r in caplog.records if r.name == "notecoder.batch"]  # no worker "died"
