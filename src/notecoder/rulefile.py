"""Components whose rules are one JSON document, loaded at initialize and saved with the pipeline.

medspaCy's rule components read their rules when they are built and cannot be
saved, so a saved pipeline loses them (medspaCy #243, #192). Ours take the
document at ``nlp.initialize()`` (``data_path`` in the config's
``[initialize.components]``, default: the file of the same name in
pipelines/spine) and write it into the component's folder on ``to_disk``, like
spaCy's own ``span_ruler.py`` does with its patterns.
"""

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import srsly
from spacy.language import Language
from spacy.util import ensure_path

from notecoder.errors import Errors, PipelineLoadError

#: Where the repository keeps the rule files of the spine pipeline.
RULES_DIR = Path(__file__).resolve().parents[2] / "pipelines" / "spine"


def read_rule_file(path: str | Path, take: Callable[[Any], Any] = lambda data: data) -> Any:
    """``take`` applied to a rule file's data (.json, or a list of lines for .jsonl).

    A missing file, bad JSON or content of the wrong shape is a
    :class:`PipelineLoadError` naming the file: srsly's own errors do not
    ("Expected object or value"), and a user with a broken install or a hand-edited
    rule file needs to know which file to fix.
    """
    path = Path(path)
    try:
        data = list(srsly.read_jsonl(path)) if path.suffix == ".jsonl" else srsly.read_json(path)
    except (OSError, ValueError) as err:
        reason = "missing" if not path.exists() else f"not valid JSON ({err})"
        raise PipelineLoadError(Errors.E021.format(path=path, reason=reason)) from None
    try:
        return take(data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        reason = f"unexpected content ({type(err).__name__}: {err})"
        raise PipelineLoadError(Errors.E021.format(path=path, reason=reason)) from err


class RuleFileComponent:
    """Mixin: ``initialize``, ``to_disk`` and ``from_disk`` for one JSON rule file."""

    #: The file name, both in pipelines/spine and in the saved component folder.
    rules_file: str

    def rules_data(self) -> Any:
        """The rules as loaded (what ``to_disk`` writes)."""
        raise NotImplementedError

    def set_rules(self, data: Any) -> None:
        """Take the rules (from ``initialize`` or ``from_disk``)."""
        raise NotImplementedError

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Any]] | None = None,
        *,
        nlp: Language | None = None,
        data_path: str | Path | None = None,
    ) -> None:
        """Load the rules from ``data_path`` (default: pipelines/spine/<rules_file>)."""
        read_rule_file(data_path or RULES_DIR / self.rules_file, self.set_rules)

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / self.rules_file, self.rules_data())

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "RuleFileComponent":
        read_rule_file(ensure_path(path) / self.rules_file, self.set_rules)
        return self
