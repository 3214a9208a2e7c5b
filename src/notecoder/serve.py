"""``notecoder serve``: the pipeline as an HTTP service for AI scribes, and a coder review page.

Endpoints (see ``/openapi.json``): ``POST /v1/suggest`` and ``POST /v1/suggest/batch``
(docs/formats.md results, or a FHIR R4 Bundle with ``?format=fhir``), ``GET
/v1/codes/{code}`` (the tabular list entry of a code), ``GET /v1/codes?prefix=`` or
``?q=`` (billable codes with descriptions, for a coder adding a code), ``GET /health`` and ``GET
/review`` (an offline HTML page where a coder pastes a note and checks the result).

Design choices, and why:

- Each worker process has one pipeline and one thread that runs it (:class:`Engine`):
  a spaCy pipeline object is not safe to call from several threads at once, and
  coding off the event loop keeps the worker answering (``/health``, time limits,
  refusals) while a long note is coded. Scale with ``--workers``, not threads.
- The pipeline is built in the lifespan, in that thread, before the worker accepts
  connections: the kernel hands the shared socket's connections only to workers
  that can code, and a rolling restart (SIGHUP) waits for the new worker's
  pipeline. Building takes seconds, and a uvicorn worker spawned by the console
  script first re-imports it (all of notecoder, 4-8 s) before it can answer its
  supervisor's pings, so the supervisor's health-check timeout is
  :data:`WORKER_HEALTHCHECK_SECONDS`, not uvicorn's 5 s (which killed and
  restarted such workers). Connections get uvicorn's h11 protocol with Nagle's
  algorithm off (uvicorn leaves it on for ``--workers`` > 1, 40 ms per answer)
  and :data:`HEADER_SECONDS` to send each request's line and headers.
- Each request that codes notes has a time limit (``--timeout``, counted from its
  arrival, body upload included): past it the client gets 504, and the pipeline
  thread drops the note at its next step (a step already running finishes first;
  one that holds the GIL inside C code, like spaCy's tokenizer on pathological
  input, holds up the whole process, its 504 included). At most ``--max-queue``
  such requests wait or run per worker; more get 503 with ``Retry-After``, so a
  burst or a few huge notes cannot pile up work that no client will wait for.
- spaCy's StringStore keeps every new token text: a worker's pipeline keeps
  ``api.NEW_STRINGS_KEPT`` new strings (``max_new_strings``), then codes each
  note in a spaCy 3.8 memory zone (``api.strings_scope``); spaCy 3.7 has no
  zones, and there the pipeline is rebuilt (the new one built first, then
  swapped, in the pipeline thread between requests) once it has learnt as many.
- A note that breaks the pipeline is answered 200 with ``error`` set, like
  ``notecoder.suggest``; the service stays up.
- Bodies over 1 MB are refused with 413 by an ASGI middleware that checks both
  the Content-Length header and the bytes actually received (chunked uploads
  have no header); a body not received within the time limit gets 408.
- Notes are PHI. Bound to anything but loopback, the command refuses to start
  without an API key (``--api-key-file`` or ``NOTECODER_API_KEY``) unless told
  ``--insecure-no-auth``; with a key, every endpoint but ``/health`` and the
  static review page needs ``Authorization: Bearer <key>`` (compared in constant
  time). A Host header not in the allowed hosts (loopback names and the bound
  host by default) gets 400, against DNS rebinding. Every response says
  ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff``; the review
  page gets a Content-Security-Policy that lets it fetch nothing but this service
  and be framed by no one.
- Note text is never logged and never echoed in an error: validation errors
  drop the offending input, and log lines carry only the request id, method,
  path, status, timing and counts. Every log line written while a request is
  handled carries its request id (``X-Request-ID`` if the caller sent a sane
  one, else a new one), which is also echoed in the response header. Fields a
  caller controls (note id, path) are logged with control characters escaped and
  cut to :data:`MAX_LOG_FIELD` characters, and every string argument of every log
  record in the service has its control characters escaped: no caller can forge
  a log line.
- FastAPI and uvicorn are imported only when the app is built, so the rest of
  the ``notecoder`` command works without the ``serve`` extra installed. (This
  module therefore does not use ``from __future__ import annotations``: FastAPI
  reads the endpoint annotations, which must be real objects.)
"""

import argparse
import asyncio
import contextvars
import functools
import gc
import hmac
import ipaddress
import json
import logging
import math
import os
import queue
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, field_validator
from spacy.language import Language
from spacy.tokens import Doc

import notecoder
from notecoder import icd10cm
from notecoder.api import NEW_STRINGS_KEPT, strings_scope, suggest
from notecoder.errors import Errors, PipelineLoadError, UserError
from notecoder.fhir import to_fhir_batch_bundle, to_fhir_bundle
from notecoder.pipeline import load as load_pipeline
from notecoder.result import empty_result

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 1_000_000
#: Most notes in one batch request: keeps one request's hold on the pipeline thread bounded.
MAX_BATCH = 100
#: Format of every log line of ``notecoder serve`` (uvicorn's included).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
#: Longest caller-controlled field (note id, path) in a log line, in characters.
MAX_LOG_FIELD = 128

#: Seconds a request that codes notes may take, by default (``--timeout``).
DEFAULT_TIMEOUT = 10.0
#: Requests per worker waiting or being coded, by default (``--max-queue``). At
#: ~7 ms per 300-word note, a full queue is coded well within the time limit.
DEFAULT_MAX_QUEUE = 64
#: What a client refused for a full queue is told to wait, in seconds.
RETRY_AFTER_SECONDS = 1
#: Host names every service answers to (the Host header, port removed).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: Environment variable holding the API key (``--api-key-file`` takes precedence).
API_KEY_ENV = "NOTECODER_API_KEY"
#: Shortest API key accepted: a guessable key on a PHI service is no key.
MIN_API_KEY_CHARS = 16
#: Paths answered without the API key: probes, and a static page that holds no data.
PUBLIC_PATHS = frozenset({"/health", "/review", "/"})
#: How ``notecoder serve`` hands its settings to the uvicorn worker processes.
SETTINGS_ENV = "NOTECODER_SERVE_SETTINGS"

# uvicorn's limits for slow or greedy clients (per worker process).
#: Seconds an idle keep-alive connection is kept.
KEEP_ALIVE_SECONDS = 5
#: Largest request line plus headers, in bytes (h11's default, made explicit).
MAX_HEADER_BYTES = 16 * 1024
#: Seconds a client has to send a request's line and headers.
HEADER_SECONDS = 10.0
#: Open connections (or requests in progress) past which uvicorn answers 503.
MAX_CONNECTIONS = 256
#: Seconds the supervisor waits for a worker's answer to its ping before it kills
#: the worker. A spawned worker answers only after re-importing the console script
#: (all of notecoder: 4-8 s on 2 busy cores), so uvicorn's 5 s killed workers
#: forever; 60 s leaves room for a slow machine and still ends a hung worker.
WORKER_HEALTHCHECK_SECONDS = 60

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar(
    "notecoder_request_id", default="-"
)
#: When the request being handled must be answered (``time.monotonic()``).
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "notecoder_deadline", default=None
)
#: A caller's request id is used only if it is short and plain (it goes into logs).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: What could break a log line or a terminal: C0/C1 controls, Unicode line and
#: paragraph separators, lone surrogates.
_UNSAFE_IN_LOGS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --- logging -------------------------------------------------------------------------------


def escape_controls(text: str) -> str:
    """``text`` with control characters written as Python escapes (``\\n``, ``\\x1b``)."""
    return _UNSAFE_IN_LOGS.sub(lambda m: repr(m.group())[1:-1], text)


def log_field(value: object) -> str:
    """A caller-controlled value for a log line: escaped, and cut to :data:`MAX_LOG_FIELD`."""
    text = escape_controls(str(value))
    if len(text) > MAX_LOG_FIELD:
        text = f"{text[:MAX_LOG_FIELD]}...({len(text)} chars)"
    return text


class RequestIdFilter(logging.Filter):
    """Puts the current request id on records, for handlers set up outside ``create_app``.

    ``create_app`` already gives every record its id through the log-record
    factory; this filter is for a handler whose records may predate that.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _REQUEST_ID.get()
        return True


def install_log_record_factory() -> None:
    """Give every log record of this process the request id, and escaped arguments.

    A record factory rather than a handler filter, so it holds whatever handlers
    the deployment configures (uvicorn's, a JSON logger's, pytest's). String
    arguments get their control characters escaped, whoever logs them (a note id
    reaches ``notecoder.api``'s lines too): one record is one line. Idempotent.
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_notecoder", False):
        return

    def notecoder_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = _REQUEST_ID.get()
        if isinstance(record.args, tuple):
            record.args = tuple(
                escape_controls(a) if isinstance(a, str) else a for a in record.args
            )
        return record

    notecoder_record._notecoder = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(notecoder_record)


def current_request_id() -> str:
    """The id of the request being handled ("-" outside a request)."""
    return _REQUEST_ID.get()


# --- settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What one service process enforces; ``notecoder serve`` hands it to every worker."""

    timeout: float = DEFAULT_TIMEOUT
    max_queue: int = DEFAULT_MAX_QUEUE
    #: Host header names answered (port removed, lower case); "*" answers any.
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    api_key: str | None = field(default=None, repr=False)
    max_new_strings: int = NEW_STRINGS_KEPT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        """The settings ``notecoder serve`` put in :data:`SETTINGS_ENV` (defaults without it).

        The key itself never goes in there: a worker reads it from the key file,
        or from :data:`API_KEY_ENV`, as the command did.
        """
        given = json.loads(environ.get(SETTINGS_ENV) or "{}")
        return cls(
            timeout=float(given.get("timeout", DEFAULT_TIMEOUT)),
            max_queue=int(given.get("max_queue", DEFAULT_MAX_QUEUE)),
            allowed_hosts=tuple(given.get("allowed_hosts", LOOPBACK_HOSTS)),
            api_key=read_api_key(given.get("api_key_file"), environ),
        )


def read_api_key(path: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The API key: the file's content (stripped) if ``path``, else :data:`API_KEY_ENV`."""
    if path is not None:
        try:
            key = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            raise UserError(Errors.E061.format(path=path, reason=reason)) from None
        if not key:
            raise UserError(Errors.E061.format(path=path, reason="the file is empty"))
    else:
        key = environ.get(API_KEY_ENV, "").strip()
        if not key:
            return None
    if len(key) < MIN_API_KEY_CHARS:
        raise UserError(Errors.E062.format(length=len(key), minimum=MIN_API_KEY_CHARS))
    return key


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(host: str, api_key: str | None, insecure_no_auth: bool) -> None:
    """Refuse to serve notes (PHI) beyond this machine without an API key, unless told to."""
    if api_key is None and not insecure_no_auth and not is_loopback(host):
        raise UserError(Errors.E060.format(host=host))


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The Host names to answer: loopback, the bound address (unless a wildcard), ``extra``."""
    names = list(LOOPBACK_HOSTS)
    if bound not in ("0.0.0.0", "::", ""):
        names.append(f"[{bound.strip('[]')}]" if ":" in bound else bound)
    names.extend(extra)
    return tuple(dict.fromkeys(name.lower() for name in names))


def _host_name(header: str) -> str:
    """The name in a Host header, port removed, lower case (``[::1]:8000`` -> ``[::1]``)."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0]


# --- request bodies ------------------------------------------------------------------------


class NoteIn(BaseModel):
    """One note to code. Strict types: a scribe that sends a number as text has a bug."""

    model_config = ConfigDict(extra="ignore")

    note_id: StrictStr | None = None
    text: StrictStr
    setting: Literal["outpatient", "inpatient"] = "outpatient"


class BatchIn(BaseModel):
    """Up to :data:`MAX_BATCH` notes, coded in order."""

    model_config = ConfigDict(extra="ignore")

    notes: list[NoteIn]

    @field_validator("notes", mode="before")
    @classmethod
    def _at_most_max_batch(cls, value: Any) -> Any:
        # Checked before the items are validated, so an oversized batch costs nothing.
        if isinstance(value, list) and len(value) > MAX_BATCH:
            raise ValueError(
                f"at most {MAX_BATCH} notes per request, got {len(value)}: split the batch"
            )
        return value


# --- the pipeline of this worker -----------------------------------------------------------


class QueueFull(Exception):
    """This worker already has ``max_queue`` requests waiting or being coded."""


class OutOfTime(BaseException):
    """A request's time is up. Not an ``Exception``: ``suggest`` catches those."""


class _Budgeted:
    """The pipeline for one request: stops between its steps once the request's time is up.

    Stands in for the ``Language`` that ``notecoder.suggest`` calls (``make_doc``,
    then the components in order, as ``Language.__call__`` runs them), so that a
    note whose client has given up stops holding the pipeline thread at the next
    step rather than at the end.
    """

    def __init__(self, nlp: Language, deadline: float) -> None:
        self._nlp = nlp
        self._deadline = deadline

    def _check(self) -> None:
        if time.monotonic() >= self._deadline:
            raise OutOfTime

    def make_doc(self, text: str) -> Doc:
        self._check()
        return self._nlp.make_doc(text)

    def __call__(self, doc: Doc) -> Doc:
        for _name, step in self._nlp.pipeline:
            self._check()
            doc = step(doc)
        return doc


#: Work for the pipeline thread: called with a function that codes one note.
Work = Callable[[Callable[[NoteIn], dict[str, Any]]], Any]


@dataclass
class _Job:
    """Work for the pipeline thread, with its deadline and its request's context."""

    work: Work
    deadline: float
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    future: Future = field(default_factory=Future)


class Engine:
    """The pipeline of one worker process, and the one thread that runs it.

    Requests hand their work to the thread through a queue and wait for it on the
    event loop, up to their deadline. A slot (:data:`Settings.max_queue` of them)
    is held from admission to the end of the work, so queued work is bounded; a
    job whose client gave up before it started is skipped.
    """

    def __init__(self, nlp: Language | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._nlp = nlp
        self._base_strings = len(nlp.vocab.strings) if nlp is not None else 0
        self._slots = threading.BoundedSemaphore(self.settings.max_queue)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.load_error: str | None = None
        #: Times the pipeline was rebuilt because its string store grew.
        self.rebuilds = 0

    @property
    def loaded(self) -> bool:
        return self._nlp is not None

    # -- on the event loop --

    def start(self) -> None:
        """Start the pipeline thread (a daemon: a note stuck in C code never blocks exit)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="notecoder-pipeline", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Let the pipeline thread end once the work handed to it is done."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    async def load(self) -> None:
        """Build the pipeline in its thread (a failure is logged, and kept in ``load_error``)."""
        await self.run(lambda code: self._pipeline_or_none(), deadline=math.inf)

    async def run(self, work: Work, deadline: float | None = None) -> Any:
        """``work(code)`` in the pipeline thread, by ``deadline`` (default: the request's).

        Raises :class:`QueueFull` when every slot is taken and :class:`OutOfTime`
        when the deadline passes first (the work then stops at its next step).
        """
        if deadline is None:
            deadline = _DEADLINE.get() or time.monotonic() + self.settings.timeout
        if not self._slots.acquire(blocking=False):
            raise QueueFull
        self.start()
        job = _Job(work, deadline)
        self._jobs.put(job)
        timeout = None if deadline == math.inf else max(0.0, deadline - time.monotonic())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout)
        except TimeoutError:  # wait_for has cancelled the job, if it had not started
            raise OutOfTime from None

    # -- in the pipeline thread --

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            if not job.future.set_running_or_notify_cancel():  # its client gave up waiting
                self._slots.release()
                continue
            code = functools.partial(self._code, deadline=job.deadline)
            # The slot is free before the answer is: a client may send its next request at once.
            try:
                result = job.context.run(job.work, code)
            except BaseException as err:  # OutOfTime too: for the waiting request to raise
                self._slots.release()
                job.future.set_exception(err)
            else:
                self._slots.release()
                job.future.set_result(result)
            self._rebuild_if_grown()

    def _pipeline_or_none(self) -> Language | None:
        try:
            return self._pipeline()
        except Exception:
            log.error("pipeline failed to load: %s", self.load_error)
            return None

    def _pipeline(self) -> Language:
        """The pipeline, built on first use (again after a failure, which is kept)."""
        if self._nlp is None:
            try:
                self._nlp = load_pipeline()
                self._base_strings = len(self._nlp.vocab.strings)
                self.load_error = None
            except PipelineLoadError as err:  # names the file to fix; holds no note text
                self.load_error = str(err)
                raise
            except Exception as err:
                self.load_error = type(err).__name__
                raise
        return self._nlp

    def _code(self, note: NoteIn, deadline: float) -> dict[str, Any]:
        """``notecoder.suggest`` for one note; raises only :class:`OutOfTime`, logs no text."""
        try:
            nlp = self._pipeline()
            # Here, not in suggest(): the stand-in it is given has no vocabulary of its own.
            with strings_scope(nlp, note.text, self.settings.max_new_strings):
                return suggest(
                    note.text,
                    note_id=note.note_id,
                    setting=note.setting,
                    nlp=_Budgeted(nlp, deadline),  # type: ignore[arg-type]
                )
        except Exception as err:  # the service answers every note, and stays up
            log.error("note %s failed: %s", log_field(note.note_id), type(err).__name__)
            error = (
                str(err)
                if isinstance(err, PipelineLoadError)
                else f"internal error: {type(err).__name__}"
            )
            result = empty_result(note.note_id, error)
            result["setting"] = note.setting
            return result

    def _rebuild_if_grown(self) -> None:
        """spaCy 3.7: a fresh pipeline once this one has learnt ``max_new_strings`` new strings.

        The new one is built before the old one goes, so a build that fails
        (a rule file edited since start) leaves the worker coding; it is tried
        again after as many new strings.
        """
        nlp = self._nlp
        if (
            nlp is None
            or hasattr(nlp, "memory_zone")  # spaCy 3.8: strings_scope bounds the vocabulary
            or len(nlp.vocab.strings) <= self._base_strings + self.settings.max_new_strings
        ):
            return
        grown = len(nlp.vocab.strings) - self._base_strings
        try:
            fresh = load_pipeline()
        except Exception as err:
            log.error("could not rebuild the pipeline (%s): keeping this one", type(err).__name__)
            self._base_strings = len(nlp.vocab.strings)
            return
        self._nlp, self._base_strings = fresh, len(fresh.vocab.strings)
        self.rebuilds += 1
        del nlp
        gc.collect()  # the old pipeline's Docs and spans hold cycles
        log.info("pipeline rebuilt after learning %d new strings", grown)


# --- ASGI middleware: hosts, API key, body limit, request id, headers, access log ----------


def _json_bytes(payload: Any) -> bytes:
    """JSON as UTF-8; an unpaired surrogate (from a JSON escape) becomes '?', never a 500."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", errors="replace")


async def _send_json(
    send: Send,
    status: int,
    payload: Any,
    request_id: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    body = _json_bytes(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"detail": [{"loc": [field], "msg": msg, "type": kind}], "message": f"{field}: {msg}"}


#: On every response: it may hold PHI (never cache it), and is exactly its content type.
_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_REPLACED_HEADERS = {b"x-request-id"} | {name for name, _ in _SECURITY_HEADERS}


class RequestGuard:
    """Host and API-key checks, request id, deadline, body limit, security headers,
    last-resort 500 and one access-log line per request.

    A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it can
    count the body as it arrives and refuse it before the app parses anything,
    and it keeps the request's context (its id, its deadline) for the endpoint.
    """

    def __init__(
        self, app: ASGIApp, max_body: int = MAX_BODY_BYTES, settings: Settings | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.settings = settings or Settings()
        self._hosts = frozenset(self.settings.allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = _REQUEST_ID.set(request_id)
        started = time.perf_counter()
        deadline = _DEADLINE.set(time.monotonic() + self.settings.timeout)
        state = {"status": 0, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["sent"] = True
                kept = [
                    h for h in message.get("headers", []) if h[0].lower() not in _REPLACED_HEADERS
                ]
                message["headers"] = [
                    *kept,
                    *_SECURITY_HEADERS,
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if await self._admitted(scope, headers, send_with_id, request_id):
                replay = await self._read_body(scope, receive, headers, send_with_id, request_id)
                if replay is not None:
                    await self.app(scope, replay, send_with_id)
        except Exception as err:  # the traceback could quote note text: log the type only
            log.error(
                "unhandled %s in %s %s",
                type(err).__name__,
                log_field(scope["method"]),
                log_field(scope["path"]),
            )
            if not state["sent"]:
                await _send_json(
                    send_with_id,
                    500,
                    {"detail": f"internal error: {type(err).__name__}"},
                    request_id,
                )
        finally:
            log.info(
                "%s %s %s %.1fms",
                log_field(scope["method"]),
                log_field(scope["path"]),
                state["status"] or "-",
                (time.perf_counter() - started) * 1000,
            )
            _DEADLINE.reset(deadline)
            _REQUEST_ID.reset(token)

    async def _admitted(
        self, scope: Scope, headers: dict[str, str], send: Send, request_id: str
    ) -> bool:
        """Whether the Host is allowed and, where needed, the API key right; else refused.

        A request without a Host header (HTTP/1.0) passes the host check: DNS
        rebinding works through a browser, and browsers always send one.
        """
        host = headers.get("host")
        if host is not None and "*" not in self._hosts and _host_name(host) not in self._hosts:
            detail = "Host header not allowed: add the name clients use with --allowed-host"
            await _send_json(send, 400, {"detail": detail}, request_id)
            return False
        key = self.settings.api_key
        if key is None or scope["path"] in PUBLIC_PATHS:
            return True
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), key.encode("utf-8")
        ):
            return True
        detail = "missing or wrong API key: send the header Authorization: Bearer <key>"
        challenge = (b"www-authenticate", b'Bearer realm="notecoder"')
        await _send_json(send, 401, {"detail": detail}, request_id, [challenge])
        return False

    async def _read_body(
        self, scope: Scope, receive: Receive, headers: dict[str, str], send: Send, request_id: str
    ) -> Receive | None:
        """The whole body, checked; a ``receive`` that replays it, or None if refused."""
        import anyio

        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                await _send_json(
                    send, 400, _error("content-length", "not a number", "bad_header"), request_id
                )
                return None
            if int(length) > self.max_body:
                await _send_json(send, 413, self._too_large(), request_id)
                return None
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self.settings.timeout) as reading:  # a slow (or stalled) upload
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await _send_json(send, 413, self._too_large(), request_id)
                    return None
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        if reading.cancelled_caught:
            msg = f"request body not received within {self.settings.timeout:g} s"
            await _send_json(send, 408, _error("body", msg, "timeout"), request_id)
            return None
        body = b"".join(chunks)
        if scope["method"] == "POST" and body:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as err:
                msg = f"request body is not UTF-8 JSON (bad byte at {err.start})"
                await _send_json(send, 422, _error("body", msg, "json_invalid"), request_id)
                return None
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    def _too_large(self) -> dict[str, Any]:
        return _error(
            "body", f"request body over {self.max_body} bytes: send fewer notes", "too_large"
        )


# --- the app -------------------------------------------------------------------------------


def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "notes", 3, "text")`` -> ``notes.3.text`` (the field a caller must fix)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def code_entry(code: str) -> dict[str, Any] | None:
    """A code's tabular-list entry (None if unknown).

    Read from the coder's compact code table where it holds the code, else from the
    whole list (``icd10cm.full_table()``: the first such request pays for parsing
    it). ``excludes1``/``excludes2`` are the code's own notes; the ``*_inherited``
    lists add those of its ancestors (a block's Excludes1 applies to every code in
    it, e.g. discitis NOS at M50-M54), nearest first.
    """
    key = code.strip().upper()
    if not key or len(key) > 16:
        return None
    table = icd10cm.table()
    if key not in table:
        table = icd10cm.full_table()
        if key not in table:
            return None
    item = table[key]
    ancestors = [table[a] for a in table.ancestors(item.code)]
    return {
        "code": item.code,
        "description": item.description,
        "kind": item.kind,
        "parent": item.parent,
        "children": list(item.children),
        "billable": table.is_billable(item.code),
        "excludes1": list(item.excludes1),
        "excludes2": list(item.excludes2),
        "excludes1_inherited": [
            {"from": a.code, "note": n} for a in ancestors for n in a.excludes1
        ],
        "excludes2_inherited": [
            {"from": a.code, "note": n} for a in ancestors for n in a.excludes2
        ],
    }


def review_page() -> str:
    """The coder review page (package data: notecoder/static/review.html)."""
    return resources.files("notecoder").joinpath("static/review.html").read_text("utf-8")


#: The review page fetches nothing but this service (no CDN, no fonts, no images),
#: runs only its own inline script and style, and may not be framed (clickjacking).
_REVIEW_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def create_app(nlp: Language | None = None, settings: Settings | None = None) -> "FastAPI":
    """The FastAPI app; ``nlp`` for a pipeline already built (tests), else built at startup.

    ``settings`` default to :class:`Settings` ``()``: loopback hosts, no API key.
    """
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

    class FastJSON(JSONResponse):
        """Compact UTF-8 JSON that cannot fail on a lone surrogate."""

        def render(self, content: Any) -> bytes:
            return _json_bytes(content)

    settings = settings or Settings()
    install_log_record_factory()
    engine = Engine(nlp, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        # Build the pipeline (off the event loop) before the worker takes connections.
        await engine.load()
        try:
            yield
        finally:
            engine.stop()

    app = FastAPI(
        title="notecoder",
        version=notecoder.__version__,
        description="ICD-10-CM code suggestions and documentation-gap flags for spine notes.",
        default_response_class=FastJSON,
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.add_middleware(RequestGuard, settings=settings)
    page = review_page()

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> FastJSON:
        # FastAPI's default echoes the offending input (note text): keep field and reason only.
        detail = []
        for err in exc.errors():
            msg = str(err.get("msg", "invalid"))
            ctx = err.get("ctx") or {}
            if err.get("type") == "json_invalid" and isinstance(ctx.get("error"), str):
                msg = f"{msg}: {ctx['error']}"
            detail.append({"loc": list(err.get("loc", ())), "msg": msg, "type": err.get("type")})
        content_type = request.headers.get("content-type", "")
        if "json" not in content_type and any(d["loc"] == ["body"] for d in detail):
            detail.append(
                {
                    "loc": ["header", "content-type"],
                    "msg": "send the body as JSON, with Content-Type: application/json",
                    "type": "content_type",
                }
            )
        message = "; ".join(
            f"body at character {d['loc'][1]}: {d['msg']}"
            if d["type"] == "json_invalid" and len(d["loc"]) == 2
            else f"{_where(d['loc'])}: {d['msg']}"
            for d in detail[:10]
        )
        if len(detail) > 10:
            message += f"; and {len(detail) - 10} more"
        return FastJSON({"detail": detail, "message": message}, status_code=422)

    async def coded(work: Work) -> Response:
        """The JSON ``work`` renders in the pipeline thread; 503 if queue full, 504 if late."""
        try:
            body = await engine.run(work)
        except QueueFull:
            log.warning("refused: %d requests already waiting or being coded", settings.max_queue)
            detail = (
                f"busy: {settings.max_queue} requests are already waiting or being coded; "
                f"retry after {RETRY_AFTER_SECONDS} s"
            )
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return FastJSON({"detail": detail}, status_code=503, headers=headers)
        except OutOfTime:
            log.warning("not coded within the %g s time limit", settings.timeout)
            detail = (
                f"not coded within the {settings.timeout:g} s time limit: "
                "send shorter notes or fewer per request"
            )
            return FastJSON({"detail": detail}, status_code=504)
        return Response(body, media_type="application/json")

    Format = Literal["json", "fhir"]
    format_query = Query(
        "json",
        alias="format",
        description="json: the docs/formats.md result; fhir: a FHIR R4 Bundle of Conditions",
    )

    @app.post("/v1/suggest", summary="Code one note")
    async def suggest_one(note: NoteIn, fmt: Format = format_query) -> Response:
        def work(code: Callable[[NoteIn], dict[str, Any]]) -> bytes:
            result = code(note)
            log.info("coded note %s: %d codes, %d flags", log_field(note.note_id), *_counts(result))
            return _json_bytes(to_fhir_bundle(result) if fmt == "fhir" else result)

        return await coded(work)

    @app.post("/v1/suggest/batch", summary=f"Code up to {MAX_BATCH} notes, in order")
    async def suggest_batch(batch: BatchIn, fmt: Format = format_query) -> Response:
        def work(code: Callable[[NoteIn], dict[str, Any]]) -> bytes:
            results = [code(note) for note in batch.notes]
            errors = sum(1 for r in results if r["error"])
            log.info("coded batch of %d notes, %d errors", len(results), errors)
            if fmt == "fhir":
                return _json_bytes(to_fhir_batch_bundle(results))
            return _json_bytes({"results": results})

        return await coded(work)

    @app.get("/v1/codes/{code}", summary="One ICD-10-CM code from the FY2026 tabular list")
    def get_code(code: str) -> FastJSON:
        entry = code_entry(code)
        if entry is None:
            shown = code[:32]
            return FastJSON({"detail": f"unknown ICD-10-CM code {shown!r}"}, status_code=404)
        return FastJSON(entry)

    @app.get("/v1/codes", summary="Search the billable FY2026 ICD-10-CM codes, with descriptions")
    def search_codes(
        prefix: str | None = Query(
            None,
            min_length=1,
            max_length=8,
            pattern=r"^[A-Za-z][0-9A-Za-z.]*$",
            description="codes that start with this (any case, with or without the dot)",
        ),
        q: str | None = Query(
            None,
            min_length=2,
            max_length=100,
            description="or: codes whose description holds every one of these words",
        ),
        limit: int = Query(20, ge=1, le=100, description="most codes answered"),
    ) -> FastJSON:
        # The whole list (pipelines/icd10cm_codes.json), not the coder's compact table: a
        # coder may add any billable code; never simple-icd-10-cm, whose import takes seconds.
        if (prefix is None) == (q is None):
            where = ("query", "prefix" if prefix is None else "q")
            raise RequestValidationError(
                [{"loc": where, "msg": "give either prefix or q", "type": "value_error"}]
            )
        codes = icd10cm.code_list()
        found = codes.with_prefix(prefix) if prefix is not None else codes.with_words(q or "")
        shown = [{"code": c, "description": codes.description(c)} for c in found[:limit]]
        return FastJSON({"codes": shown, "total": len(found)})

    @app.get("/health", summary="Liveness, version and the worker's process id")
    async def health() -> FastJSON:
        status = "error" if engine.load_error and not engine.loaded else "ok"
        payload = {
            "status": status,
            "version": notecoder.__version__,
            "pipeline": "loaded" if engine.loaded else (engine.load_error or "not loaded"),
            "pid": os.getpid(),
        }
        return FastJSON(payload, status_code=503 if status == "error" else 200)

    @app.get("/review", response_class=HTMLResponse, summary="Coder review page")
    def review() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": _REVIEW_CSP})

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review")

    return app


def _counts(result: dict[str, Any]) -> tuple[int, int]:
    return len(result["codes"]), len(result["flags"])


def _no_delay_h11_protocol() -> type:
    """uvicorn's h11 protocol, with Nagle's algorithm off and a time limit on headers.

    asyncio turns Nagle's algorithm off only on sockets whose ``proto`` is TCP,
    and the socket uvicorn binds for ``--workers`` > 1 has proto 0: each response
    (headers, then body: two writes) then waited for the client's delayed ACK,
    40 ms. uvicorn times only idle keep-alive connections: a client that sends
    its request line and headers a byte at a time (slowloris) held its
    connection for as long as it liked, and a few hundred such clients took
    every connection the worker allows. Each request's line and headers must
    now arrive within :data:`HEADER_SECONDS` of the connection (or of the
    previous response), else the connection is closed.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class NoDelayH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the request's headers are in
                self._stop_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE:  # (a pipelined request already came)
                self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._stop_header_timer()
            if not self.transport.is_closing():
                self._header_timer = self.loop.call_later(HEADER_SECONDS, self._headers_late)

        def _stop_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return NoDelayH11Protocol


def __getattr__(name: str) -> Any:
    """``notecoder.serve:app`` (and its HTTP protocol) for uvicorn, built on first access.

    Lazy (PEP 562) so that importing this module (the CLI does) needs neither
    FastAPI nor a pipeline; each uvicorn worker process builds its own app and
    pipeline, with the settings ``notecoder serve`` left in :data:`SETTINGS_ENV`.
    """
    if name == "app":
        app = create_app(settings=Settings.from_env())
        globals()["app"] = app
        return app
    if name == "NoDelayH11Protocol":
        protocol = _no_delay_h11_protocol()
        globals()[name] = protocol
        return protocol
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- running it ----------------------------------------------------------------------------


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging config: every line in :data:`LOG_FORMAT`, with the request id."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "notecoder",
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # Only the standard library here: uvicorn applies this config in each worker
        # process before the worker answers its supervisor's health ping, so it must
        # not import notecoder (spaCy). The id comes from the record factory that
        # create_app installs; "-" before that.
        "formatters": {
            "notecoder": {
                "()": "logging.Formatter",
                "fmt": LOG_FORMAT,
                "defaults": {"request_id": "-"},
            }
        },
        "handlers": {"default": handler},
        "loggers": {
            name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "notecoder")
        }
        | {"uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False}},
    }


def run(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_queue: int = DEFAULT_MAX_QUEUE,
    allowed_host: Iterable[str] = (),
    api_key_file: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
) -> None:
    """Serve with uvicorn; each of ``workers`` processes loads its own pipeline.

    The settings reach the workers (spawned processes that import
    ``notecoder.serve:app``) through :data:`SETTINGS_ENV`; the API key does not:
    they read it from ``api_key_file`` or :data:`API_KEY_ENV` themselves.
    """
    import uvicorn

    os.environ[SETTINGS_ENV] = json.dumps(
        {
            "timeout": timeout,
            "max_queue": max_queue,
            "allowed_hosts": allowed_hosts(host, allowed_host),
            "api_key_file": api_key_file,
        }
    )
    uvicorn.run(
        "notecoder.serve:app",
        host=host,
        port=port,
        workers=workers,
        http="notecoder.serve:NoDelayH11Protocol",
        log_config=log_config(log_level),
        access_log=False,  # RequestGuard writes one line per request, with its id
        server_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
    )


def serve_command(args: argparse.Namespace) -> int:
    """``notecoder serve``: run until interrupted; 2 if the serve extra is missing.

    Refuses (a :class:`~notecoder.errors.UserError`) to serve on a non-loopback
    address without an API key, unless ``--insecure-no-auth``.
    """
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        print(
            f"notecoder serve needs the serve extra ({err.name} is missing): "
            "pip install 'notecoder[serve]'",
            file=sys.stderr,
        )
        return 2
    if args.workers < 1:
        print("notecoder serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if (args.ssl_keyfile is None) != (args.ssl_certfile is None):
        raise UserError(Errors.E063)
    for tls_file in (args.ssl_keyfile, args.ssl_certfile):
        if tls_file is not None and not Path(tls_file).is_file():
            raise UserError(Errors.E001.format(path=tls_file))
    key = read_api_key(args.api_key_file)
    check_exposure(args.host, key, args.insecure_no_auth)
    if key is None and not is_loopback(args.host):
        print(
            f"notecoder serve: warning: serving on {args.host} without an API key "
            "(--insecure-no-auth): anyone who can reach the port can send notes and read "
            "their codes",
            file=sys.stderr,
        )
    if args.host in ("0.0.0.0", "::") and not args.allowed_host:
        print(
            f"notecoder serve: warning: bound to {args.host}, but only requests to "
            f"{', '.join(LOOPBACK_HOSTS)} are answered: add --allowed-host NAME for each "
            "name clients use",
            file=sys.stderr,
        )
    run(
        args.host,
        args.port,
        args.workers,
        args.log_level,
        timeout=args.timeout,
        max_queue=args.max_queue,
        allowed_host=args.allowed_host,
        api_key_file=args.api_key_file,
        ssl_keyfile=args.ssl_keyfile,
        ssl_certfile=args.ssl_certfile,
    )
    return 0
