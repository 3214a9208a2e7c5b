"""Build the notecoder pipeline from its definition, or load an assembled one.

``load()`` reads pipelines/spine/config.cfg and its rule files (data, not code;
installed as the package data ``notecoder.pipelines``) and initialises every
component from them; ``build()`` saves the result to a
folder (models/spine) that ``load(path)`` or plain ``spacy.load`` reads back
with no rule file beside it, because each component saves its own rules.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.util import load_config, load_model_from_config

# Importing these registers the factories, the tokenizer, the pattern reader and the
# encoders that carry a coded Doc through Doc.to_bytes.
from notecoder import (  # noqa: F401
    abbreviations,
    coder,
    context,
    entities,
    extensions,
    factories,
    levels,
    linker,
    sections,
    sentences,
    serialization,
    terminology,
    tokenizer,
)
from notecoder.errors import Errors, PipelineLoadError
from notecoder.rulefile import RULES_DIR

#: The pipeline definition ``load()`` assembles by default (package data).
DEFAULT_PIPELINE = RULES_DIR
#: Where ``notecoder build`` puts the assembled pipeline (relative to the working folder).
DEFAULT_MODEL = Path("models") / "spine"
#: spaCy refuses longer texts; our own limit (notecoder.api.MAX_NOTE_CHARS) is lower.
_SPACY_MAX_LENGTH = 5_000_000


def load(path: str | Path | None = None) -> Language:
    """The pipeline: assembled from ``pipelines/spine`` or, given a path, loaded from it.

    ``path`` may be a pipeline definition folder (with config.cfg and rule
    files) or a folder written by :func:`build` / ``nlp.to_disk``. Any failure
    is a :class:`PipelineLoadError` whose one-line message names the cause (the
    missing or malformed file, spaCy's config error), so that ``suggest``, the
    API and batch can say what to fix instead of "internal error".
    """
    try:
        return _load(path)
    except PipelineLoadError as err:
        raise PipelineLoadError(Errors.E020.format(cause=err)) from None
    except Exception as err:
        cause = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise PipelineLoadError(Errors.E020.format(cause=cause)) from err


def _load(path: str | Path | None) -> Language:
    if path is not None and (Path(path) / "meta.json").exists():
        nlp = spacy.load(path)
    else:
        definition = Path(path) if path is not None else DEFAULT_PIPELINE
        if not (definition / "config.cfg").exists():
            raise PipelineLoadError(Errors.E022.format(path=definition))
        config = load_config(definition / "config.cfg", overrides={"paths.rules": str(definition)})
        nlp = load_model_from_config(config, auto_fill=True, validate=True)
        nlp.initialize()
    nlp.max_length = _SPACY_MAX_LENGTH
    return nlp


def fingerprint(path: str | Path | None = None) -> str:
    """The notecoder version and a digest of the pipeline's files (``load(path)``'s).

    Two batch runs with the same fingerprint code alike, so a resumed run can
    check it is not mixing the output of an edited or other pipeline with its own.
    """
    folder = Path(path) if path is not None else DEFAULT_PIPELINE
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
    return f"notecoder {version('notecoder')}, pipeline {digest.hexdigest()[:16]}"


def build(output: str | Path = DEFAULT_MODEL, definition: str | Path | None = None) -> Path:
    """Assemble the pipeline from its definition and save it to ``output``."""
    definition = Path(definition) if definition is not None else DEFAULT_PIPELINE
    nlp = load(definition)
    nlp.meta.update(
        name="spine",
        version=version("notecoder"),
        description="notecoder: spine notes to ICD-10-CM suggestions with gap flags",
    )
    # The rules now travel inside the saved components: the definition folder they
    # were read from (an install's or a checkout's path) is no part of the pipeline.
    nlp.config["paths"]["rules"] = None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    return output
