"""``suggest``: one note in, one docs/formats.md result out, never an exception.

Scribe post-processing calls this once per note, so the pipeline is built once
per process and reused. Input that cannot be coded (not text, too long, empty)
gets a result with ``error`` set; nothing here logs or raises note text.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from weakref import WeakKeyDictionary

from spacy.language import Language
from spacy.tokens import Doc

from notecoder.errors import PipelineLoadError
from notecoder.pipeline import load
from notecoder.result import doc_to_result, empty_result

log = logging.getLogger(__name__)

SETTINGS = ("outpatient", "inpatient")
#: Longest note accepted, in characters (a dictated note is rarely over 50,000).
MAX_NOTE_CHARS = 1_000_000
#: Control characters other than tab, newline and carriage return, and lone
#: surrogates: replaced one-for-one by a space / U+FFFD so offsets stay valid.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

_nlp: Language | None = None
_lock = threading.Lock()


def default_pipeline() -> Language:
    """The process-wide pipeline, built on first use."""
    global _nlp
    with _lock:
        if _nlp is None:
            _nlp = load()
        return _nlp


def clean_text(text: str) -> str:
    """The note with control characters and lone surrogates replaced, same length."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", text))


#: New strings (token texts and their affixes) a pipeline learns for good beyond
#: those it was built with. spaCy's StringStore keeps every token text it has seen
#: (record numbers, names, typos), so a service or batch worker would grow with
#: every note; past this many, spaCy 3.8 codes each note in a memory zone and
#: spaCy 3.7 (no zones) has batch and serve rebuild the pipeline.
NEW_STRINGS_KEPT = 50_000
#: The vocabulary size at which each pipeline coded its first note here.
_built_with: WeakKeyDictionary[Language, int] = WeakKeyDictionary()


def strings_scope(nlp: Language, text: str, kept: int | None = None) -> AbstractContextManager[Any]:
    """Where the strings a note adds to the vocabulary go: kept, or dropped once it is coded.

    spaCy 3.8's ``memory_zone`` drops them, but a note coded in a zone makes the
    lexemes of all its words again, however common: on a pipeline that has learnt
    no words, 40% fewer notes per CPU second. So a pipeline keeps the strings of
    the notes it codes until it holds ``kept`` (default ``NEW_STRINGS_KEPT``) more
    than when it coded its first note, and then codes every note in a zone, as it
    does a note that could take it past that (a note adds fewer new strings than
    it has characters). The vocabulary is bounded and holds the words of the
    first notes, the common ones. The result is plain data and outlives the zone.
    """
    zone = getattr(nlp, "memory_zone", None)
    if zone is None:
        return nullcontext()
    strings = len(nlp.vocab.strings)
    base = _built_with.setdefault(nlp, strings)
    if strings + len(text) <= base + (NEW_STRINGS_KEPT if kept is None else kept):
        return nullcontext()
    return zone()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while one note is coded.

    A note makes a Python object per token and span, all alive until it is
    coded; the collector walks them again and again as they pile up, which
    made a 1 MB note take 4.1 s instead of 2.3 s and grow faster than its
    length. What a note leaves behind is collected once the collector is back
    on. (If another thread turned it off, it is left to that thread.)
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def suggest(
    text: Any,
    *,
    note_id: str | None = None,
    setting: str = "outpatient",
    nlp: Language | None = None,
    read: Callable[[Doc, str | None], dict[str, Any]] = doc_to_result,
) -> dict[str, Any]:
    """Code suggestions, gap flags and entities for one note (docs/formats.md result).

    Offsets index ``text`` as given (bytes are decoded as UTF-8 first); texts in
    the result come from the cleaned text, which differs only where a control
    character or lone surrogate was replaced. ``read`` turns the coded Doc into
    the result (``notecoder evaluate`` also reads the confidence features off it);
    it runs while the Doc's strings are alive, before the note's memory zone ends.
    """
    if setting not in SETTINGS:
        return empty_result(note_id, f"unknown setting {setting!r}: use outpatient or inpatient")
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as err:
            return empty_result(note_id, f"note is not UTF-8 text (bad byte at {err.start})")
    if not isinstance(text, str):
        return empty_result(note_id, f"note text must be a string, not {type(text).__name__}")
    if len(text) > MAX_NOTE_CHARS:
        return empty_result(
            note_id, f"note too long: {len(text)} characters (limit {MAX_NOTE_CHARS})"
        )
    if not text.strip():
        result = empty_result(note_id)
        result["setting"] = setting
        return result
    try:
        nlp = nlp or default_pipeline()
    except PipelineLoadError as err:  # the cause (a file to fix), not "internal error"
        log.error("pipeline failed to load: %s", err)
        return empty_result(note_id, str(err))
    try:
        with _collector_paused(), strings_scope(nlp, text):
            doc = nlp.make_doc(clean_text(text))
            doc._.setting = setting
            result = read(nlp(doc), note_id)
            # The Doc's records hold Spans, and each Span its Doc: let go of them and the
            # note is freed now, by reference counts, before the collector is back on
            # to walk it (a 1 MB note: millions of objects).
            doc.user_data.clear()
            del doc
    except Exception as err:  # one bad note must never stop the caller
        log.error("note %s failed: %s", note_id, type(err).__name__)
        return empty_result(note_id, f"internal error: {type(err).__name__}")
    return result
