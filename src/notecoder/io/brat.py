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

from notecoder.io.gold import (
    ATTRIBUTES,
    Corpus,
    GoldError,
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


def load_mapping(path: str | Path | None) -> dict[str, dict[str, str]]:
    """The annotators' names -> ours: {"labels": {...}, "attributes": {...}}."""
    if path is None:
        return DEFAULT_MAPPING
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {"labels": dict(data.get("labels", {})), "attributes": dict(data.get("attributes", {}))}


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

    for ann in sorted(directory.glob("*.ann")):
        txt = ann.with_suffix(".txt")
        if not txt.exists():
            problem(ann, None, f"no {txt.name} beside it")
            continue
        text = txt.read_text(encoding="utf-8")
        entities, notes = _read_ann(ann, text, names, problem)
        meta_path = ann.with_suffix(".json")
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
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


def _read_ann(ann: Path, text: str, names: dict, problem) -> tuple[dict, dict]:
    entities: dict[str, dict[str, Any]] = {}
    notes: dict[str, dict[str, Any]] = {}
    for lineno, line in enumerate(ann.read_text(encoding="utf-8").splitlines(), 1):
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
                    problem(ann, lineno, f"{tid} text {fields[2]!r} does not match its offsets")
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
