"""The ``notecoder`` command as a coder and a script would use it."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from notecoder import api, batch, cli, pipeline, serve
from notecoder.cli import main
from tests.conftest import SAMPLE, broken_pipeline


def test_suggest_text_format_on_sample(nlp, monkeypatch, capsys):
    monkeypatch.setattr(api, "_nlp", nlp)
    assert main(["suggest", str(SAMPLE), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "M53.85" in out
    assert "Other specified dorsopathies, thoracolumbar region" in out
    assert "Documentation-gap flags: none" in out
    assert "[Thoracolumbar junction syndrome at T12-L1]" in out  # evidence quoted in context


def test_suggest_text_format_shows_flags_and_context(nlp, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(api, "_nlp", nlp)
    note = tmp_path / "n.txt"
    note.write_text("Assessment: thoracolumbar back pain. No evidence of discitis.")
    assert main(["suggest", str(note), "--format", "text"]) == 0
    out = capsys.readouterr().out
    assert "PAIN_ONLY" in out
    assert re.search(r"M54\.\d+", out)


def test_suggest_json_from_stdin_inpatient(nlp, monkeypatch, capsys):
    monkeypatch.setattr(api, "_nlp", nlp)
    monkeypatch.setattr(sys, "stdin", _Stdin(b"Assessment: possible discitis at L2-3."))
    assert main(["suggest", "-", "--setting", "inpatient"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [c["code"] for c in result["codes"]] == ["M46.46"]
    assert {f["flag"] for f in result["flags"]} == {"DISCITIS_EXCLUDES1", "UNCERTAIN_DX"}


def test_missing_file_is_a_clear_error(capsys):
    assert main(["suggest", "/nonexistent/note.txt"]) == 2
    err = capsys.readouterr().err
    assert err == "notecoder suggest: /nonexistent/note.txt: No such file or directory\n"


def test_console_script_runs(tmp_path):
    exe = shutil.which("notecoder")
    cmd = [exe] if exe else [sys.executable, "-m", "notecoder.cli"]
    proc = subprocess.run(
        [*cmd, "suggest", str(SAMPLE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [c["code"] for c in json.loads(proc.stdout)["codes"]] == ["M53.85"]


class _Stdin:
    def __init__(self, data: bytes) -> None:
        import io

        self.buffer = io.BytesIO(data)


def test_suggest_names_the_missing_pipeline_file(tmp_path, capsys):
    broken = broken_pipeline(tmp_path / "spine", "code_families.json")
    assert main(["suggest", str(SAMPLE), "--model", str(broken)]) == 2
    assert capsys.readouterr().err == (
        "notecoder suggest: [E020] cannot load the pipeline: [E021] rule file "
        f"{broken / 'code_families.json'}: missing\n"
    )


def test_an_internal_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise KeyError("a note's words")

    monkeypatch.setattr("notecoder.api.suggest", broken)
    assert main(["suggest", str(SAMPLE)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("notecoder suggest: internal error KeyError at cli.py:")
    assert err.endswith("; run again with --debug for the traceback\n") and err.count("\n") == 1
    assert "note's words" not in err
    assert main(["suggest", str(SAMPLE), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("the traceback is above\n")


def test_a_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["batch", "in.jsonl", "--workers", "many"])
    assert exit.value.code == 2
    assert capsys.readouterr().err == (
        "notecoder batch: argument --workers: invalid int value: 'many' "
        "(see notecoder batch --help)\n"
    )


# --- help and version: answered without the pipeline -------------------------------------

#: Runs ``notecoder ARGV`` in a fresh interpreter and fails if spaCy got imported.
_NO_SPACY = """
import sys
from notecoder.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    assert done.code == 0, done.code
heavy = ("spacy", "medspacy", "scispacy", "simple_icd_10_cm")
assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], *([name, "--help"] for name in cli.COMMANDS)],
    ids=lambda argv: " ".join(argv),
)
def test_help_and_version_do_not_import_spacy(argv):
    proc = subprocess.run(
        [sys.executable, "-c", _NO_SPACY, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"{version('notecoder')}\n"


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_has_help_and_shows_its_default():
    commands = _commands(cli.make_parser())
    assert set(commands) == set(cli.COMMANDS)
    formatter = cli.HelpFormatter(prog="notecoder")
    for name, command in commands.items():
        shown = 0
        for action in command._actions:
            where = f"notecoder {name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), where
            if action.required or action.nargs == 0:  # required, or a flag: no default
                continue
            assert "(default: " in formatter._get_help_string(action), where
            shown += 1
        # Each default is printed once, in one wording ("(default:" is never wrapped).
        assert command.format_help().count("(default:") == shown, name


def test_the_command_line_defaults_are_the_librarys():
    parser = cli.make_parser()
    suggest = parser.parse_args(["suggest"])
    assert suggest.setting == inspect.signature(api.suggest).parameters["setting"].default
    run = parser.parse_args(["batch", "--output", "out"])
    options = batch.BatchOptions(output=Path("out"))
    assert (run.workers, run.chunk_size, run.setting, run.timeout, run.format) == (
        options.workers,
        options.chunk_size,
        options.setting,
        options.timeout,
        options.output_format,
    )
    spark = parser.parse_args(["spark", "in", "out"])
    assert (spark.setting, spark.timeout) == (options.setting, options.timeout)
    service = parser.parse_args(["serve"])
    assert (service.timeout, service.max_queue) == (serve.DEFAULT_TIMEOUT, serve.DEFAULT_MAX_QUEUE)
    assert parser.parse_args(["build"]).output == str(pipeline.DEFAULT_MODEL)
    ours = (cli.SETTINGS, cli.TABLES, cli.API_KEY_ENV)
    assert ours == (api.SETTINGS, batch.TABLES, serve.API_KEY_ENV)
