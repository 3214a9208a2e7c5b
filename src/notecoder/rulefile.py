"""Components whose rules are one JSON document, loaded at initialize and saved with the pipeline.

medspaCy's rule components read their rules when they are built and cannot be
saved, so a saved pipeline loses them (medspaCy #243, #192). Ours take the
document at ``nlp.initialize()`` (``data_path`` in the config's
``[initialize.components]``, default: the file of the same name in
pipelines/spine) and write it into the component's folder on ``to_disk`` and
into ``to_bytes``, like spaCy's own ``span_ruler.py`` does with its patterns, so
``nlp.from_bytes(nlp.to_bytes())`` and ``pickle`` give the same pipeline.

Every rule file is checked against its schema (``notecoder.schemas``) as it is
read, from a file or from bytes: an unknown key or a value of the wrong type is
an error naming the file and the line, not a rule silently ignored.
"""

import json
from collections.abc import Callable, Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

import srsly
from pydantic import ValidationError
from spacy import util
from spacy.language import Language

from notecoder.errors import Errors, PipelineLoadError
from notecoder.schemas import RuleLine, Rules, explain, schema_for

#: The pipeline definitions, installed as package data (``notecoder.pipelines``): a
#: wheel carries them, and no code path reads a checkout.
PIPELINES_DIR = Path(files("notecoder.pipelines"))  # type: ignore[arg-type]
#: The rule files of the spine pipeline.
RULES_DIR = PIPELINES_DIR / "spine"


def read_rule_file(
    path: str | Path, take: Callable[[Any], Any] = lambda data: data, *, kind: str | None = None
) -> Any:
    """``take`` applied to a rule file's data (.json, or a list of lines for .jsonl).

    ``kind`` is the rule file this is, by its name in pipelines/spine (default:
    the file's own name); it picks the schema. A missing file, bad JSON or
    content the schema or ``take`` rejects is a :class:`PipelineLoadError`
    naming the file (and the line, where the schema finds the fault): srsly's
    own errors do not ("Expected object or value"), and a user with a broken
    install or a hand-edited rule file needs to know which file to fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = "missing" if not path.exists() else f"unreadable ({err})"
        raise PipelineLoadError(Errors.E021.format(path=path, reason=reason)) from None
    return load_rules(text, path, take, kind=kind or path.name)


def load_rules(text: str, source: str | Path, take: Callable[[Any], Any], *, kind: str) -> Any:
    """``take`` applied to the rules of a rule file's text, checked by its schema.

    ``source`` names the text in errors: the file, or the component whose bytes
    these are.
    """
    schema = schema_for(kind)
    if schema is None:  # a derived file, never edited by hand (the code table)
        data = _parsed(text, source)
    elif issubclass(schema, RuleLine):
        data = _checked_lines(text, source, schema)
    else:
        data = _checked_document(text, source, schema)
    try:
        return take(data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        reason = f"unexpected content ({type(err).__name__}: {err})"
        raise PipelineLoadError(Errors.E021.format(path=source, reason=reason)) from err


def _parsed(text: str, source: str | Path) -> Any:
    try:
        return json.loads(text)
    except ValueError as err:
        reason = f"not valid JSON ({err})"
        raise PipelineLoadError(Errors.E021.format(path=source, reason=reason)) from None


def _checked_document(text: str, source: str | Path, schema: type[Rules]) -> Any:
    data = _parsed(text, source)
    try:
        schema.model_validate(data)
    except ValidationError as err:
        line, problem = explain(err, text)
        raise PipelineLoadError(
            Errors.E058.format(path=source, line=line, problem=problem)
        ) from None
    return data


def _checked_lines(text: str, source: str | Path, schema: type[RuleLine]) -> list[Any]:
    data = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as err:
            reason = f"not valid JSON (line {number}: {err})"
            raise PipelineLoadError(Errors.E021.format(path=source, reason=reason)) from None
        data.append(item)
        try:
            schema.model_validate(item)
        except ValidationError as err:
            problem = explain(err, line)[1]
            error = Errors.E058.format(path=source, line=number, problem=problem)
            raise PipelineLoadError(error) from None
    return data


class RuleFileComponent:
    """Mixin: ``initialize`` and the four ways of saving and loading one JSON rule file.

    Each of ``to_disk``, ``from_disk``, ``to_bytes`` and ``from_bytes`` hands
    spaCy's ``util`` a dict of serialisers keyed by the file name (as spaCy's
    ``span_ruler.py`` does), so the four hold the same JSON and
    ``exclude=["code_families"]`` leaves the rules out as spaCy's own
    ``exclude=["meta"]`` leaves out meta.json.
    """

    #: The file name, both in pipelines/spine and in the saved component folder.
    rules_file: str

    def rules_data(self) -> Any:
        """The rules as loaded (what ``to_disk`` writes)."""
        raise NotImplementedError

    def set_rules(self, data: Any) -> None:
        """Take the rules (from ``initialize``, ``from_disk`` or ``from_bytes``)."""
        raise NotImplementedError

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Any]] | None = None,
        *,
        nlp: Language | None = None,
        data_path: str | Path | None = None,
    ) -> None:
        """Load the rules from ``data_path`` (default: pipelines/spine/<rules_file>)."""
        read_rule_file(
            data_path or RULES_DIR / self.rules_file, self.set_rules, kind=self.rules_file
        )

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        serializers = {self.rules_file: lambda: srsly.json_dumps(self.rules_data())}
        return util.to_bytes(serializers, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = ()) -> "RuleFileComponent":
        source = f"{self.rules_file} (from bytes)"
        deserializers = {
            self.rules_file: lambda text: load_rules(
                text, source, self.set_rules, kind=self.rules_file
            )
        }
        util.from_bytes(bytes_data, deserializers, exclude)
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        serializers = {self.rules_file: lambda p: srsly.write_json(p, self.rules_data())}
        util.to_disk(path, serializers, exclude)

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "RuleFileComponent":
        deserializers = {
            self.rules_file: lambda p: read_rule_file(p, self.set_rules, kind=self.rules_file)
        }
        util.from_disk(path, deserializers, exclude)
        return self
