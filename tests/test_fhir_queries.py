"""Query flags as FHIR ``Task`` resources: valid R4, linked inside the Bundle, code-free.

Every query flag of a result (coding-rules.md section 4, kind *query*) must reach
the Bundle as a draft ``Task`` beside its ``DetectedIssue``; coding flags must not.
The checks run over every MTSamples spine note so each kind of query flag the
pipeline raises on real dictation is validated, not only the sample's.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.task import Task

import notecoder
from notecoder import serve
from notecoder.fhir import (
    QUERY_INPUT_SYSTEM,
    SPAN_URL,
    TASK_CODE_SYSTEM,
    to_fhir_batch_bundle,
    to_fhir_bundle,
)
from notecoder.pipeline import DEFAULT_PIPELINE

from .conftest import NO_IMAGING, SAMPLE_TEXT, shared_corpus

#: Each flag's kind, from the rule file the pipeline applies (the table of coding-rules.md s4).
KINDS: dict[str, str] = {
    name: rule["kind"]
    for name, rule in json.loads(
        (DEFAULT_PIPELINE / "code_families.json").read_text(encoding="utf-8")
    )["flags"].items()
}
#: An ICD-10-CM code or category as a query could name it: "M53.85", "M54.5", "M53.8-",
#: "M54". Three-character forms that are spinal levels (T10-T12) are not codes.
ICD10CM = re.compile(r"\b(?!T1[0-2]\b)[A-TV-Z]\d[0-9A-Z](?:\.[0-9A-Z]{1,4}|\b)")
#: What no drafted query may contain (a code, fee, payment or quality effect), as the
#: pipeline's provider_queries.json states it; checked here on the FHIR side too.
FORBIDDEN = [
    re.compile(p)
    for p in json.loads((DEFAULT_PIPELINE / "provider_queries.json").read_text(encoding="utf-8"))[
        "forbidden"
    ]
]


def coded(text: str, nlp, note_id: str | None = None) -> dict[str, Any]:
    result = notecoder.suggest(text, note_id=note_id, nlp=nlp)
    assert result["error"] is None, result["error"]
    return result


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == kind]


def references(node: Any) -> Iterator[str]:
    """Every ``reference`` string anywhere under ``node`` (display-only ones have none)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def texts(node: Any, key: str = "") -> Iterator[str]:
    """Every string a reader of ``node`` sees: not references, systems or URLs."""
    if isinstance(node, dict):
        for k, value in node.items():
            yield from texts(value, k)
    elif isinstance(node, list):
        for item in node:
            yield from texts(item, key)
    elif isinstance(node, str) and key not in ("reference", "system", "url"):
        yield node


def inputs(task: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    assert all(i["type"]["coding"][0]["system"] == QUERY_INPUT_SYSTEM for i in task["input"])
    return [i for i in task["input"] if i["type"]["coding"][0]["code"] == kind]


def span(item: dict[str, Any]) -> dict[str, Any]:
    (ext,) = [x for x in item["extension"] if x["url"] == SPAN_URL]
    return {
        p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in ext["extension"]
    }


def check_note_bundle(bundle: dict[str, Any], result: dict[str, Any], text: str) -> list[str]:
    """Assert everything this feature promises of one note's Bundle; the query flags seen."""
    Bundle.model_validate(bundle)
    by_url = {e["fullUrl"]: e["resource"] for e in bundle.get("entry", [])}
    assert len(by_url) == len(bundle.get("entry", [])), "fullUrls must be unique"
    refs = list(references(bundle))
    assert all(ref in by_url for ref in refs), "every reference resolves inside the Bundle"
    condition_of = {}
    for url, res in by_url.items():
        if res["resourceType"] == "Condition":
            condition_of.setdefault(res["code"]["coding"][0]["code"], url)

    tasks = resources(bundle, "Task")
    query_flags = [f for f in result["flags"] if KINDS[f["flag"]] == "query"]
    assert len(tasks) == len(query_flags), "one Task per query flag, none for coding flags"
    for flag in result["flags"]:
        assert flag["kind"] == KINDS[flag["flag"]]
        assert (flag["query"] is None) == (flag["kind"] == "coding")

    issues = [u for u, r in by_url.items() if r["resourceType"] == "DetectedIssue"]
    assert len(issues) == len(result["flags"])
    for task, flag in zip(tasks, query_flags, strict=True):
        Task.model_validate(task)
        query = flag["query"]
        assert task["status"] == "draft" and task["intent"] == "proposal"
        assert task["code"]["coding"][0]["system"] == TASK_CODE_SYSTEM
        assert task["code"]["coding"][0]["code"] == "provider-query"
        assert task["description"] == query["question"]
        assert [i["valueString"] for i in inputs(task, "question")] == [query["question"]]
        assert [i["valueString"] for i in inputs(task, "option")] == query["options"]
        assert query["options"][-2:] == ["Other (please specify)", "Unable to determine"]
        indicators = inputs(task, "indicator")
        assert len(indicators) == len(query["indicators"])
        for item, indicator in zip(indicators, query["indicators"], strict=True):
            where = span(item)
            assert text[where["start"] : where["end"]] == where["text"] == item["valueString"]
            assert (where["start"], where["end"]) == (indicator["start"], indicator["end"])
            assert where.get("section") == (indicator.get("section") or None)

        # linked to the flag's DetectedIssue, and to the Condition of the code it names
        issue = by_url[task["reasonReference"]["reference"]]
        assert issue["resourceType"] == "DetectedIssue"
        assert issue["code"]["coding"][0]["code"] == flag["flag"]
        if flag.get("code") in condition_of:
            assert task["focus"] == {"reference": condition_of[flag["code"]]}
        else:
            assert "focus" not in task

        # the query must not lead: no code, fee or payment in any text of the Task
        for value in texts(task):
            for pattern in (ICD10CM, *FORBIDDEN):
                assert not pattern.search(value), (pattern.pattern, value)
    return [f["flag"] for f in query_flags]


# --- the sample ----------------------------------------------------------------------------


def test_imaging_missing_becomes_a_draft_task_on_the_condition_and_issue(nlp):
    result = coded(NO_IMAGING, nlp, note_id="s1")
    bundle = to_fhir_bundle(result)
    assert check_note_bundle(bundle, result, NO_IMAGING) == ["IMAGING_MISSING"]
    (task,) = resources(bundle, "Task")
    (condition_url,) = [
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition"
    ]
    assert task["focus"] == {"reference": condition_url}
    assert task["for"] == resources(bundle, "Condition")[0]["subject"]
    # the Task comes right after the DetectedIssue it answers
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[kinds.index("Task") - 1] == "DetectedIssue"


def test_a_given_subject_reaches_the_task(nlp):
    result = coded(NO_IMAGING, nlp)
    bundle = to_fhir_bundle(result, subject={"reference": "Patient/123"})
    Bundle.model_validate(bundle)
    assert resources(bundle, "Task")[0]["for"] == {"reference": "Patient/123"}


def test_a_note_without_query_flags_has_no_task(nlp):
    result = coded(SAMPLE_TEXT, nlp)
    assert not any(f["kind"] == "query" for f in result["flags"])
    bundle = to_fhir_bundle(result)
    check_note_bundle(bundle, result, SAMPLE_TEXT)
    assert resources(bundle, "Task") == []


def test_batch_bundle_carries_each_notes_tasks_and_resolves_per_note(nlp):
    texts = [NO_IMAGING, SAMPLE_TEXT, NO_IMAGING]
    results = [coded(t, nlp, note_id=str(i)) for i, t in enumerate(texts)]
    batch = to_fhir_batch_bundle(results)
    Bundle.model_validate(batch)
    inner = [e["resource"] for e in batch["entry"]]
    assert [len(resources(b, "Task")) for b in inner] == [1, 0, 1]
    for bundle, result, text in zip(inner, results, texts, strict=True):
        check_note_bundle(bundle, result, text)  # references resolve within the note's Bundle


# --- every real spine note -----------------------------------------------------------------


def test_every_query_flag_of_the_spine_notes_is_a_valid_task(nlp):
    path = shared_corpus("mtsamples_spine.jsonl")
    notes = [json.loads(line) for line in path.open(encoding="utf-8")]
    seen: Counter[str] = Counter()
    coding_only = 0
    for note in notes:
        result = coded(note["text"], nlp, note_id=note["id"])
        try:
            flags = check_note_bundle(to_fhir_bundle(result), result, note["text"])
        except AssertionError as exc:  # name the note (its id, never its text)
            raise AssertionError(f"{note['id']}: {exc}") from exc
        seen.update(flags)
        coding_only += bool(result["flags"]) and not flags
    # measured: 48 query flags of 5 kinds (PAIN_ONLY 34, UNCERTAIN_DX 9,
    # REGION_UNSPECIFIED 3, IMAGING_MISSING 1, CONSERVATIVE_CARE_MISSING 1), and
    # 106 notes whose flags are all coding flags, which must give no Task
    assert len(seen) >= 4, seen
    assert sum(seen.values()) >= 40, seen
    assert coding_only >= 50, coding_only


def test_a_result_from_before_query_flags_gives_detected_issues_only(nlp):
    """A result saved before v3 (flags without ``kind`` and ``query``) still converts."""
    result = coded(NO_IMAGING, nlp)
    for flag in result["flags"]:
        del flag["kind"], flag["query"]
    bundle = to_fhir_bundle(result)
    Bundle.model_validate(bundle)
    assert resources(bundle, "Task") == []
    assert len(resources(bundle, "DetectedIssue")) == len(result["flags"]) >= 1


# --- the service ----------------------------------------------------------------------------


def test_the_service_returns_the_query_tasks(nlp):
    settings = serve.Settings(allowed_hosts=(*serve.LOOPBACK_HOSTS, "testserver"))
    with TestClient(serve.create_app(nlp, settings)) as client:
        body = {"note_id": "q1", "text": NO_IMAGING}
        bundle = client.post("/v1/suggest?format=fhir", json=body).json()
        result = client.post("/v1/suggest", json=body).json()
        notes = {"notes": [body, {"note_id": "q2", "text": SAMPLE_TEXT}]}
        batch = client.post("/v1/suggest/batch?format=fhir", json=notes).json()
    assert check_note_bundle(bundle, result, NO_IMAGING) == ["IMAGING_MISSING"]
    Bundle.model_validate(batch)
    inner = [e["resource"] for e in batch["entry"]]
    assert [len(resources(b, "Task")) for b in inner] == [1, 0]
