"""Code search (``GET /v1/codes``): every billable FY2026 code, with its description.

What the review page's "Add a missed code" and "Edit" fields type against. It
reads pipelines/icd10cm_codes.json, derived from simple-icd-10-cm like the
compact table, and must be as fresh as it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import simple_icd_10_cm as icd
from fastapi.testclient import TestClient

from notecoder import icd10cm, serve
from notecoder.icd10cm import CODES_FILE, derive_codes, dumps

REGENERATE = "regenerate it with `python -m notecoder.icd10cm` and commit the result"


@pytest.fixture(scope="module")
def client(nlp):
    settings = serve.Settings(allowed_hosts=(*serve.LOOPBACK_HOSTS, "testserver"))
    with TestClient(serve.create_app(nlp, settings)) as test_client:
        yield test_client


def test_committed_code_list_is_a_fresh_derivation():
    committed = json.loads(CODES_FILE.read_text(encoding="utf-8"))
    fresh = derive_codes()
    missing = sorted(fresh["codes"].keys() - committed["codes"].keys())
    extra = sorted(committed["codes"].keys() - fresh["codes"].keys())
    assert committed == fresh, f"{CODES_FILE} is stale (missing {missing[:5]}, extra {extra[:5]}): "
    assert CODES_FILE.read_text(encoding="utf-8") == dumps(fresh), f"{CODES_FILE}: " + REGENERATE


def test_the_list_is_every_billable_code_and_nothing_else():
    codes = icd10cm.code_list()
    assert len(codes) > 70_000
    for code in ("M54.16", "M53.85", "S32.000A", "J45.909", "Z99.89"):
        assert code in codes and codes.description(code) == icd.get_description(code)
    for not_billable in ("M54", "M54.1", "M50-M54", "13", "S32.000", "J99.999"):
        assert not_billable not in codes, not_billable


def test_prefix_search_answers_codes_with_descriptions(client):
    response = client.get("/v1/codes", params={"prefix": "M54.1"})
    assert response.status_code == 200
    body = response.json()
    expected = [c for c in icd.get_descendants("M54.1") if icd.is_leaf(c)]
    assert [c["code"] for c in body["codes"]] == sorted(expected)
    assert body["total"] == len(expected) == 9
    for entry in body["codes"]:
        assert entry["description"] == icd.get_description(entry["code"])
    assert {"code": "M54.16", "description": "Radiculopathy, lumbar region"} in body["codes"]


def test_prefix_any_case_with_or_without_the_dot(client):
    dotted = client.get("/v1/codes", params={"prefix": "M54.1"}).json()
    assert client.get("/v1/codes", params={"prefix": "m541"}).json() == dotted
    exact = client.get("/v1/codes", params={"prefix": "m54.16"}).json()
    assert exact == {"codes": [{"code": "M54.16", "description": "Radiculopathy, lumbar region"}],
                     "total": 1}  # fmt: skip
    # 7th-character codes are billable codes too
    fractures = client.get("/v1/codes", params={"prefix": "S32.000"}).json()
    assert "S32.000A" in [c["code"] for c in fractures["codes"]]


def test_limit_caps_the_answer_not_the_total(client):
    body = client.get("/v1/codes", params={"prefix": "M", "limit": 5}).json()
    assert len(body["codes"]) == 5
    assert body["total"] > 1000
    default = client.get("/v1/codes", params={"prefix": "M54"}).json()
    assert len(default["codes"]) == 20 and default["total"] == 33


def test_description_words(client):
    body = client.get("/v1/codes", params={"q": "Radiculopathy LUMBAR", "limit": 100}).json()
    codes = [c["code"] for c in body["codes"]]
    assert "M54.16" in codes and "M51.16" in codes
    assert all(
        "radiculopathy" in c["description"].lower() and "lumbar" in c["description"].lower()
        for c in body["codes"]
    )
    assert body["total"] == len(codes)


def test_unknown_prefix_or_words_answer_an_empty_list(client):
    for params in ({"prefix": "ZZ"}, {"prefix": "M99.99"}, {"q": "quokka zebra"}):
        response = client.get("/v1/codes", params=params)
        assert response.status_code == 200
        assert response.json() == {"codes": [], "total": 0}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"prefix": ""},
        {"prefix": "54.1"},  # a code starts with a letter
        {"prefix": "M54 1"},
        {"prefix": "M54.1<script>"},
        {"prefix": "M54.1234567"},
        {"prefix": "M54", "q": "lumbar"},  # one or the other
        {"q": "a"},
        {"prefix": "M54", "limit": 0},
        {"prefix": "M54", "limit": 101},
        {"prefix": "M54", "limit": "many"},
    ],
)
def test_bad_input_is_422_naming_the_parameter(client, params):
    response = client.get("/v1/codes", params=params)
    assert response.status_code == 422, params
    body = response.json()
    assert body["detail"] and all(d["loc"][0] == "query" for d in body["detail"])
    assert "<script>" not in response.text


def test_search_is_in_the_openapi_summary(client):
    operation = client.get("/openapi.json").json()["paths"]["/v1/codes"]["get"]
    assert "billable" in operation["summary"]
    assert {p["name"] for p in operation["parameters"]} == {"prefix", "q", "limit"}


def test_searching_codes_does_not_import_simple_icd_10_cm():
    """The search reads the derived list; simple-icd-10-cm's import parses the whole XML."""
    script = (
        "import sys, spacy\n"
        "from fastapi.testclient import TestClient\n"
        "from notecoder import serve\n"
        "s = serve.Settings(allowed_hosts=('testserver',))\n"
        "with TestClient(serve.create_app(spacy.blank('en'), s)) as c:\n"
        "    assert c.get('/v1/codes', params={'prefix': 'J45.9'}).json()['total'] > 0\n"
        "    assert c.get('/v1/codes', params={'q': 'asthma'}).json()['total'] > 0\n"
        "assert 'simple_icd_10_cm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
