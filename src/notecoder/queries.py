"""Draft provider queries: the question a CDI specialist sends for each query flag.

A ``query`` flag (docs/coding-rules.md section 4) is a documentation gap only the
provider can close; a specialist writes the query by hand today. This component
drafts it from the templates of provider_queries.json, following the ACDIS/AHIMA
guidance for a compliant query practice:

- the clinical indicators are the mentions the flag rests on, quoted with their
  offsets (the flag's evidence);
- the question is open or multiple-choice; its options, all clinically reasonable
  for those indicators, end with the file's closing options ("Other (please
  specify)", "Unable to determine");
- a template may use only :data:`FIELDS` (the note's own words, regions and
  levels): no code, no fee, no payment or quality effect reaches a query, and the
  file's ``forbidden`` patterns are checked on every template when the rules are
  read and on every query drafted (a mention quoted from the note that matches one
  is left out of the question; the indicators still hold it).

Coding flags get ``query: null``.
"""

from __future__ import annotations

import re
from typing import Any

from spacy.tokens import Doc

from notecoder.errors import Errors, PipelineLoadError
from notecoder.rulefile import RuleFileComponent
from notecoder.schemas import template_fields

#: The flag fields (``notecoder.flags``) a query template may use: none holds a code.
FIELDS = frozenset(
    {
        "mention",
        "mentions",
        "region",
        "levels",
        "at_levels",
        "words",
        "word_regions",
        "level_regions",
    }
)

#: What a question quotes of the note when a quote would break a forbidden pattern.
_UNQUOTED = "the documented finding"


class ProviderQueries(RuleFileComponent):
    """Sets ``query`` on every flag of ``doc._.flags``: a draft for query flags, None else."""

    rules_file = "provider_queries.json"

    def __init__(self) -> None:
        self.rules: dict[str, Any] = {}
        self._forbidden: list[re.Pattern[str]] = []

    def rules_data(self) -> dict[str, Any]:
        return self.rules

    def set_rules(self, data: dict[str, Any]) -> None:
        forbidden = [re.compile(p) for p in data["forbidden"]]
        for flag, template in data["queries"].items():
            for part in (template["title"], template["question"], *template["options"]):
                used = template_fields(part)
                problem = (
                    f"field {sorted(used - FIELDS)[0]!r} (a query may use {sorted(FIELDS)})"
                    if used - FIELDS
                    else next(
                        (f"forbidden {p.pattern!r}" for p in forbidden if p.search(part)), None
                    )
                )
                if problem:
                    raise PipelineLoadError(Errors.E059.format(flag=flag, problem=problem))
        for option in data["closing_options"]:
            if any(p.search(option) for p in forbidden):
                raise PipelineLoadError(Errors.E059.format(flag="closing_options", problem=option))
        self.rules, self._forbidden = dict(data), forbidden

    def __call__(self, doc: Doc) -> Doc:
        if not self.rules:
            raise ValueError(
                "notecoder_queries has no rules: call nlp.initialize() or load a model"
            )
        for flag in doc._.flags or []:
            template = self.rules["queries"].get(flag["flag"])
            flag["query"] = self.draft(flag, template) if flag["kind"] == "query" else None
        return doc

    def draft(self, flag: dict[str, Any], template: dict[str, Any] | None) -> dict[str, Any] | None:
        """The query of one flag from its template (None for a query flag without one)."""
        if template is None:
            return None
        fields = {
            name: _UNQUOTED if self._breaks(str(value)) else value
            for name, value in flag["fields"].items()
            if name in FIELDS
        }
        options = [o.format(**fields) for o in template["options"]]
        return {
            "title": template["title"].format(**fields),
            "question": template["question"].format(**fields),
            "options": [*dict.fromkeys(options), *self.rules["closing_options"]],
            "indicators": list(flag["evidence"]),
        }

    def _breaks(self, text: str) -> bool:
        """Does the text hold what no query may (a code, a fee)?"""
        return any(p.search(text) for p in self._forbidden)
