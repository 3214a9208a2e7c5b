"""Annotated notes in the gold JSONL of docs/formats.md, read with every problem reported.

A researcher's file is rarely clean. Each line is checked (UTF-8, JSON,
required fields, offsets inside the text, span text matching its offsets, known
labels, unique ids) and a problem names the file and line; the rest of the file
is still read unless ``strict`` is set, in which case the first problem raises.
A problem never quotes note text: problems end up in reports and logs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notecoder.errors import Errors, GoldError, SourceError

#: Why a line of a JSONL file gave no note (keys of ``Corpus.skipped``).
BLANK, BAD_JSON, NOT_UTF8, NOT_OBJECT, NO_ID_OR_TEXT, DUPLICATE = (
    "blank",
    "bad JSON",
    "not UTF-8 text",
    "not a JSON object",
    "missing 'id' or 'text'",
    "duplicate id",
)
LABELS = frozenset({"CONDITION", "PAIN", "SPINAL_LEVEL", "IMAGING_FINDING", "TREATMENT"})
ATTRIBUTES = ("negated", "historical", "hypothetical", "uncertain", "family")


@dataclass
class Problem:
    """One thing wrong with an input file, where it is."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass
class Note:
    """One annotated (or predicted) note. ``None`` means the file does not say."""

    id: str
    text: str
    setting: str = "outpatient"
    codes: list[str] | None = None
    flags: list[str] | None = None
    entities: list[dict[str, Any]] | None = None
    source: str = ""  # file:line, for error messages and reports
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "text": self.text, "setting": self.setting}
        for key in ("codes", "flags", "entities"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update({k: v for k, v in self.extra.items() if not k.startswith("_")})
        return out


@dataclass
class Corpus:
    """Notes read from one or more files, with the problems found on the way.

    ``lines`` and ``skipped`` (why a line, or a BRAT file, gave no note, by kind)
    let a reader say in one line why a file held no note at all.
    """

    notes: list[Note] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    lines: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def by_id(self) -> dict[str, Note]:
        return {n.id: n for n in self.notes}


def check_entity(entity: Any, text: str | None) -> str | None:
    """What is wrong with one span annotation, or None (``text`` None: offsets unchecked)."""
    if not isinstance(entity, dict):
        return "entity is not an object"
    start, end = entity.get("start"), entity.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        return "entity start/end must be integers"
    if entity.get("label") not in LABELS:
        return f"unknown label {entity.get('label')!r}"
    if text is None:
        return None
    if not 0 <= start < end <= len(text):
        return f"entity offsets {start}-{end} outside the text (length {len(text)})"
    if "text" in entity and entity["text"] != text[start:end]:
        return f"entity text does not match the note's text at {start}-{end}"
    return None


def note_from_json(
    obj: Any, source: str, *, require_text: bool = True
) -> tuple[Note | None, list[str]]:
    """A Note from one parsed JSON object, and what is wrong with it.

    Gold needs its text; a prediction (a result line) may come without it, and
    its offsets are then taken on trust.
    """
    if not isinstance(obj, dict):
        return None, [NOT_OBJECT]
    note_id, text = obj.get("id", obj.get("note_id")), obj.get("text")
    if note_id is None or (require_text and not isinstance(text, str)):
        return None, [NO_ID_OR_TEXT]
    errors: list[str] = []
    entities = None
    if "entities" in obj:
        entities = []
        for i, entity in enumerate(obj["entities"] or []):
            problem = check_entity(entity, text if isinstance(text, str) else None)
            if problem:
                errors.append(f"entity {i}: {problem}")
            else:
                entities.append(entity)
    codes = names_of(obj.get("codes"), "code")
    flags = names_of(obj.get("flags"), "flag")
    known = {"id", "note_id", "text", "setting", "codes", "flags", "entities"}
    note = Note(
        id=str(note_id),
        text=text if isinstance(text, str) else "",
        setting=obj.get("setting") or "outpatient",
        codes=codes,
        flags=flags,
        entities=entities,
        source=source,
        extra={k: v for k, v in obj.items() if k not in known},
    )
    for key in ("codes", "flags"):  # a result's codes/flags carry evidence: keep it for reports
        if obj.get(key) and isinstance(obj[key][0], dict):
            note.extra[f"_{key}_detail"] = obj[key]
    return note, errors


def names_of(value: Any, key: str) -> list[str] | None:
    """Codes or flags as strings, from gold (["M53.85"]) or results ([{"code": ...}])."""
    if value is None:
        return None
    return [v[key] if isinstance(v, dict) else str(v) for v in value]


def read_jsonl(
    paths: str | Path | Iterable[str | Path], *, strict: bool = False, predictions: bool = False
) -> Corpus:
    """Read gold (or, with ``predictions``, result) JSONL files, one note per line."""
    if isinstance(paths, str | Path):
        paths = [paths]
    corpus = Corpus()
    seen: dict[str, str] = {}
    for path in map(Path, paths):
        for lineno, line, utf8 in _lines(path):
            corpus.lines += 1
            if not line.strip():
                corpus.skipped[BLANK] += 1
                continue
            source = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                kind = BAD_JSON if utf8 else NOT_UTF8  # not even text: say so, not "bad JSON"
                why = err.msg if utf8 else "another encoding, or binary"
                corpus.skipped[kind] += 1
                _problem(corpus, str(path), lineno, f"{kind} ({why})", strict)
                continue
            note, errors = note_from_json(obj, source, require_text=not predictions)
            for error in errors:
                _problem(corpus, str(path), lineno, error, strict)
            if note is None:
                corpus.skipped[errors[0]] += 1
                continue
            if note.id in seen:
                corpus.skipped[DUPLICATE] += 1
                _problem(
                    corpus,
                    str(path),
                    lineno,
                    f"{DUPLICATE} {note.id!r} (first at {seen[note.id]})",
                    strict,
                )
                continue
            seen[note.id] = source
            corpus.notes.append(note)
    return corpus


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(number, text, whether it was UTF-8) of every line of a file.

    Bytes that are not UTF-8 are replaced, so one stray byte in a note's text
    does not cost the note; the flag tells a line that is not JSON because it
    is not text at all.
    """
    try:
        f = path.open(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise SourceError(Errors.E001.format(path=path)) from None
    with f:
        for lineno, raw in enumerate(f, 1):
            line = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            yield lineno, line, line == raw


def require_notes(corpus: Corpus, path: str | Path, *, predictions: bool = False) -> Corpus:
    """``corpus``, unless it holds nothing to evaluate: then a GoldError saying why, in counts.

    Without this a CSV, an empty or a binary file given by mistake would score as
    empty tables and exit 0. Gold must also annotate something: a file of plain
    notes (id and text alone) has nothing to score against.
    """
    if not corpus.notes:
        reasons = ", ".join(f"{n} {kind}" for kind, n in corpus.skipped.most_common())
        if not reasons:
            reasons = "the file is empty" if Path(path).is_file() else "its files are empty"
        template = Errors.E041 if predictions else Errors.E040
        raise GoldError(template.format(path=path, lines=corpus.lines, reasons=reasons))
    if not predictions and all(
        n.entities is None and n.codes is None and n.flags is None for n in corpus.notes
    ):
        raise GoldError(Errors.E043.format(path=path, notes=len(corpus.notes)))
    return corpus


def write_jsonl(notes: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Write one JSON object per line (results or gold)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for note in notes:
            f.write(json.dumps(note, ensure_ascii=False) + "\n")


def _problem(corpus: Corpus, file: str, line: int | None, message: str, strict: bool) -> None:
    problem = Problem(file, line, message)
    if strict:
        raise GoldError(str(problem))
    corpus.problems.append(problem)
