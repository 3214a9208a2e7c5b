"""BRAT standoff (``.txt`` + ``.ann``) in and out, so our output opens in brat beside yours.

Reading: text-bound annotations (``T1<TAB>Label start end<TAB>text``) become
entities, their label mapped by a small JSON mapping; attributes (``A1<TAB>Negated
T1``, or with a value) set our attributes through the same mapping. Every
attribute the mapping names is scored: absent on a span means False.
Discontinuous spans are read as their outer extent and reported.

Writing: entities with brat attributes for the context flags that are true, and
an ``AnnotatorNotes`` line holding the span's other fields as JSON; the note's
own fields (setting, codes, flags) go to ``<id>.json`` beside it. Reading our own
files back is lossless.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from notecoder.errors import Errors, GoldError, SourceError
from notecoder.io.gold import (
    ATTRIBUTES,
    BAD_JSON,
    NOT_OBJECT,
    NOT_UTF8,
    Corpus,
    Note,
    Problem,
    check_entity,
    names_of,
)

#: brat names of our labels and attributes (a mapping file may add others).
DEFAULT_MAPPING: dict[str, dict[str, str]] = {
    "labels": {
        label: label
        for label in ("CONDITION", "PAIN", "SPINAL_LEVEL", "IMAGING_FINDING", "TREATMENT")
    },
    "attributes": {name.capitalize(): name for name in ATTRIBUTES},
}
_CORE = {"start", "end", "text", "label"}
_NO_TXT = ".ann without its .txt"
_MAPPING_SHAPE = 'expected {"labels": {...}, "attributes": {...}}'


def load_mapping(path: str | Path | None) -> dict[str, dict[str, str]]:
    """The annotators' names -> ours: {"labels": {...}, "attributes": {...}}.

    A missing or malformed file is a SourceError: read as no names at all, it
    would silently drop every annotation.
    """
    if path is None:
        return DEFAULT_MAPPING
    path = Path(path)

    def malformed(reason: str) -> SourceError:
        return SourceError(Errors.E008.format(path=path, kind="JSON mapping", reason=reason))

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(Errors.E001.format(path=path)) from None
    except UnicodeDecodeError:
        raise malformed(NOT_UTF8) from None
    except json.JSONDecodeError as err:
        raise malformed(f"{BAD_JSON} ({err.msg}, line {err.lineno})") from None
    if not isinstance(data, dict) or not data.keys() & {"labels", "attributes"}:
        raise malformed(_MAPPING_SHAPE)
    labels, attributes = data.get("labels", {}), data.get("attributes", {})
    if not isinstance(labels, dict) or not isinstance(attributes, dict):
        raise malformed(_MAPPING_SHAPE)
    return {"labels": dict(labels), "attributes": dict(attributes)}


def read_brat(
    directory: str | Path, *, mapping: str | Path | None = None, strict: bool = False
) -> Corpus:
    """Every ``.ann`` (with its ``.txt``) in a directory, as notes with entities."""
    directory = Path(directory)
    names = load_mapping(mapping)
    corpus = Corpus()

    def problem(file: Path, line: int | None, message: str) -> None:
        found = Problem(str(file), line, message)
        if strict:
            raise GoldError(str(found))
        corpus.problems.append(found)

    def skip(file: Path, kind: str, message: str) -> None:
        corpus.skipped[kind] += 1
        problem(file, None, message)

    for ann in sorted(directory.glob("*.ann")):
        txt, meta_path = ann.with_suffix(".txt"), ann.with_suffix(".json")
        if not txt.exists():
            skip(ann, _NO_TXT, f"no {txt.name} beside it")
            continue
        contents: dict[Path, str] = {}
        try:  # (no .json beside the .ann: the note has no fields of its own)
            for file in (txt, ann, meta_path):
                contents[file] = file.read_text(encoding="utf-8") if file.exists() else "{}"
        except UnicodeDecodeError as err:
            skip(file, NOT_UTF8, f"{NOT_UTF8} (byte {err.start}; another encoding?)")
            continue
        try:
            meta = json.loads(contents[meta_path])
        except json.JSONDecodeError as err:
            skip(meta_path, BAD_JSON, f"{BAD_JSON} ({err.msg})")
            continue
        if not isinstance(meta, dict):
            skip(meta_path, NOT_OBJECT, NOT_OBJECT)
            continue
        text, lines = contents[txt], contents[ann].splitlines()
        corpus.lines += len(lines)
        entities, notes = _read_ann(ann, lines, text, names, problem)
        spans_annotated = meta.pop("spans_annotated", True)
        note = Note(
            id=str(meta.pop("id", ann.stem)),
            text=text,
            setting=meta.pop("setting", "outpatient"),
            codes=names_of(meta.pop("codes", None), "code"),
            flags=names_of(meta.pop("flags", None), "flag"),
            entities=[_with_notes(e, notes.get(tid), names) for tid, e in entities.items()],
            source=str(ann),
            extra=meta,
        )
        if not spans_annotated:
            note.entities = None
        corpus.notes.append(note)
    return corpus


def _read_ann(ann: Path, lines: list[str], text: str, names: dict, problem) -> tuple[dict, dict]:
    entities: dict[str, dict[str, Any]] = {}
    notes: dict[str, dict[str, Any]] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        tid = fields[0]
        try:
            if tid.startswith("T"):
                kind, _, ranges = fields[1].partition(" ")
                pieces = [tuple(map(int, r.split())) for r in ranges.split(";")]
                if len(pieces) > 1:
                    problem(ann, lineno, f"{tid} is discontinuous: read as its outer extent")
                start, end = min(p[0] for p in pieces), max(p[1] for p in pieces)
                label = names["labels"].get(kind)
                if label is None:
                    problem(ann, lineno, f"unknown label {kind!r} (not in the mapping)")
                    continue
                entity = {"start": start, "end": end, "text": text[start:end], "label": label}
                if len(fields) > 2 and len(pieces) == 1 and fields[2] != text[start:end]:
                    problem(ann, lineno, f"{tid} text does not match the note's text there")
                    continue
                error = check_entity(entity, text)
                if error:
                    problem(ann, lineno, error)
                    continue
                entities[tid] = entity
            elif tid.startswith("A") or tid.startswith("M"):
                name, target, *value = fields[1].split()
                attr = names["attributes"].get(name)
                if attr is None:
                    continue
                if target in entities:
                    raw = value[0] if value else "true"
                    entities[target][attr] = raw.lower() not in ("false", "no", "0")
                else:
                    problem(ann, lineno, f"attribute {tid} points at unknown {target}")
            elif tid.startswith("#") and fields[1].startswith("AnnotatorNotes"):
                target = fields[1].split()[1]
                try:
                    notes[target] = json.loads(fields[2])
                except (json.JSONDecodeError, IndexError):
                    continue  # a human note, not ours
        except GoldError:  # strict mode's own (a ValueError): not a malformed line
            raise
        except (IndexError, ValueError):
            problem(ann, lineno, "malformed line")
    return entities, notes


def _with_notes(entity: dict, notes: dict | None, names: dict) -> dict[str, Any]:
    """Our own AnnotatorNotes JSON is authoritative; otherwise absent attributes are False."""
    if notes is not None:
        return {**{k: entity[k] for k in _CORE}, **notes}
    for attr in names["attributes"].values():
        entity.setdefault(attr, False)
    return entity


def write_brat(notes: list[dict[str, Any]], directory: str | Path) -> None:
    """Write notes (gold or results, with ``text``) as brat ``.txt``/``.ann``/``.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    brat_attr = {ours: theirs for theirs, ours in DEFAULT_MAPPING["attributes"].items()}
    for note in notes:
        note_id = str(note.get("id", note.get("note_id")))
        stem = directory / _safe(note_id)
        stem.with_suffix(".txt").write_text(note["text"], encoding="utf-8")
        lines: list[str] = []
        a = 0
        for t, entity in enumerate(note.get("entities") or [], 1):
            text = entity.get("text", note["text"][entity["start"] : entity["end"]])
            flat = " ".join(text.split("\n"))
            lines.append(f"T{t}\t{entity['label']} {entity['start']} {entity['end']}\t{flat}")
            for attr in ATTRIBUTES:
                if entity.get(attr) is True:
                    a += 1
                    lines.append(f"A{a}\t{brat_attr[attr]} T{t}")
            rest = {k: v for k, v in entity.items() if k not in _CORE}
            lines.append(f"#{t}\tAnnotatorNotes T{t}\t{json.dumps(rest, ensure_ascii=False)}")
        stem.with_suffix(".ann").write_text(
            "\n".join(lines) + ("\n" if lines else ""), encoding="utf-8"
        )
        meta = {k: v for k, v in note.items() if k not in ("text", "entities", "note_id")}
        meta["id"] = note_id
        meta["spans_annotated"] = note.get("entities") is not None
        stem.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "note"
