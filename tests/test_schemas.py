"""Every rule file is checked by its schema: unknown keys and wrong types name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import notecoder
from notecoder.errors import PipelineLoadError
from notecoder.rulefile import RULES_DIR, read_rule_file
from notecoder.schemas import RULE_FILES, schema_for
from tests.conftest import broken_pipeline

RULE_FILE_NAMES = sorted(p.name for p in RULES_DIR.iterdir() if p.suffix in (".json", ".jsonl"))


def _line_after(text: str, *markers: str) -> int:
    """The line (1-based) of the first ``markers[-1]`` after each marker before it, in turn.

    Counts lines independently of the code under test: markers are plain substrings.
    """
    pos = 0
    for marker in markers:
        pos = text.index(marker, pos)
    return text.count("\n", 0, pos) + 1


def _edited(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> tuple[Path, str]:
    """A copy of the rule file ``name`` with ``old`` replaced by ``new`` (``count`` times)."""
    text = (RULES_DIR / name).read_text(encoding="utf-8")
    assert old in text
    edited = text.replace(old, new, count)
    path = tmp_path / name
    path.write_text(edited, encoding="utf-8")
    return path, edited


def _error(path: Path, **kwargs) -> str:
    with pytest.raises(PipelineLoadError) as caught:
        read_rule_file(path, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize("name", RULE_FILE_NAMES)
def test_every_real_rule_file_has_a_schema_and_passes_it(name):
    assert schema_for(name) is not None
    assert read_rule_file(RULES_DIR / name)


def test_every_schema_is_of_a_real_rule_file():
    assert set(RULE_FILES) <= set(RULE_FILE_NAMES)


def test_misspelt_key_in_a_json_file_names_file_line_and_key_path(tmp_path):
    # The typo of issue 13: silently ignored before, coding changed without a word.
    path, text = _edited(tmp_path, "code_families.json", '"split_junctions"', '"split_junction"')
    line = _line_after(text, '"segmental_dysfunction"', '"split_junction"')
    assert _error(path) == (
        f"[E058] rule file {path} line {line}: "
        "unknown key 'split_junction' in concepts.segmental_dysfunction"
    )


def test_wrong_type_of_a_key_repeated_across_the_file_gets_that_keys_line(tmp_path):
    # "family" is on dozens of lines; the error is on the stenosis concept's one.
    old = '"stenosis": {\n      "family": "M48.0"'
    path, text = _edited(tmp_path, "code_families.json", old, old.replace('"M48.0"', "48"))
    line = _line_after(text, '"stenosis": {', '"family"')
    message = _error(path)
    assert message.startswith(f"[E058] rule file {path} line {line}: concepts.stenosis.family: ")
    assert "valid string" in message


def test_unknown_key_deep_in_a_list_of_rules_gets_its_line(tmp_path):
    # "category_after" is also in the description and in other rules: only the
    # key of the "procedure:" rule is misspelt.
    text = (RULES_DIR / "section_rules.json").read_text(encoding="utf-8")
    at = text.index('"category_after"', text.index('"literal": "procedure:"'))
    text = text[:at] + '"categor_after"' + text[at + len('"category_after"') :]
    path = tmp_path / "section_rules.json"
    path.write_text(text, encoding="utf-8")
    index = next(
        k
        for k, rule in enumerate(json.loads(text)["section_rules"])
        if "categor_after" in rule.get("metadata", {})
    )
    assert _error(path) == (
        f"[E058] rule file {path} line {text.count(chr(10), 0, at) + 1}: "
        f"unknown key 'categor_after' in section_rules[{index}].metadata"
    )


def test_wrong_type_is_rejected_not_coerced(tmp_path):
    window = json.loads((RULES_DIR / "levels.json").read_text())["exclusion_window"]
    as_string = f'"exclusion_window": "{window}"'
    path, text = _edited(tmp_path, "levels.json", f'"exclusion_window": {window}', as_string)
    line = _line_after(text, '"exclusion_window"')
    message = _error(path)
    assert message.startswith(f"[E058] rule file {path} line {line}: exclusion_window: ")
    assert "valid integer" in message


def test_a_boolean_written_as_a_number_is_rejected(tmp_path):
    path, text = _edited(tmp_path, "code_families.json", '"by_side": true', '"by_side": 1')
    line = _line_after(text, '"sciatica": {', '"by_side"')
    assert _error(path).startswith(f"[E058] rule file {path} line {line}: pain.sciatica.by_side:")


def test_a_missing_key_is_named_with_its_parent(tmp_path):
    path, text = _edited(tmp_path, "sentence_rules.json", '"soap_letters"', '"soap_letter"')
    line = _line_after(text, '"soap_letter"')
    # The misspelt key is named: it is also what makes soap_letters missing.
    assert _error(path) == f"[E058] rule file {path} line {line}: unknown key 'soap_letter'"


def test_a_broken_regular_expression_is_named(tmp_path):
    path, text = _edited(tmp_path, "entity_attributes.json", '"duration": "', '"duration": "(')
    line = _line_after(text, '"duration"')
    message = _error(path)
    assert message.startswith(f"[E058] rule file {path} line {line}: duration: ")
    assert "not a regular expression" in message


def test_unknown_key_in_a_jsonl_file_names_its_line(tmp_path):
    lines = (RULES_DIR / "entity_patterns.jsonl").read_text(encoding="utf-8").splitlines()
    lines[6] = lines[6].replace('"id":', '"ids":')
    path = tmp_path / "entity_patterns.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _error(path) == f"[E058] rule file {path} line 7: unknown key 'ids'"


def test_jsonl_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "extra_patterns.jsonl"
    good = json.dumps({"label": "CONDITION", "pattern": "a", "id": "a"})
    bad = json.dumps({"label": "CONDITON", "pattern": "b", "id": "b"})
    path.write_text(f"{good}\n\n{good}\n{bad}\n", encoding="utf-8")
    message = _error(path)
    assert message.startswith(f"[E058] rule file {path} line 4: label: ")


def test_a_token_pattern_is_checked_by_spacy(tmp_path):
    path = tmp_path / "extra_patterns.jsonl"
    line = {"label": "PAIN", "pattern": [{"LOWR": "ache"}], "id": "pain"}
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    message = _error(path)
    assert message.startswith(f"[E058] rule file {path} line 1: pattern")
    assert "LOWR" in message


def test_a_rule_file_given_under_another_name_is_checked_as_the_component_reads_it(tmp_path):
    path = tmp_path / "my_sentences.json"
    path.write_text(json.dumps({"continuation_words": [], "heading_words": []}), encoding="utf-8")
    assert _error(path, kind="sentence_rules.json") == (
        f"[E058] rule file {path} line 1: missing key 'soap_letters'"
    )


def test_the_pipeline_does_not_load_with_a_misspelt_rule(tmp_path):
    lines = (RULES_DIR / "terminology_patterns.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"label":', '"lable":')
    broken = broken_pipeline(tmp_path / "spine", "terminology_patterns.jsonl", "\n".join(lines))
    with pytest.raises(PipelineLoadError) as caught:
        notecoder.load(broken)
    assert str(caught.value) == (
        f"[E020] cannot load the pipeline: [E058] rule file "
        f"{broken / 'terminology_patterns.jsonl'} line 3: unknown key 'lable'"
    )


def test_rules_read_from_bytes_are_checked(nlp):
    import srsly
    from spacy.util import load_model_from_config

    fresh = load_model_from_config(nlp.config)
    data = srsly.msgpack_loads(nlp.get_pipe("notecoder_levels").to_bytes())
    data["levels.json"] = data["levels.json"].replace('"exclusion_window"', '"exclusion_windw"')
    with pytest.raises(PipelineLoadError) as caught:
        fresh.get_pipe("notecoder_levels").from_bytes(srsly.msgpack_dumps(data))
    assert str(caught.value) == (
        "[E058] rule file levels.json (from bytes) line 1: unknown key 'exclusion_windw'"
    )


def test_a_flag_message_naming_a_field_its_flag_does_not_fill_is_refused(tmp_path):
    """A message template is checked when read, not when a note first raises the flag."""
    old = "no spine condition is coded as its cause"
    path, text = _edited(tmp_path, "code_families.json", old, old + " at {levels}")
    line = _line_after(text, '"flags"')
    assert _error(path).startswith(f"[E058] rule file {path} line {line}: ")
    assert "PAIN_ONLY's message uses ['levels']" in _error(path)


def test_a_flag_the_spec_does_not_name_is_refused(tmp_path):
    path, _ = _edited(tmp_path, "code_families.json", '"PAIN_ONLY": {', '"PAIN_ONLY_X": {')
    assert "missing ['PAIN_ONLY'], unknown ['PAIN_ONLY_X']" in _error(path)


def test_a_trigger_bound_below_one_is_refused_at_load(tmp_path):
    # A bound of 0 would cut a crowded sentence into pieces of no trigger (each note failing).
    path, text = _edited(
        tmp_path, "context_rules.json", '"max_sentence_triggers": 24', '"max_sentence_triggers": 0'
    )
    line = _line_after(text, '"max_sentence_triggers": 0')
    message = _error(path)
    assert message.startswith(f"[E058] rule file {path} line {line}: max_sentence_triggers: ")
    assert "greater than or equal to 1" in message
