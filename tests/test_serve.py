"""The HTTP service: every endpoint, every error path, logs without note text, FHIR output."""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import notecoder
from notecoder import serve
from notecoder.fhir import (
    FLAG_SYSTEM,
    ICD10CM_SYSTEM,
    SPAN_URL,
    VER_STATUS_SYSTEM,
    to_fhir_bundle,
)
from notecoder.result import empty_result

from .conftest import SAMPLE

TEXT = SAMPLE.read_text(encoding="utf-8")
#: The sample without its IMAGING paragraph: M53.85 with IMAGING_MISSING.
NO_IMAGING = re.sub(r"IMAGING:.*?\n\n", "", TEXT, flags=re.S)
SECRET = "ZEBRAQUOKKA"  # a word that must never reach a log line or an error body


@pytest.fixture(scope="module")
def client(nlp):
    with TestClient(serve.create_app(nlp)) as test_client:
        yield test_client


def post_raw(client: TestClient, path: str, body: bytes, **headers: str):
    return client.post(path, content=body, headers={"content-type": "application/json", **headers})


def fhir_resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == kind]


# --- the happy paths ----------------------------------------------------------------------


def test_suggest_returns_exactly_what_the_api_returns(client, nlp):
    response = client.post("/v1/suggest", json={"note_id": "s1", "text": TEXT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    expected = json.loads(json.dumps(notecoder.suggest(TEXT, note_id="s1", nlp=nlp)))
    assert response.json() == expected
    assert [c["code"] for c in expected["codes"]] == ["M53.85"]


def test_suggest_defaults_to_outpatient_and_takes_inpatient(client):
    assert client.post("/v1/suggest", json={"text": TEXT}).json()["setting"] == "outpatient"
    body = {"text": TEXT, "setting": "inpatient", "note_id": None}
    result = client.post("/v1/suggest", json=body).json()
    assert result["setting"] == "inpatient" and result["note_id"] is None


def test_batch_codes_every_note_in_order(client):
    notes = [
        {"note_id": "a", "text": TEXT},
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
    expected = client.post("/v1/suggest", json={"text": TEXT}).json()
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda _: client.post("/v1/suggest", json={"text": TEXT}).json(), range(32))
        )
    assert all(r == expected for r in results)


# --- FHIR ---------------------------------------------------------------------------------


def test_fhir_bundle_for_the_sample_validates_and_carries_m53_85(client):
    response = client.post("/v1/suggest?format=fhir", json={"note_id": "s1", "text": TEXT})
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
        TEXT[parts["start"] : parts["end"]]
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
    notes = [{"note_id": "a", "text": TEXT}, {"note_id": "b", "text": "nothing spinal"}]
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
    result = notecoder.suggest(TEXT)
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

    def make_doc(self, text: str):
        raise RuntimeError(f"cannot parse {text!r}")


def test_a_failing_pipeline_gives_200_with_error_and_the_service_stays_up():
    with TestClient(serve.create_app(BrokenPipeline())) as broken:
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
    notes = [{"note_id": "ok", "text": TEXT}, {"note_id": "bad", "text": SECRET}]
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


def test_request_id_header_is_echoed_or_replaced_when_unsafe(client):
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == (
        "abc-123"
    )
    unsafe = client.get("/health", headers={"X-Request-ID": "a b; drop"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe)
    assert client.get("/v1/codes/ZZZ").headers["x-request-id"]


# --- the command --------------------------------------------------------------------------


def test_serve_command_parses_and_runs(monkeypatch):
    parser = argparse.ArgumentParser(prog="notecoder")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.add_serve_parser(sub)
    args = parser.parse_args(["serve", "--port", "8123", "--workers", "2"])
    assert (args.host, args.port, args.workers, args.log_level) == ("127.0.0.1", 8123, 2, "info")
    calls = []
    monkeypatch.setattr(serve, "run", lambda *a: calls.append(a))
    assert serve.serve_command(args) == 0
    assert calls == [("127.0.0.1", 8123, 2, "info")]
    assert serve.serve_command(parser.parse_args(["serve", "--workers", "0"])) == 2


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
        | st.sampled_from([TEXT, NO_IMAGING, "L4-5 discitis", "no evidence of discitis"])
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
    import shutil

    from notecoder import api, pipeline

    broken = tmp_path / "spine"
    shutil.copytree(pipeline.DEFAULT_PIPELINE, broken)
    (broken / "context_rules.json").write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(pipeline, "DEFAULT_PIPELINE", broken)
    monkeypatch.setattr(api, "_nlp", None)
    cause = f"[E020] cannot load the pipeline: [E021] rule file {broken / 'context_rules.json'}"
    assert notecoder.suggest(TEXT)["error"].startswith(cause + ": not valid JSON")
    with TestClient(serve.create_app()) as service:
        health = service.get("/health")
        assert health.status_code == 503 and health.json()["pipeline"].startswith(cause)
        result = service.post("/v1/suggest", json={"note_id": "n1", "text": TEXT}).json()
        assert result["note_id"] == "n1" and result["error"].startswith(cause)
