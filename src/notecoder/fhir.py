"""A docs/formats.md result as a FHIR R4 ``Bundle``, for scribes and EHRs that take FHIR.

The mapping (plain dicts, no FHIR library at run time, so the service does not
need one; the tests validate the output with ``fhir.resources``' R4B models,
which are wire-compatible with R4 for every resource used here):

- One ``Bundle`` of type ``collection`` per note. ``Bundle.identifier`` carries
  the note id (system :data:`NOTE_ID_SYSTEM`).
- One ``Condition`` per suggested code: ``code.coding`` in
  ``http://hl7.org/fhir/sid/icd-10-cm`` with the tabular description as
  ``display``; ``verificationStatus`` *provisional* (a suggestion a coder still
  has to accept), ``clinicalStatus`` *active*, category *encounter-diagnosis*.
  The confidence rides in the extension :data:`CONFIDENCE_URL` (``valueDecimal``).
- Evidence: one ``Condition.evidence`` per supporting mention. R4 has no element
  for a span of the note's text, so ``evidence.detail`` is a display-only
  Reference (the mention's text), ``evidence.code.text`` is the mention label
  and the complex extension :data:`SPAN_URL` on the evidence carries ``start``
  and ``end`` (character offsets into the note, end exclusive, as docs/formats.md),
  ``text``, ``label`` and ``section``.
- Gap flags: each flag is a ``DetectedIssue`` (status *preliminary*, code in
  :data:`FLAG_SYSTEM`, ``detail`` = the message, evidence spans as above). A flag
  that names a suggested code also ``implicates`` that code's Condition and is
  copied into the Condition's ``note``, so a reader of the Condition alone sees it.
- Provider queries: a query flag (``kind`` *query*, with a ``query``) also gets a
  ``Task`` right after its DetectedIssue: the draft provider query, for a clinical
  documentation specialist to review and send. A Task rather than a
  CommunicationRequest because a query is work the provider is asked to do and
  answer, tracked until closed: Task has the lifecycle (``status`` *draft* now,
  then requested, completed ...), a place for the answer (``output``) and
  ``focus`` for the thing to clarify; CommunicationRequest only asks that a
  message be conveyed (and in R4 has no ``intent`` and cannot give a
  DetectedIssue as its ``reasonReference``). ``status`` *draft* and ``intent``
  *proposal* (a system's suggestion no one has sent yet); ``code`` *provider-query* in
  :data:`TASK_CODE_SYSTEM`; ``description`` = the question; ``for`` = the subject;
  ``focus`` = the Condition of the flag's code (when it names one);
  ``reasonReference`` = the flag's DetectedIssue. ``input``, typed in
  :data:`QUERY_INPUT_SYSTEM`, in this order: *title* (when the query has one),
  *question*, one *option* per answer in the query's order (``valueString``,
  so any Task reader can show them as a pick list and put the answer in
  ``output``), one *indicator* per clinical indicator (``valueString`` = its text,
  offsets in the :data:`SPAN_URL` extension on the input). The Task holds only the
  query's own text: no code, no flag message (which names codes), no fee or
  payment. Coding flags (``kind`` *coding*, ``query`` null) stay DetectedIssues only.
- A note that could not be processed gives a Bundle with one
  ``OperationOutcome`` (severity error) whose ``diagnostics`` is ``result["error"]``.
- R4 requires ``Condition.subject``; notecoder never sees the patient, so the
  subject is a display-only placeholder unless the caller passes a Reference.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
VER_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CLINICAL_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
#: Our own identifiers and extensions. URNs, so no one resolves a host we do not own.
NOTE_ID_SYSTEM = "urn:notecoder:note-id"
FLAG_SYSTEM = "urn:notecoder:flag"
SPAN_URL = "urn:notecoder:fhir:StructureDefinition:evidence-span"
CONFIDENCE_URL = "urn:notecoder:fhir:StructureDefinition:confidence"
#: ``Task.code`` of a provider query (no HL7 task code means "answer this query").
TASK_CODE_SYSTEM = "urn:notecoder:task"
#: ``Task.input.type`` of a provider query: title, question, option, indicator.
QUERY_INPUT_SYSTEM = "urn:notecoder:query-input"

#: Worded without "code": the query Tasks carry it too, and a query names no code.
_DEFAULT_SUBJECT = {"display": "Patient of the note (not known to notecoder)"}


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _span_extension(ev: dict[str, Any]) -> dict[str, Any]:
    """The evidence-span extension: where in the note the supporting mention is."""
    parts: list[dict[str, Any]] = [
        {"url": "start", "valueInteger": int(ev["start"])},
        {"url": "end", "valueInteger": int(ev["end"])},
    ]
    if ev.get("text"):
        parts.append({"url": "text", "valueString": str(ev["text"])})
    if ev.get("label"):
        parts.append({"url": "label", "valueCode": str(ev["label"])})
    if ev.get("section"):
        parts.append({"url": "section", "valueString": str(ev["section"])})
    return {"url": SPAN_URL, "extension": parts}


def _evidence(ev: dict[str, Any]) -> dict[str, Any]:
    """One Condition/DetectedIssue evidence entry for a mention."""
    out: dict[str, Any] = {
        "extension": [_span_extension(ev)],
        "detail": [{"display": str(ev.get("text") or f"{ev['start']}-{ev['end']}")}],
    }
    if ev.get("label"):
        out["code"] = [{"text": str(ev["label"])}]
    return out


def _flag_text(flag: dict[str, Any]) -> str:
    return f"{flag['flag']}: {flag.get('message') or ''}".strip()


def _condition(
    code: dict[str, Any], flags: list[dict[str, Any]], subject: dict[str, Any]
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [{"system": CLINICAL_STATUS_SYSTEM, "code": "active", "display": "Active"}]
        },
        "verificationStatus": {
            "coding": [
                {"system": VER_STATUS_SYSTEM, "code": "provisional", "display": "Provisional"}
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": CATEGORY_SYSTEM,
                        "code": "encounter-diagnosis",
                        "display": "Encounter Diagnosis",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": ICD10CM_SYSTEM,
                    "code": str(code["code"]),
                    "display": str(code.get("description") or code["code"]),
                }
            ],
            "text": str(code.get("description") or code["code"]),
        },
        "subject": subject,
    }
    if code.get("confidence") is not None:
        condition["extension"] = [
            {"url": CONFIDENCE_URL, "valueDecimal": float(code["confidence"])}
        ]
    evidence = [_evidence(ev) for ev in code.get("evidence") or []]
    if evidence:
        condition["evidence"] = evidence
    notes = [{"text": _flag_text(f)} for f in flags if f.get("code") == code["code"]]
    if notes:
        condition["note"] = notes
    return condition


def _detected_issue(
    flag: dict[str, Any], implicated: str | None, subject: dict[str, Any]
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "status": "preliminary",
        "code": {
            "coding": [{"system": FLAG_SYSTEM, "code": str(flag["flag"])}],
            "text": str(flag["flag"]),
        },
        "patient": subject,
        "detail": str(flag.get("message") or flag["flag"]),
    }
    if implicated:
        issue["implicated"] = [{"reference": implicated}]
    evidence = [_evidence(ev) for ev in flag.get("evidence") or []]
    if evidence:
        issue["evidence"] = evidence
    return issue


def _query_input(kind: str, value: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": QUERY_INPUT_SYSTEM, "code": kind}]},
        "valueString": value,
    }


def _query_task(
    query: dict[str, Any],
    condition: str | None,
    issue: str,
    subject: dict[str, Any],
) -> dict[str, Any]:
    """The draft provider query of one query flag as a ``Task``.

    Only the query's own title, question, options and indicators go in: the flag's
    name and message are on the DetectedIssue, and the message names codes, which
    a compliant query must not (it would lead the provider toward an answer).
    """
    inputs: list[dict[str, Any]] = []
    if query.get("title"):
        inputs.append(_query_input("title", str(query["title"])))
    inputs.append(_query_input("question", str(query["question"])))
    inputs.extend(_query_input("option", str(option)) for option in query.get("options") or [])
    for indicator in query.get("indicators") or []:
        entry = _query_input(
            "indicator", str(indicator.get("text") or f"{indicator['start']}-{indicator['end']}")
        )
        entry["extension"] = [_span_extension(indicator)]
        inputs.append(entry)
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "draft",
        "intent": "proposal",
        "code": {
            "coding": [
                {
                    "system": TASK_CODE_SYSTEM,
                    "code": "provider-query",
                    "display": "Provider documentation query",
                }
            ]
        },
        "description": str(query["question"]),
        "for": subject,
        "reasonReference": {"reference": issue},
        "input": inputs,
    }
    if condition:
        task["focus"] = {"reference": condition}
    return task


def to_fhir_bundle(
    result: dict[str, Any], *, subject: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The FHIR R4 ``Bundle`` (type collection) for one docs/formats.md result.

    ``subject`` is a FHIR Reference (e.g. ``{"reference": "Patient/123"}``) for
    the Conditions, DetectedIssues and query Tasks; without it a display-only
    placeholder.
    """
    subject = dict(subject or _DEFAULT_SUBJECT)
    flags = list(result.get("flags") or [])
    entries: list[dict[str, Any]] = []
    full_urls: dict[str, str] = {}
    for code in result.get("codes") or []:
        full_url = _urn()
        full_urls.setdefault(str(code["code"]), full_url)
        entries.append({"fullUrl": full_url, "resource": _condition(code, flags, subject)})
    for flag in flags:
        condition = full_urls.get(str(flag.get("code")))
        issue_url = _urn()
        entries.append(
            {"fullUrl": issue_url, "resource": _detected_issue(flag, condition, subject)}
        )
        if flag.get("kind") == "query" and flag.get("query"):
            task = _query_task(flag["query"], condition, issue_url, subject)
            entries.append({"fullUrl": _urn(), "resource": task})
    if result.get("error"):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "processing", "diagnostics": str(result["error"])}
            ],
        }
        entries.append({"fullUrl": _urn(), "resource": outcome})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if result.get("note_id"):  # FHIR strings may not be empty
        bundle["identifier"] = {"system": NOTE_ID_SYSTEM, "value": str(result["note_id"])}
    if entries:
        bundle["entry"] = entries
    return bundle


def to_fhir_batch_bundle(
    results: list[dict[str, Any]], *, subject: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Several notes: a collection Bundle whose entries are the per-note Bundles, in order.

    Nesting keeps each note's Conditions and flags together (and its error, if
    any) instead of mixing several notes' resources in one list.
    """
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    entries = [{"fullUrl": _urn(), "resource": to_fhir_bundle(r, subject=subject)} for r in results]
    if entries:
        bundle["entry"] = entries
    return bundle
