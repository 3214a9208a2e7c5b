"""The HTTP service: every endpoint, every error path, logs without note text, FHIR output."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.vocab import Vocab

import notecoder
from notecoder import serve
from notecoder.errors import UserError
from notecoder.fhir import (
    FLAG_SYSTEM,
    ICD10CM_SYSTEM,
    SPAN_URL,
    VER_STATUS_SYSTEM,
    to_fhir_bundle,
)
from notecoder.result import empty_result

from .conftest import NO_IMAGING, SAMPLE_TEXT, broken_pipeline

SECRET = "ZEBRAQUOKKA"  # a word that must never reach a log line or an error body
#: The Host TestClient sends; the apps under test allow it besides the loopback names.
TEST_HOSTS = (*serve.LOOPBACK_HOSTS, "testserver")


def make_app(nlp=None, **changes: Any):
    """An app that answers TestClient's Host ("testserver"), with settings ``changes``."""
    return serve.create_app(nlp, serve.Settings(allowed_hosts=TEST_HOSTS, **changes))


@pytest.fixture(scope="module")
def client(nlp):
    with TestClient(make_app(nlp)) as test_client:
        yield test_client


def post_raw(client: TestClient, path: str, body: bytes, **headers: str):
    return client.post(path, content=body, headers={"content-type": "application/json", **headers})


def fhir_resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == kind]


# --- the happy paths ----------------------------------------------------------------------


def test_suggest_returns_exactly_what_the_api_returns(client, nlp):
    response = client.post("/v1/suggest", json={"note_id": "s1", "text": SAMPLE_TEXT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    expected = json.loads(json.dumps(notecoder.suggest(SAMPLE_TEXT, note_id="s1", nlp=nlp)))
    assert response.json() == expected
    assert [c["code"] for c in expected["codes"]] == ["M53.85"]


def test_suggest_defaults_to_outpatient_and_takes_inpatient(client):
    assert client.post("/v1/suggest", json={"text": SAMPLE_TEXT}).json()["setting"] == "outpatient"
    body = {"text": SAMPLE_TEXT, "setting": "inpatient", "note_id": None}
    result = client.post("/v1/suggest", json=body).json()
    assert result["setting"] == "inpatient" and result["note_id"] is None


def test_batch_codes_every_note_in_order(client):
    notes = [
        {"note_id": "a", "text": SAMPLE_TEXT},
        {"note_id": "b", "text": NO_IMAGING},
        {"note_id": "c", "text": ""},
    ]
    response = client.post("/v1/suggest/batch", json={"notes": notes})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["note_id"] for r in results] == ["a", "b", "c"]
    assert [c["code"] for c in results[1]["codes"]] == ["M53.85"]
    assert "IMAGING_MISSING" in {f["flag"] for f in results[1]["flags"]}
    assert results[2]["codes"] == [] and results[2]["error"] is None


def test_batch_of_exactly_the_limit_and_of_none(client):
    notes = [{"note_id": str(i), "text": "Low back pain."} for i in range(serve.MAX_BATCH)]
    response = client.post("/v1/suggest/batch", json={"notes": notes})
    assert response.status_code == 200 and len(response.json()["results"]) == serve.MAX_BATCH
    assert client.post("/v1/suggest/batch", json={"notes": []}).json() == {"results": []}


def test_empty_and_whitespace_text_give_an_empty_result(client):
    for text in ("", "  \n\t "):
        response = client.post("/v1/suggest", json={"note_id": "e", "text": text})
        assert response.status_code == 200
        result = response.json()
        assert result["codes"] == [] and result["flags"] == [] and result["error"] is None


def test_lone_surrogate_and_control_characters_never_break_the_response(client):
    body = json.dumps({"note_id": "id\ud800", "text": "Low back pain\x00 at L4-5 \udfff."})
    response = post_raw(client, "/v1/suggest", body.encode("ascii"))
    assert response.status_code == 200
    assert response.json()["error"] is None


def test_code_lookup(client):
    entry = client.get("/v1/codes/M53.85").json()
    assert entry["code"] == "M53.85"
    assert entry["description"] == "Other specified dorsopathies, thoracolumbar region"
    assert entry["parent"] == "M53.8" and entry["children"] == [] and entry["billable"] is True
    assert isinstance(entry["excludes1"], list) and isinstance(entry["excludes2"], list)
    # discitis NOS is Excludes1 at the block M50-M54 and so applies to M53.85
    assert any(
        e["from"] == "M50-M54" and "discitis" in e["note"] for e in entry["excludes1_inherited"]
    )
    assert client.get("/v1/codes/m5385").json()["code"] == "M53.85"
    parent = client.get("/v1/codes/M53.8").json()
    assert parent["billable"] is False and "M53.85" in parent["children"]
    assert client.get("/v1/codes/M54").json()["excludes1"] == ["psychogenic dorsalgia (F45.41)"]


@pytest.mark.parametrize("code", ["ZZZ", "M53.8X", "M53.99", "x" * 300])
def test_unknown_code_is_404(client, code):
    response = client.get(f"/v1/codes/{code}")
    assert response.status_code == 404
    assert "unknown ICD-10-CM code" in response.json()["detail"]


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": notecoder.__version__,
        "pipeline": "loaded",
        "pid": os.getpid(),
    }


def test_openapi_lists_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/suggest", "/v1/suggest/batch", "/v1/codes/{code}", "/health", "/review"} <= set(
        paths
    )


def test_review_page_is_self_contained(client):
    response = client.get("/review")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "<textarea" in page and 'id="setting"' in page and "v1/suggest" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "<link" not in page and "@import" not in page
    script = page[page.index("<script>") :]
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script)
    assert client.get("/", follow_redirects=False).headers["location"] == "/review"


def test_the_module_app_is_built_lazily_for_uvicorn():
    from fastapi import FastAPI

    assert isinstance(serve.app, FastAPI)
    assert serve.app is serve.app
    with pytest.raises(AttributeError):
        _ = serve.no_such_thing


def test_concurrent_requests_share_one_pipeline_safely(client):
    expected = client.post("/v1/suggest", json={"text": SAMPLE_TEXT}).json()
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda _: client.post("/v1/suggest", json={"text": SAMPLE_TEXT}).json(), range(32)
            )
        )
    assert all(r == expected for r in results)


# --- FHIR ---------------------------------------------------------------------------------


def test_fhir_bundle_for_the_sample_validates_and_carries_m53_85(client):
    response = client.post("/v1/suggest?format=fhir", json={"note_id": "s1", "text": SAMPLE_TEXT})
    assert response.status_code == 200
    bundle = response.json()
    Bundle.model_validate(bundle)  # FHIR R4B models (R4-compatible for these resources)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert bundle["identifier"]["value"] == "s1"
    (condition,) = fhir_resources(bundle, "Condition")
    assert condition["code"]["coding"][0] == {
        "system": ICD10CM_SYSTEM,
        "code": "M53.85",
        "display": "Other specified dorsopathies, thoracolumbar region",
    }
    assert condition["verificationStatus"]["coding"][0]["system"] == VER_STATUS_SYSTEM
    assert condition["verificationStatus"]["coding"][0]["code"] == "provisional"
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
    (evidence,) = condition["evidence"]
    (span,) = [x for x in evidence["extension"] if x["url"] == SPAN_URL]
    parts = {
        p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in span["extension"]
    }
    assert (
        SAMPLE_TEXT[parts["start"] : parts["end"]]
        == parts["text"]
        == "Thoracolumbar junction syndrome at T12-L1"
    )
    assert parts["label"] == "CONDITION" and parts["section"] == "assessment_and_plan"
    assert evidence["detail"] == [{"display": "Thoracolumbar junction syndrome at T12-L1"}]


def test_fhir_flags_are_detected_issues_and_condition_notes(client):
    bundle = client.post("/v1/suggest?format=fhir", json={"text": NO_IMAGING}).json()
    Bundle.model_validate(bundle)
    (condition,) = fhir_resources(bundle, "Condition")
    issues = fhir_resources(bundle, "DetectedIssue")
    (issue,) = [i for i in issues if i["code"]["coding"][0]["code"] == "IMAGING_MISSING"]
    assert issue["code"]["coding"][0]["system"] == FLAG_SYSTEM
    assert issue["status"] == "preliminary" and "imaging" in issue["detail"].lower()
    url = next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition"
    )
    assert issue["implicated"] == [{"reference": url}]
    assert any(n["text"].startswith("IMAGING_MISSING:") for n in condition["note"])


def test_fhir_batch_is_a_bundle_of_note_bundles(client):
    notes = [{"note_id": "a", "text": SAMPLE_TEXT}, {"note_id": "b", "text": "nothing spinal"}]
    bundle = client.post("/v1/suggest/batch?format=fhir", json={"notes": notes}).json()
    Bundle.model_validate(bundle)
    inner = [e["resource"] for e in bundle["entry"]]
    assert [b["identifier"]["value"] for b in inner] == ["a", "b"]
    assert fhir_resources(inner[0], "Condition")[0]["code"]["coding"][0]["code"] == "M53.85"
    assert "entry" not in inner[1]


def test_fhir_error_result_is_an_operation_outcome():
    bundle = to_fhir_bundle(empty_result("bad", "note text must be a string, not int"))
    Bundle.model_validate(bundle)
    (outcome,) = fhir_resources(bundle, "OperationOutcome")
    assert outcome["issue"][0]["severity"] == "error"
    assert "must be a string" in outcome["issue"][0]["diagnostics"]
    Bundle.model_validate(to_fhir_bundle(empty_result("")))  # empty id: no identifier


def test_fhir_subject_can_be_given():
    result = notecoder.suggest(SAMPLE_TEXT)
    bundle = to_fhir_bundle(result, subject={"reference": "Patient/123"})
    Bundle.model_validate(bundle)
    assert fhir_resources(bundle, "Condition")[0]["subject"] == {"reference": "Patient/123"}


# --- limits and errors --------------------------------------------------------------------


def test_body_over_1_mb_is_413_by_content_length(client):
    body = json.dumps({"text": "a " * 600_000}).encode()
    response = post_raw(client, "/v1/suggest", body)
    assert response.status_code == 413
    assert "1000000 bytes" in response.json()["message"]
    assert response.headers["x-request-id"]


def test_body_over_1_mb_is_413_when_streamed_without_content_length(client):
    def chunks():
        yield b'{"text": "'
        for _ in range(12):
            yield b"a" * 100_000
        yield b'"}'

    response = client.post("/v1/suggest/batch", content=chunks())
    assert response.status_code == 413


def test_body_of_exactly_1_mb_is_accepted(client):
    skeleton = json.dumps({"text": ""}).encode()
    body = json.dumps({"text": " " * (serve.MAX_BODY_BYTES - len(skeleton))}).encode()
    assert len(body) == serve.MAX_BODY_BYTES
    assert post_raw(client, "/v1/suggest", body).status_code == 200


async def _call_guard(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> list[dict]:
    """Drive RequestGuard directly with a body that does not match its Content-Length."""
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages[-1]["more_body"] = False

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # an app that must never be reached
        raise AssertionError("the body should have been refused")

    scope = {"type": "http", "method": "POST", "path": "/v1/suggest", "headers": headers}
    await serve.RequestGuard(app)(scope, receive, send)
    return sent


def test_actual_body_size_is_checked_even_if_content_length_lies():
    import anyio

    sent = anyio.run(_call_guard, [(b"content-length", b"10")], [b"x" * 600_000] * 2)
    assert sent[0]["status"] == 413
    sent = anyio.run(_call_guard, [(b"content-length", b"ten")], [b"{}"])
    assert sent[0]["status"] == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": 5}, "text"),
        ({"text": None}, "text"),
        ({"text": ["a"]}, "text"),
        ({"note_id": "x"}, "text"),
        ({}, "text"),
        ({"text": "a", "note_id": 7}, "note_id"),
        ({"text": "a", "setting": "emergency"}, "setting"),
        ({"text": "a", "setting": None}, "setting"),
        ([{"text": "a"}], "body"),
        ("just a string", "body"),
    ],
)
def test_wrong_types_are_422_naming_the_field(client, body, field):
    response = client.post("/v1/suggest", json=body)
    assert response.status_code == 422
    message = response.json()["message"]
    assert message.startswith(f"{field}:") or f"; {field}:" in message, message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "notes"),
        ({"notes": "a"}, "notes"),
        ({"notes": [{"text": "a"}, {"text": 1}]}, "notes.1.text"),
        ({"notes": [{"text": "a", "setting": "er"}]}, "notes.0.setting"),
    ],
)
def test_batch_wrong_types_are_422_naming_the_field(client, body, field):
    response = client.post("/v1/suggest/batch", json=body)
    assert response.status_code == 422
    assert response.json()["message"].startswith(f"{field}:"), response.json()


def test_too_many_notes_is_422_with_a_clear_message(client):
    notes = [{"text": "a"}] * (serve.MAX_BATCH + 1)
    response = client.post("/v1/suggest/batch", json={"notes": notes})
    assert response.status_code == 422
    assert "at most 100 notes per request, got 101" in response.json()["message"]


def test_bad_format_malformed_json_and_non_utf8_are_422(client):
    response = client.post("/v1/suggest?format=xml", json={"text": "a"})
    assert response.status_code == 422 and "format" in response.json()["message"]
    response = post_raw(client, "/v1/suggest", b'{"text": "Low back pa')
    assert response.status_code == 422 and "JSON" in response.json()["message"]
    response = post_raw(client, "/v1/suggest", '{"text": "café"}'.encode("latin-1"))
    assert response.status_code == 422 and "not UTF-8" in response.json()["message"]


def test_validation_errors_never_echo_the_note(client):
    for body in (
        {"text": f"{SECRET} pain", "setting": "nowhere"},
        {"text": f"{SECRET} pain", "note_id": 1},
        {"notes": [{"text": f"{SECRET}"}] * 101},
    ):
        path = "/v1/suggest/batch" if "notes" in body else "/v1/suggest"
        response = client.post(path, json=body)
        assert response.status_code == 422
        assert SECRET not in response.text


def test_unknown_route_and_method(client):
    assert client.get("/v2/nothing").status_code == 404
    assert client.get("/v1/suggest").status_code == 405


class BrokenPipeline:
    """A pipeline whose every call fails, with the note text in the exception message."""

    vocab = Vocab()  # watched for growth, like a real pipeline's

    def make_doc(self, text: str):
        raise RuntimeError(f"cannot parse {text!r}")


def test_a_failing_pipeline_gives_200_with_error_and_the_service_stays_up():
    with TestClient(make_app(BrokenPipeline())) as broken:
        response = broken.post("/v1/suggest", json={"note_id": "n1", "text": f"{SECRET} L4-5"})
        assert response.status_code == 200
        result = response.json()
        assert result["note_id"] == "n1" and result["codes"] == []
        assert result["error"] == "internal error: RuntimeError"
        assert SECRET not in response.text
        batch = broken.post("/v1/suggest/batch", json={"notes": [{"text": "a"}, {"text": "b"}]})
        assert [r["error"] for r in batch.json()["results"]] == ["internal error: RuntimeError"] * 2
        assert broken.get("/health").status_code == 200


def test_an_exception_outside_the_api_is_one_bad_note_not_a_dead_batch(client, monkeypatch):
    real = serve.suggest

    def flaky(text, **kwargs):
        if SECRET in text:
            raise RuntimeError(text)
        return real(text, **kwargs)

    monkeypatch.setattr(serve, "suggest", flaky)
    notes = [{"note_id": "ok", "text": SAMPLE_TEXT}, {"note_id": "bad", "text": SECRET}]
    results = client.post("/v1/suggest/batch", json={"notes": notes}).json()["results"]
    assert [c["code"] for c in results[0]["codes"]] == ["M53.85"]
    assert results[1]["error"] == "internal error: RuntimeError" and results[1]["codes"] == []
    single = client.post("/v1/suggest", json={"text": SECRET})
    assert single.status_code == 200 and single.json()["error"] == "internal error: RuntimeError"


def test_an_unexpected_server_error_is_500_without_note_text(client, monkeypatch):
    def boom(result, **kwargs):
        raise ValueError(f"{SECRET} in the bundle")

    monkeypatch.setattr(serve, "to_fhir_bundle", boom)
    response = client.post("/v1/suggest?format=fhir", json={"text": f"{SECRET} pain"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error: ValueError"}
    assert SECRET not in response.text and response.headers["x-request-id"]
    assert client.get("/health").status_code == 200


# --- time limit, queue, memory ----------------------------------------------------------


class SlowPipeline:
    """The real pipeline behind a first step that, on a note saying SLOW, waits for ``release``."""

    def __init__(self, nlp) -> None:
        self.vocab = nlp.vocab
        self.make_doc = nlp.make_doc
        self.pipeline = [("slow", self._slow), *nlp.pipeline]
        self.started = threading.Event()
        self.release = threading.Event()

    def _slow(self, doc):
        if "SLOW" in doc.text:
            self.started.set()
            assert self.release.wait(30), "the test never released the slow note"
        return doc


def test_a_request_over_its_time_limit_is_504_on_time_and_the_next_is_served(nlp):
    slow = SlowPipeline(nlp)
    with TestClient(make_app(slow, timeout=0.5)) as service:
        started = time.monotonic()
        response = service.post(
            "/v1/suggest", json={"note_id": "big", "text": f"SLOW {SAMPLE_TEXT}"}
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 504 and 0.5 <= elapsed < 1.5, elapsed
        assert response.json() == {
            "detail": "not coded within the 0.5 s time limit: send shorter notes or fewer "
            "per request"
        }
        assert slow.started.is_set()
        slow.release.set()  # the pipeline thread drops the note at its next step
        response = service.post("/v1/suggest", json={"note_id": "s1", "text": SAMPLE_TEXT})
        assert response.status_code == 200
        assert response.json() == json.loads(
            json.dumps(notecoder.suggest(SAMPLE_TEXT, note_id="s1"))
        )
        batch = service.post("/v1/suggest/batch", json={"notes": [{"text": SAMPLE_TEXT}] * 3})
        assert batch.status_code == 200 and len(batch.json()["results"]) == 3


def test_a_hostile_note_answers_within_the_time_limit():
    # Its own pipeline: the tokenizer may go on with this note after the answer.
    with TestClient(make_app(timeout=2.0)) as service:
        started = time.monotonic()
        response = service.post("/v1/suggest", json={"note_id": "p", "text": "(" * 14000})
        elapsed = time.monotonic() - started
        assert elapsed < 2.0 + 1.0, elapsed
        if response.status_code == 504:
            assert "time limit" in response.json()["detail"]
        else:
            assert response.status_code == 200 and response.json()["note_id"] == "p"


def test_a_full_queue_is_503_with_retry_after_and_the_work_in_it_is_done(nlp):
    slow = SlowPipeline(nlp)
    app = make_app(slow, max_queue=1, timeout=20)
    with TestClient(app) as service, ThreadPoolExecutor(1) as pool:
        first = pool.submit(service.post, "/v1/suggest", json={"text": f"SLOW {SAMPLE_TEXT}"})
        assert slow.started.wait(10)
        refused = service.post("/v1/suggest", json={"text": SAMPLE_TEXT})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(serve.RETRY_AFTER_SECONDS)
        assert "busy: 1 requests are already waiting" in refused.json()["detail"]
        batch = service.post("/v1/suggest/batch", json={"notes": [{"text": SAMPLE_TEXT}]})
        assert batch.status_code == 503
        assert service.get("/health").status_code == 200  # the worker itself answers
        slow.release.set()
        coded = first.result(timeout=20)
        assert coded.status_code == 200 and coded.json()["codes"][0]["code"] == "M53.85"
        assert service.post("/v1/suggest", json={"text": SAMPLE_TEXT}).status_code == 200


def test_the_vocabulary_does_not_grow_with_the_requests(nlp):
    """spaCy 3.8: past ``max_new_strings`` new strings each note is coded in a memory zone;
    3.7: the pipeline is rebuilt once it has learnt as many."""
    with TestClient(make_app(nlp, max_new_strings=300)) as service:
        engine = service.app.state.engine
        for i in range(8):  # each note brings ~60 new token strings, and their affixes
            words = " ".join(uuid.uuid4().hex for _ in range(60))
            text = f"{NO_IMAGING}\n\nADDENDUM: reference {words}.\n"
            strings = len(nlp.vocab.strings)
            response = service.post("/v1/suggest", json={"note_id": str(i), "text": text})
            assert response.status_code == 200
            if hasattr(nlp, "memory_zone"):  # a note this long would pass the bound
                assert len(nlp.vocab.strings) == strings
            expected = notecoder.suggest(text, note_id=str(i), nlp=nlp)
            assert response.json() == json.loads(json.dumps(expected))
        if hasattr(nlp, "memory_zone"):
            assert engine.rebuilds == 0
        else:
            assert engine.rebuilds >= 1
        result = service.post("/v1/suggest", json={"note_id": "s1", "text": SAMPLE_TEXT}).json()
        assert result == json.loads(
            json.dumps(notecoder.suggest(SAMPLE_TEXT, note_id="s1", nlp=nlp))
        )


# --- logs ---------------------------------------------------------------------------------


@pytest.fixture
def log_lines(caplog):
    """Every log line as ``notecoder serve`` formats it (LOG_FORMAT, with the request id)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(serve.RequestIdFilter())
    handler.setFormatter(logging.Formatter(serve.LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield lambda: stream.getvalue().splitlines()
    finally:
        root.removeHandler(handler)


def test_no_note_text_in_logs_and_request_ids_everywhere(client, caplog, log_lines, monkeypatch):
    note = f"{SECRET} thoracolumbar junction syndrome at T12-L1."
    client.post(
        "/v1/suggest", json={"note_id": "n1", "text": note}, headers={"X-Request-ID": "req-1"}
    )
    client.post(
        "/v1/suggest/batch", json={"notes": [{"text": note}]}, headers={"X-Request-ID": "req-2"}
    )
    client.post(
        "/v1/suggest", json={"text": note, "setting": "bad"}, headers={"X-Request-ID": "req-3"}
    )
    response = client.post("/v1/suggest", json={"text": note})  # no id given: one is made up
    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)

    real = serve.suggest

    def failing(text, **kwargs):
        raise RuntimeError(f"failed on {text}")

    monkeypatch.setattr(serve, "suggest", failing)
    client.post("/v1/suggest", json={"text": note}, headers={"X-Request-ID": "req-4"})
    monkeypatch.setattr(serve, "suggest", real)
    monkeypatch.setattr(serve, "to_fhir_bundle", failing)
    client.post("/v1/suggest?format=fhir", json={"text": note}, headers={"X-Request-ID": "req-5"})

    lines = [line for line in log_lines() if " notecoder" in line]  # not httpx's client lines
    assert lines, "the service should log one line per request"
    assert SECRET not in caplog.text and all(SECRET not in line for line in lines)
    assert all(SECRET not in str(r.args) for r in caplog.records)
    ours = [r for r in caplog.records if r.name.startswith("notecoder")]
    assert ours and all(getattr(r, "request_id", "-") != "-" for r in ours)
    for rid in ("req-1", "req-2", "req-3", "req-4", "req-5", generated):
        mine = [line for line in lines if f"[{rid}]" in line]
        assert any("POST /v1/suggest" in line for line in mine), rid
    # every line written while a request was handled names that request
    assert all(re.search(r"\[(req-\d|[0-9a-f]{32})\]", line) for line in lines), lines
    assert any("[req-4]" in line and "RuntimeError" in line for line in lines)
    assert any("[req-5]" in line and "unhandled RuntimeError" in line for line in lines)


def test_log_fields_are_escaped_and_cut(client, log_lines):
    forged = "n1\n2030-01-01 00:00:00,000 INFO notecoder.serve [req-9] FORGED"
    client.post("/v1/suggest", json={"note_id": forged, "text": SAMPLE_TEXT})
    client.post("/v1/suggest", json={"note_id": "x" * 100_000, "text": "Low back pain."})
    client.get("/v1/codes/M54\u2028FORGED")
    with TestClient(make_app(BrokenPipeline())) as broken:  # notecoder.api logs the id too
        broken.post("/v1/suggest", json={"note_id": forged, "text": "a"})
    lines = log_lines()
    assert not any(line.startswith(("2030-", "FORGED")) for line in lines), lines
    assert any("coded note n1\\n2030-01-01" in line and "FORGED" in line for line in lines)
    assert any(
        "notecoder.api" in line and "note n1\\n2030-01-01" in line and "RuntimeError" in line
        for line in lines
    )
    assert any("GET /v1/codes/M54\\u2028FORGED 404" in line for line in lines)
    (long,) = [line for line in lines if "coded note xxx" in line]
    assert len(long) < 400 and f"{'x' * serve.MAX_LOG_FIELD}...(100000 chars):" in long


def test_request_id_header_is_echoed_or_replaced_when_unsafe(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == (
        "abc-123"
    )
    unsafe = client.get("/health", headers={"X-Request-ID": "a b; drop"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)
    assert client.get("/v1/codes/ZZZ").headers["x-request-id"]


# --- security -----------------------------------------------------------------------------

KEY = "k3y-" + "Q" * 28


def test_with_an_api_key_every_endpoint_but_health_and_review_needs_it(nlp):
    with TestClient(make_app(nlp, api_key=KEY)) as service:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {KEY}x"},
            {"Authorization": f"Basic {KEY}"},
            {"Authorization": KEY},
        ):
            response = service.post("/v1/suggest", json={"text": SAMPLE_TEXT}, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in response.json()["detail"]
            assert KEY not in response.text
        for path in ("/v1/codes/M54", "/openapi.json", "/docs"):
            assert service.get(path).status_code == 401, path
        good = {"Authorization": f"Bearer {KEY}"}
        response = service.post("/v1/suggest", json={"text": SAMPLE_TEXT}, headers=good)
        assert response.status_code == 200 and response.json()["codes"][0]["code"] == "M53.85"
        assert service.get("/v1/codes/M54", headers={"authorization": f"bearer {KEY}"}).is_success
        assert service.get("/health").status_code == 200
        assert service.get("/review").status_code == 200


def test_security_headers_on_every_response(client):
    responses = [
        client.post("/v1/suggest", json={"text": SAMPLE_TEXT}),
        client.post("/v1/suggest", json={"text": 5}),
        client.get("/v1/codes/ZZZ"),
        client.get("/health"),
        client.get("/review"),
        post_raw(client, "/v1/suggest", b"x" * (serve.MAX_BODY_BYTES + 1)),
        client.get("/health", headers={"host": "evil.example"}),
    ]
    assert [r.status_code for r in responses] == [200, 422, 404, 200, 200, 413, 400]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    csp = client.get("/review").headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "http" not in csp and "*" not in csp  # no source beyond the service itself


def test_a_wrong_host_is_refused(client, nlp):
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.:80"):
        response = client.post("/v1/suggest", json={"text": SAMPLE_TEXT}, headers={"host": host})
        assert response.status_code == 400, host
        assert "--allowed-host" in response.json()["detail"]
    for host in ("localhost", "LOCALHOST:8000", "127.0.0.1:1234", "[::1]:8000", "testserver"):
        assert client.get("/health", headers={"host": host}).status_code == 200, host
    # The default answers loopback names only (TestClient's "testserver" is refused)
    assert TestClient(serve.create_app(nlp)).get("/health").status_code == 400
    default = TestClient(serve.create_app(nlp), base_url="http://127.0.0.1:8000")
    assert default.get("/review").status_code == 200


def test_allowed_hosts_are_loopback_the_bound_host_and_those_given():
    assert serve.allowed_hosts("127.0.0.1") == serve.LOOPBACK_HOSTS
    assert serve.allowed_hosts("0.0.0.0") == serve.LOOPBACK_HOSTS
    assert serve.allowed_hosts("10.1.2.3", ["Coder.Example.org"]) == (
        *serve.LOOPBACK_HOSTS,
        "10.1.2.3",
        "coder.example.org",
    )
    assert serve.allowed_hosts("fd00::5")[-1] == "[fd00::5]"


@pytest.mark.parametrize(
    ("host", "exposed"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("localhost", False),
        ("::1", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.20", True),
        ("coder.example.org", True),
    ],
)
def test_only_loopback_serves_without_a_key(host, exposed):
    if exposed:
        with pytest.raises(UserError, match=r"\[E060\]"):
            serve.check_exposure(host, None, insecure_no_auth=False)
    else:
        serve.check_exposure(host, None, insecure_no_auth=False)
    serve.check_exposure(host, KEY, insecure_no_auth=False)
    serve.check_exposure(host, None, insecure_no_auth=True)


def test_api_key_from_file_or_environment(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(f"  {KEY}\n", encoding="utf-8")
    assert serve.read_api_key(str(key_file), {}) == KEY
    assert serve.read_api_key(str(key_file), {serve.API_KEY_ENV: "other" * 8}) == KEY
    assert serve.read_api_key(None, {serve.API_KEY_ENV: KEY}) == KEY
    assert serve.read_api_key(None, {serve.API_KEY_ENV: " "}) is None
    with pytest.raises(UserError, match=r"\[E062\] the API key has 5 characters"):
        serve.read_api_key(None, {serve.API_KEY_ENV: "short"})
    with pytest.raises(UserError, match=r"\[E061\] .*No such file"):
        serve.read_api_key(str(tmp_path / "none"), {})
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="the file is empty"):
        serve.read_api_key(str(tmp_path / "empty"), {})
    # what a worker process reads: the settings notecoder serve left, the key from its file
    given = {"timeout": 3.0, "max_queue": 5, "allowed_hosts": ["a"], "api_key_file": str(key_file)}
    settings = serve.Settings.from_env({serve.SETTINGS_ENV: json.dumps(given)})
    assert settings == serve.Settings(3.0, 5, ("a",), KEY)
    assert KEY not in repr(settings)
    assert serve.Settings.from_env({}) == serve.Settings()


async def _slow_upload(timeout: float) -> list[dict]:
    """Drive RequestGuard with a client that sends one byte every 50 ms, for ever."""
    import anyio

    sent: list[dict] = []

    async def receive():
        await anyio.sleep(0.05)
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        raise AssertionError("the body never ends")

    scope = {"type": "http", "method": "POST", "path": "/v1/suggest", "headers": []}
    await serve.RequestGuard(app, settings=serve.Settings(timeout=timeout))(scope, receive, send)
    return sent


def test_a_body_not_received_within_the_time_limit_is_408():
    import anyio

    started = time.monotonic()
    sent = anyio.run(_slow_upload, 0.3)
    assert sent[0]["status"] == 408 and time.monotonic() - started < 2
    assert b"not received within 0.3 s" in sent[1]["body"]


# --- the command --------------------------------------------------------------------------


def test_serve_command_parses_and_runs(monkeypatch):
    from notecoder import cli

    parser = argparse.ArgumentParser(prog="notecoder")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_serve_parser(sub)
    args = parser.parse_args(["serve", "--port", "8123", "--workers", "2"])
    assert (args.host, args.port, args.workers, args.log_level) == ("127.0.0.1", 8123, 2, "info")
    calls = []
    monkeypatch.setattr(serve, "run", lambda *a, **kw: calls.append(a))
    assert serve.serve_command(args) == 0
    assert calls == [("127.0.0.1", 8123, 2, "info")]
    assert serve.serve_command(parser.parse_args(["serve", "--workers", "0"])) == 2


def test_serve_refuses_a_non_loopback_host_without_a_key(monkeypatch, capsys, tmp_path):
    from notecoder import cli

    calls = []
    monkeypatch.setattr(serve, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.delenv(serve.API_KEY_ENV, raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("notecoder serve: [E060] --host 0.0.0.0 is reachable") and (
        err.count("\n") == 1
    )
    assert calls == []

    assert cli.main(["serve", "--host", "0.0.0.0", "--insecure-no-auth"]) == 0
    err = capsys.readouterr().err
    assert "warning: serving on 0.0.0.0 without an API key" in err
    assert "add --allowed-host" in err
    assert calls.pop()[0] == ("0.0.0.0", 8000, 1, "info")

    key_file = tmp_path / "key"
    key_file.write_text(KEY, encoding="utf-8")
    argv = ["serve", "--host", "10.0.0.5", "--api-key-file", str(key_file)]
    assert cli.main([*argv, "--allowed-host", "coder.example.org", "--timeout", "2.5"]) == 0
    assert capsys.readouterr().err == ""
    (args, options) = calls.pop()
    assert args == ("10.0.0.5", 8000, 1, "info")
    assert options["api_key_file"] == str(key_file) and KEY not in repr(options)
    assert options["allowed_host"] == ["coder.example.org"] and options["timeout"] == 2.5
    monkeypatch.setenv(serve.API_KEY_ENV, KEY)
    assert cli.main(["serve", "--host", "0.0.0.0", "--allowed-host", "*"]) == 0
    assert capsys.readouterr().err == "" and calls.pop()[1]["api_key_file"] is None

    for bad, message in (
        (["--timeout", "0"], "--timeout: must be above 0"),
        (["--max-queue", "-1"], "--max-queue: must be above 0"),
        (["--max-queue", "many"], "--max-queue: not a number: 'many'"),
    ):
        with pytest.raises(SystemExit) as usage_error:
            cli.main(["serve", *bad])
        assert usage_error.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    for bad, message in (
        (["--ssl-keyfile", str(key_file)], "[E063]"),
        (["--ssl-keyfile", "no.key", "--ssl-certfile", "no.pem"], "[E001] no such file"),
    ):
        assert cli.main(["serve", *bad]) == 2, bad
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert calls == []


def test_log_config_puts_the_request_id_on_every_line():
    config = serve.log_config("warning")
    assert config["loggers"]["notecoder"]["level"] == "WARNING"
    assert "%(request_id)s" in serve.LOG_FORMAT
    spec = dict(config["formatters"]["notecoder"])
    assert spec.pop("()") == "logging.Formatter"  # stdlib only: workers apply it before import
    formatter = logging.Formatter(**spec)
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "started", (), None)
    assert "[-] started" in formatter.format(record)
    record.request_id = "abc"
    assert "[abc] started" in formatter.format(record)


# --- property: arbitrary JSON never gives a 5xx -------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
note_like = st.fixed_dictionaries(
    {},
    optional={
        "note_id": st.none() | st.text(max_size=10) | json_values,
        "text": st.text(max_size=300)
        | st.sampled_from([SAMPLE_TEXT, NO_IMAGING, "L4-5 discitis", "no evidence of discitis"])
        | json_values,
        "setting": st.sampled_from(["outpatient", "inpatient", "er", ""]) | json_values,
    },
)
bodies = json_values | note_like
batch_bodies = json_values | st.fixed_dictionaries(
    {"notes": st.lists(note_like | json_values, max_size=6) | json_values}
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, fmt=st.sampled_from(["json", "fhir"]))
def test_arbitrary_json_to_suggest_never_gives_5xx(client, body, fmt):
    response = client.post(f"/v1/suggest?format={fmt}", content=json.dumps(body))
    assert response.status_code < 500, response.text
    assert response.status_code in (200, 422)
    if response.status_code == 200 and fmt == "json":
        assert set(response.json()) >= {"note_id", "codes", "flags", "entities", "error"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=batch_bodies, fmt=st.sampled_from(["json", "fhir"]))
def test_arbitrary_json_to_batch_never_gives_5xx(client, body, fmt):
    response = client.post(f"/v1/suggest/batch?format={fmt}", content=json.dumps(body))
    assert response.status_code in (200, 422), response.text


@settings(max_examples=50, deadline=None)
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_never_give_5xx(client, body):
    for path in ("/v1/suggest", "/v1/suggest/batch"):
        assert post_raw(client, path, body).status_code < 500


def test_a_pipeline_that_cannot_load_is_reported_with_its_cause(tmp_path, monkeypatch):
    from notecoder import api, pipeline

    broken = broken_pipeline(tmp_path / "spine", "context_rules.json", "{not json")
    monkeypatch.setattr(pipeline, "DEFAULT_PIPELINE", broken)
    monkeypatch.setattr(api, "_nlp", None)
    cause = f"[E020] cannot load the pipeline: [E021] rule file {broken / 'context_rules.json'}"
    assert notecoder.suggest(SAMPLE_TEXT)["error"].startswith(cause + ": not valid JSON")
    with TestClient(make_app()) as service:
        health = service.get("/health")
        assert health.status_code == 503 and health.json()["pipeline"].startswith(cause)
        result = service.post("/v1/suggest", json={"note_id": "n1", "text": SAMPLE_TEXT}).json()
        assert result["note_id"] == "n1" and result["error"].startswith(cause)


# --- real worker processes ------------------------------------------------------------------


def test_two_workers_become_healthy_and_stay_up(tmp_path):
    """``notecoder serve --workers 2`` as installed: the console script, uvicorn's supervisor."""
    script = Path(sys.executable).with_name("notecoder")
    assert script.exists(), f"the notecoder console script is not beside {sys.executable}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in (serve.API_KEY_ENV, serve.SETTINGS_ENV)}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(script), "serve", "--workers", "2", "--port", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        with ThreadPoolExecutor(4) as pool:
            while len(pids) < 2 and time.monotonic() < deadline:
                assert proc.poll() is None, log_path.read_text()
                # fresh connections, several at once, so that both workers take some
                answers = pool.map(lambda _: _health(port), range(4))
                pids.update(pid for pid in answers if pid is not None)
                time.sleep(0.2)
        assert len(pids) == 2, (pids, log_path.read_text())
        # Nagle's algorithm is off: a keep-alive answer does not wait 40 ms for a delayed ACK
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as keep_alive:
            keep_alive.get("/health")
            timings = []
            for _ in range(21):
                started = time.perf_counter()
                keep_alive.get("/health")
                timings.append(time.perf_counter() - started)
        assert sorted(timings)[10] < 0.03, timings
    finally:
        proc.terminate()
        returncode = proc.wait(timeout=60)
    log_text = log_path.read_text()
    assert returncode == 0, log_text
    assert "died" not in log_text and "was not ready" not in log_text, log_text


def _health(port: int) -> int | None:
    """The pid in a worker's /health answer; None while none answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    except httpx.TransportError:
        return None
    return response.json()["pid"] if response.status_code == 200 else None


def test_connections_have_nagles_algorithm_off():
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    class Transport:
        def __init__(self, sock):
            self.sock = sock

        def get_extra_info(self, name, default=None):
            return {"socket": self.sock}.get(name, default)

        def is_closing(self):
            return False

    async def app(scope, receive, send):  # never called
        raise AssertionError

    loop = asyncio.new_event_loop()
    try:
        protocol = serve.NoDelayH11Protocol(
            config=Config(app), server_state=ServerState(), app_state={}, _loop=loop
        )
        with socket.socket() as sock:  # proto 0, as uvicorn binds it for --workers > 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            protocol.connection_made(Transport(sock))
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        loop.close()


def test_a_client_trickling_its_headers_is_cut_off_and_others_are_served(monkeypatch):
    """Slowloris: a request line and headers sent a byte at a time must not hold a
    connection past :data:`serve.HEADER_SECONDS`; a prompt client on the same
    server, and the next request on a kept-alive connection, are answered."""
    import uvicorn

    monkeypatch.setattr(serve, "HEADER_SECONDS", 0.5)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=serve.NoDelayH11Protocol, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            started = time.monotonic()
            for byte in request[:-2]:  # everything but the blank line that ends the headers
                slow.sendall(bytes([byte]))
                time.sleep(0.01)
            assert slow.recv(1024) == b""  # closed by the server, nothing answered
            assert time.monotonic() - started < 3
        with socket.create_connection(("127.0.0.1", port), timeout=5) as prompt:
            for _ in range(3):  # each request has its own limit, counted from the last answer
                prompt.sendall(request)
                answer = b""
                while not answer.endswith(b"0\r\n\r\n"):  # the end of the chunked body
                    part = prompt.recv(1024)
                    assert part, "the server closed a prompt client's connection"
                    answer += part
                assert answer.startswith(b"HTTP/1.1 200")
                time.sleep(0.3)
    finally:
        server.should_exit = True
        thread.join(10)
