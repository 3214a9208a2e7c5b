"""``notecoder serve``: the pipeline as an HTTP service for AI scribes, and a coder review page.

Endpoints (see ``/openapi.json``): ``POST /v1/suggest`` and ``POST /v1/suggest/batch``
(formats.md results, or a FHIR R4 Bundle with ``?format=fhir``), ``GET
/v1/codes/{code}`` (the tabular list entry of a code), ``GET /health`` and ``GET
/review`` (an offline HTML page where a coder pastes a note and checks the result).

Design choices, and why:

- Each worker process builds the pipeline once (at startup, so ``/health``
  answers only when it can code) and serialises its use with a lock: a spaCy
  pipeline object is not safe to call from several threads at once, and FastAPI
  runs sync endpoints in a thread pool. Scale with ``--workers``, not threads.
- A note that breaks the pipeline is answered 200 with ``error`` set, like
  ``notecoder.suggest``; the service stays up.
- Bodies over 1 MB are refused with 413 by an ASGI middleware that checks both
  the Content-Length header and the bytes actually received (chunked uploads
  have no header).
- Note text is never logged and never echoed in an error: validation errors
  drop the offending input, and log lines carry only the request id, method,
  path, status, timing and counts. Every log line written while a request is
  handled carries its request id (``X-Request-ID`` if the caller sent a sane
  one, else a new one), which is also echoed in the response header.
- FastAPI and uvicorn are imported only when the app is built, so the rest of
  the ``notecoder`` command works without the ``serve`` extra installed. (This
  module therefore does not use ``from __future__ import annotations``: FastAPI
  reads the endpoint annotations, which must be real objects.)
"""

import argparse
import contextvars
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import simple_icd_10_cm as icd
from pydantic import BaseModel, ConfigDict, StrictStr, field_validator
from spacy.language import Language

import notecoder
from notecoder.api import default_pipeline, suggest
from notecoder.codes import is_billable
from notecoder.errors import PipelineLoadError
from notecoder.fhir import to_fhir_batch_bundle, to_fhir_bundle
from notecoder.result import empty_result

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

#: Largest request body accepted, in bytes.
MAX_BODY_BYTES = 1_000_000
#: Most notes in one batch request: keeps one request's time (and lock hold) bounded.
MAX_BATCH = 100
#: Format of every log line of ``notecoder serve`` (uvicorn's included).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar(
    "notecoder_request_id", default="-"
)
#: A caller's request id is used only if it is short and plain (it goes into logs).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestIdFilter(logging.Filter):
    """Puts the current request id on records, for handlers set up outside ``create_app``.

    ``create_app`` already gives every record its id through the log-record
    factory; this filter is for a handler whose records may predate that.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _REQUEST_ID.get()
        return True


def install_request_id_logging() -> None:
    """Give every log record of this process the current request id (idempotent).

    A record factory rather than a handler filter, so it holds whatever handlers
    the deployment configures (uvicorn's, a JSON logger's, pytest's).
    """
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_notecoder_request_id", False):
        return

    def with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = _REQUEST_ID.get()
        return record

    with_request_id._notecoder_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(with_request_id)


def current_request_id() -> str:
    """The id of the request being handled ("-" outside a request)."""
    return _REQUEST_ID.get()


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


class Engine:
    """The pipeline of one worker process, and the lock that serialises its use."""

    def __init__(self, nlp: Language | None = None) -> None:
        self._nlp = nlp
        self._lock = threading.Lock()
        self.load_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._nlp is not None

    def pipeline(self) -> Language:
        """The pipeline, built on first use (``default_pipeline`` is shared per process)."""
        if self._nlp is None:
            try:
                self._nlp = default_pipeline()
                self.load_error = None
            except PipelineLoadError as err:  # names the file to fix; holds no note text
                self.load_error = str(err)
                raise
            except Exception as err:
                self.load_error = type(err).__name__
                raise
        return self._nlp

    def suggest(self, note: NoteIn) -> dict[str, Any]:
        """``notecoder.suggest`` for one note; never raises, never logs the text."""
        try:
            nlp = self.pipeline()
            with self._lock:
                return suggest(note.text, note_id=note.note_id, setting=note.setting, nlp=nlp)
        except Exception as err:  # the service answers every note, and stays up
            log.error("note %s failed: %s", note.note_id, type(err).__name__)
            error = (
                str(err)
                if isinstance(err, PipelineLoadError)
                else f"internal error: {type(err).__name__}"
            )
            result = empty_result(note.note_id, error)
            result["setting"] = note.setting
            return result


# --- ASGI middleware: body limit, request id, access log -----------------------------------


def _json_bytes(payload: Any) -> bytes:
    """JSON as UTF-8; an unpaired surrogate (from a JSON escape) becomes '?', never a 500."""
    text = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", errors="replace")


async def _send_json(send: Send, status: int, payload: Any, request_id: str) -> None:
    body = _json_bytes(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"detail": [{"loc": [field], "msg": msg, "type": kind}], "message": f"{field}: {msg}"}


class RequestGuard:
    """Request id, 1 MB body limit, last-resort 500 and one access-log line per request.

    A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it can
    count the body as it arrives and refuse it before the app parses anything,
    and it keeps the request's context (its id) for the endpoint and its threads.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = _REQUEST_ID.set(request_id)
        started = time.perf_counter()
        state = {"status": 0, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["sent"] = True
                kept = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*kept, (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            replay = await self._read_body(scope, receive, headers, send_with_id, request_id)
            if replay is not None:
                await self.app(scope, replay, send_with_id)
        except Exception as err:  # the traceback could quote note text: log the type only
            log.error("unhandled %s in %s %s", type(err).__name__, scope["method"], scope["path"])
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
                scope["method"],
                scope["path"],
                state["status"] or "-",
                (time.perf_counter() - started) * 1000,
            )
            _REQUEST_ID.reset(token)

    async def _read_body(
        self, scope: Scope, receive: Receive, headers: dict[str, str], send: Send, request_id: str
    ) -> Receive | None:
        """The whole body, checked; a ``receive`` that replays it, or None if refused."""
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
    """A code's tabular-list entry (None if unknown), read from simple-icd-10-cm.

    ``excludes1``/``excludes2`` are the code's own notes; the ``*_inherited``
    lists add those of its ancestors (a block's Excludes1 applies to every code in
    it, e.g. discitis NOS at M50-M54), nearest first.
    """
    key = code.strip().upper()
    if not key or len(key) > 16 or not icd.is_valid_item(key):
        return None
    dotted = icd.add_dot(key)
    ancestors = icd.get_ancestors(dotted)
    if icd.is_chapter(dotted):
        kind = "chapter"
    elif icd.is_block(dotted):
        kind = "block"
    elif icd.is_category(dotted):
        kind = "category"
    else:
        kind = "subcategory"
    return {
        "code": dotted,
        "description": icd.get_description(dotted),
        "kind": kind,
        "parent": icd.get_parent(dotted) or None,
        "children": list(icd.get_children(dotted)),
        "billable": is_billable(dotted),
        "excludes1": list(icd.get_excludes1(dotted)),
        "excludes2": list(icd.get_excludes2(dotted)),
        "excludes1_inherited": [
            {"from": a, "note": n} for a in ancestors for n in icd.get_excludes1(a)
        ],
        "excludes2_inherited": [
            {"from": a, "note": n} for a in ancestors for n in icd.get_excludes2(a)
        ],
    }


def review_page() -> str:
    """The coder review page (package data: notecoder/static/review.html)."""
    return resources.files("notecoder").joinpath("static/review.html").read_text("utf-8")


#: The review page fetches nothing but this service: no CDN, no fonts, no images.
_REVIEW_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)


def create_app(nlp: Language | None = None) -> "FastAPI":
    """The FastAPI app; ``nlp`` for a pipeline already built (tests), else built at startup."""
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
    from starlette.concurrency import run_in_threadpool

    class FastJSON(JSONResponse):
        """Compact UTF-8 JSON that cannot fail on a lone surrogate."""

        def render(self, content: Any) -> bytes:
            return _json_bytes(content)

    install_request_id_logging()
    engine = Engine(nlp)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        # Build the pipeline before the first request (and before /health says ok).
        try:
            await run_in_threadpool(engine.pipeline)
        except Exception:
            log.error("pipeline failed to load: %s", engine.load_error)
        yield

    app = FastAPI(
        title="notecoder",
        version=notecoder.__version__,
        description="ICD-10-CM code suggestions and documentation-gap flags for spine notes.",
        default_response_class=FastJSON,
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.add_middleware(RequestGuard)
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

    Format = Literal["json", "fhir"]
    format_query = Query(
        "json",
        alias="format",
        description="json: the formats.md result; fhir: a FHIR R4 Bundle of Conditions",
    )

    @app.post("/v1/suggest", summary="Code one note")
    def suggest_one(note: NoteIn, fmt: Format = format_query) -> FastJSON:
        result = engine.suggest(note)
        log.info("coded note %s: %d codes, %d flags", note.note_id, *_counts(result))
        return FastJSON(to_fhir_bundle(result) if fmt == "fhir" else result)

    @app.post("/v1/suggest/batch", summary=f"Code up to {MAX_BATCH} notes, in order")
    def suggest_batch(batch: BatchIn, fmt: Format = format_query) -> FastJSON:
        results = [engine.suggest(note) for note in batch.notes]
        errors = sum(1 for r in results if r["error"])
        log.info("coded batch of %d notes, %d errors", len(results), errors)
        if fmt == "fhir":
            return FastJSON(to_fhir_batch_bundle(results))
        return FastJSON({"results": results})

    @app.get("/v1/codes/{code}", summary="One ICD-10-CM code from the FY2026 tabular list")
    def get_code(code: str) -> FastJSON:
        entry = code_entry(code)
        if entry is None:
            shown = code[:32]
            return FastJSON({"detail": f"unknown ICD-10-CM code {shown!r}"}, status_code=404)
        return FastJSON(entry)

    @app.get("/health", summary="Liveness and version")
    def health() -> FastJSON:
        status = "error" if engine.load_error and not engine.loaded else "ok"
        payload = {
            "status": status,
            "version": notecoder.__version__,
            "pipeline": "loaded" if engine.loaded else (engine.load_error or "not loaded"),
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


def __getattr__(name: str) -> Any:
    """``notecoder.serve:app`` for uvicorn, built on first access (PEP 562).

    Lazy so that importing this module (the CLI does) needs neither FastAPI nor
    a pipeline; each uvicorn worker process builds its own app and pipeline.
    """
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
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
        # process before the worker answers its supervisor's health ping (and kills a
        # worker silent for 5 s), so it must not import notecoder (spaCy). The id comes
        # from the record factory that create_app installs; "-" before that.
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
    host: str = "127.0.0.1", port: int = 8000, workers: int = 1, log_level: str = "info"
) -> None:
    """Serve with uvicorn; each of ``workers`` processes loads its own pipeline."""
    import uvicorn

    uvicorn.run(
        "notecoder.serve:app",
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(log_level),
        access_log=False,  # RequestGuard writes one line per request, with its id
        server_header=False,
    )


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``serve`` subcommand, for ``cli.main``'s subparsers."""
    p = sub.add_parser("serve", help="run the HTTP service and the coder review page")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="processes, one pipeline each")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return p


def serve_command(args: argparse.Namespace) -> int:
    """``notecoder serve``: run until interrupted; 2 if the serve extra is missing."""
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
    run(args.host, args.port, args.workers, args.log_level)
    return 0
