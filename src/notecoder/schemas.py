"""The schema of every rule file: what keys it may hold and what each value is.

The components read their rules with ``data["key"]`` and ``data.get("key")``,
so a misspelt optional key ("split_junction" for "split_junctions") or a number
written as a string was silently ignored or failed far from its cause. Each rule
file is checked against its schema when it is read (``notecoder.rulefile``),
the way medspaCy's ``ConTextRule.from_dict`` rejects unknown keys: an unknown
key, a missing one or a value of the wrong type stops the load with the file,
the line and the key path.

The schemas only check; the components take the data as read, so a schema's
defaults never change what a component does. Validation is strict (no "3" for
3, no 1 for true), as a rule file is written by hand and a coerced value hides
a mistake.
"""

import json
import re
from collections.abc import Sequence
from string import Formatter
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from spacy.schemas import validate_token_pattern


class Rules(BaseModel):
    """A JSON object of a rule file: no key the schema does not name."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RuleLine(Rules):
    """One line of a JSONL rule file (a file of this schema is read line by line)."""


def _compiles(pattern: str) -> str:
    """A regular expression that compiles (else the component fails at its first use)."""
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"not a regular expression ({err})") from None
    return pattern


def _token_pattern(pattern: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A spaCy ``Matcher`` token pattern, checked by spaCy's own validator."""
    problems = validate_token_pattern(pattern)
    if problems:
        raise ValueError("; ".join(problems))
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]
TokenPattern = Annotated[list[dict[str, Any]], AfterValidator(_token_pattern)]
#: A medspaCy rule's pattern: a regular expression over the text, or a token pattern.
RulePattern = Regex | TokenPattern
#: A name and the regular expression that finds it: ``["MRI", "\\bmri\\b"]``.
NamedRegex = Annotated[
    list[str], Field(min_length=2, max_length=2), AfterValidator(lambda p: [p[0], _compiles(p[1])])
]
#: The labels of the entity ruler's mentions, in the order it keeps them (a pattern with
#: another label would find nothing).
Label = Literal["CONDITION", "PAIN", "IMAGING_FINDING", "TREATMENT"]


# -- sentence_rules.json -------------------------------------------------------
class SentenceRules(Rules):
    description: str = ""
    continuation_words: list[str]
    heading_words: list[str]
    soap_letters: list[str]
    max_sentence_tokens: int | None = None


# -- section_rules.json --------------------------------------------------------
class SectionMetadata(Rules):
    #: A heading written without its colon (see ``sections._bare_heading``).
    bare: bool = False
    #: The category the heading takes after a section of the key's category.
    category_after: dict[str, str] = {}


class SectionRule(Rules):
    """medspaCy's ``SectionRule.from_dict`` keys (``on_match`` is code, not data)."""

    literal: str
    category: str
    pattern: RulePattern | None = None
    max_scope: int | None = None
    parents: list[str] | None = None
    parent_required: bool = False
    metadata: SectionMetadata | None = None


class SectionRules(Rules):
    description: str = ""
    section_rules: list[SectionRule]


# -- levels.json ---------------------------------------------------------------
class LevelRules(Rules):
    description: str = ""
    range_connectors: list[str]
    ordinals: dict[str, int]
    ordinal_regions: dict[str, str]
    ordinal_nouns: list[str]
    ordinal_not_followed_by: list[str]
    junctions: dict[str, list[str]]
    region_words: dict[str, str]
    region_word_exclusions: dict[str, list[str]]
    region_word_preceding_exclusions: dict[str, list[str]]
    root_words: list[str]
    slip_words: list[str]
    vertebra_exclusions: dict[str, list[str]]
    exclusion_window: int
    sequence_vertebrae: list[str]
    sequence_names: list[str]
    sequence_after: list[str]
    sequence_signal_words: list[str]
    sequence_window_words: list[str]
    level_cues_before: list[str]
    sequence_before: list[str]
    spine_context_words: list[str]
    run_together_exclusions: list[str]
    run_together_window: int
    model_name_before: Regex


# -- entity_patterns.jsonl, terminology_patterns.jsonl -------------------------
class Pattern(RuleLine):
    """A ``SpanRuler`` pattern; its id is the mention's concept."""

    label: Label
    pattern: str | TokenPattern
    id: str | None = None


# -- entity_attributes.json ----------------------------------------------------
class EntityAttributes(Rules):
    description: str = ""
    modalities: list[NamedRegex] = []
    responses: list[NamedRegex] = []
    duration: Regex | None = None
    side: Regex | None = None
    side_names: dict[str, str] = {}
    spine_context: Regex | None = None
    normal_anatomy: Regex | None = None
    normal_anatomy_after: Regex | None = None
    non_spinal_site_after: Regex | None = None


# -- context_rules.json --------------------------------------------------------
class ContextRule(Rules):
    """medspaCy's ``ConTextRule.from_dict`` keys (the callbacks are code, not data)."""

    literal: str
    category: str
    direction: Literal["FORWARD", "BACKWARD", "BIDIRECTIONAL", "TERMINATE", "PSEUDO"] = (
        "BIDIRECTIONAL"
    )
    pattern: RulePattern | None = None
    allowed_types: list[str] | None = None
    excluded_types: list[str] | None = None
    max_scope: int | None = None
    max_targets: int | None = None
    terminated_by: list[str] | None = None
    metadata: dict[str, Any] | None = None


class ContextRules(Rules):
    description: str = ""
    #: Attributes every mention of a section gets: {"family_history": {"is_family": true}}.
    section_attributes: dict[str, dict[str, bool]] = {}
    #: A sentence holding more triggers than this is read as pieces of this many.
    max_sentence_triggers: Annotated[int, Field(ge=1)] | None = None
    context_rules: list[ContextRule]


# -- code_families.json --------------------------------------------------------
#: One ICD-10-CM family, or one per region ("default" for the regions not named).
Family = str | dict[str, str]


class Concept(Rules):
    """How a mention concept is coded (``Coder._families`` and the flags read these)."""

    family: Family
    partner: str | None = None
    disc: bool = False
    discitis: bool = False
    multiple_sites: bool = False
    pain_split: bool = False
    roots: bool = False
    # In the file, read by no code today: the concept is radiculopathy; the
    # stenosis codes split on neurogenic claudication.
    radiculopathy: bool = False
    claudication_split: bool = False
    no_region: bool = False
    split_junctions: bool = False
    collapse: bool = False
    injury: bool = False
    fracture: bool = False


class Pain(Rules):
    code: str
    #: The regions the pain code concerns, or "any".
    covers: list[str] | Literal["any"]
    by_side: bool = False


class Combination(Rules):
    """ICD-10-CM's "with": the combination code a concept takes with a partner."""

    with_: dict[str, str] = Field(alias="with")
    coded_alone: bool
    partners_from: Literal["note", "statement"]
    unless_hedged: str | None = None


class Combinations(Rules):
    """The combinations by concept, beside their description."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Combination]
    description: str = ""


class CompatibleRegions(Rules):
    """The junctions a region word loosely names, by region, beside their description."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, list[str]]
    description: str = ""


class Operative(Rules):
    same_as: dict[str, str]
    cause_sections: list[str]
    uncertain_sections: list[str]


class DiagnosticStatement(Rules):
    description: str = ""
    sections: list[str]
    operative: Operative


class OsteoporoticCollapse(Rules):
    family: str
    cues: list[str]


class NonSpinalPain(Rules):
    description: str = ""
    site: Regex
    cause: Regex
    entry_sections: list[str]


#: The fields each flag's message may use, filled by ``notecoder.flags`` (``code`` is the
#: code the flag is about, where there is one), by the flag names docs/coding-rules.md
#: section 4 fixes.
FLAG_FIELDS: dict[str, frozenset[str]] = {
    "PAIN_ONLY": frozenset({"coded", "mentions"}),
    "REGION_UNSPECIFIED": frozenset({"code", "mention"}),
    "REGION_CONFLICT": frozenset(
        {"code", "mention", "words", "word_regions", "levels", "level_regions"}
    ),
    "IMAGING_MISSING": frozenset({"code", "mention", "at_levels", "region"}),
    "CONSERVATIVE_CARE_MISSING": frozenset({"code", "coded", "mentions"}),
    "MULTI_REGION": frozenset({"count", "regions", "coded"}),
    "DISCITIS_EXCLUDES1": frozenset({"code", "mention", "note"}),
    "MORE_SPECIFIC_CODE": frozenset({"code", "description", "mention", "at_levels"}),
    "UNCERTAIN_DX": frozenset({"mentions", "coded"}),
    "EXCLUDES1": frozenset(
        {"code", "lost", "lost_mention", "kept", "kept_mention", "note_of", "note"}
    ),
}


def template_fields(template: str) -> set[str]:
    """The ``str.format`` fields a template names ("{code} ({mention})" -> code, mention)."""
    return {name for _, name, _, _ in Formatter().parse(template) if name}


def _flag_rules(flags: dict[str, "FlagRule"]) -> dict[str, "FlagRule"]:
    """Every flag of the spec, each message using only the fields its flag fills."""
    if set(flags) != set(FLAG_FIELDS):
        missing, unknown = (
            sorted(set(FLAG_FIELDS) - set(flags)),
            sorted(set(flags) - set(FLAG_FIELDS)),
        )
        raise ValueError(f"flags must be those of section 4: missing {missing}, unknown {unknown}")
    for name, rule in flags.items():
        messages = rule.message.values() if isinstance(rule.message, dict) else [rule.message]
        for message in messages:
            extra = template_fields(message) - FLAG_FIELDS[name]
            if extra:
                raise ValueError(
                    f"{name}'s message uses {sorted(extra)}; it may use {sorted(FLAG_FIELDS[name])}"
                )
    return flags


class FlagRule(Rules):
    """One documentation-gap flag (docs/coding-rules.md section 4): what kind it is, how
    sure, and its message, a ``str.format`` template of the fields ``notecoder.flags``
    fills (one template, or one per case the flag distinguishes)."""

    kind: Literal["query", "coding"]
    confidence: Annotated[float, Field(gt=0, le=1)]
    message: str | dict[str, str]


class CodeFamilies(Rules):
    description: str = ""
    flags: Annotated[dict[str, FlagRule], AfterValidator(_flag_rules)]
    pain_codes: list[str]
    concepts: dict[str, Concept]
    pain: dict[str, Pain]
    region_aliases: dict[str, dict[str, str]]
    junction_neighbours: dict[str, list[str]]
    never_coded: list[str] = []  # (in the file, read by no code today)
    pyogenic_cues: list[str]
    back_pain_concepts: list[str]
    leg_pain_concepts: list[str]
    back_pain_by_region: dict[str, str]
    compatible_regions: CompatibleRegions
    imaging_sections: list[str]
    history_sections: list[str]
    ongoing_treatment_cues: list[str]
    trauma_cues: list[str]
    fracture_kinds: dict[str, str]
    combinations: Combinations
    diagnostic_statement: DiagnosticStatement
    procedure_sections: list[str]
    terminology_prefix: str
    osteoporotic_collapse: OsteoporoticCollapse
    leg_radiation: Regex
    non_spinal_pain: NonSpinalPain
    non_diagnostic_sections: list[str]
    back_pain_borrows: list[str]
    present_cues: Regex


# -- provider_queries.json ----------------------------------------------------
class QueryTemplate(Rules):
    """The draft provider query of one query flag: ``str.format`` templates of the
    fields ``notecoder.queries`` fills, and the clinically reasonable answers."""

    title: str
    question: str
    options: list[str] = Field(min_length=1)


class ProviderQueries(Rules):
    description: str = ""
    #: Answers every query offers after its own (compliant query practice).
    closing_options: list[str] = Field(min_length=2)
    #: What no query may contain: a code, a fee, a payment or quality effect.
    forbidden: list[Regex]
    queries: dict[str, QueryTemplate]


# -- confidence_model.json -----------------------------------------------------
class IsotonicMap(Rules):
    """The isotonic map after the logistic: ``y`` at each threshold ``x`` (increasing),
    linear between them, clipped beyond (scikit-learn's ``IsotonicRegression``)."""

    x: list[float]
    y: list[Annotated[float, Field(ge=0, le=1)]]


class ConfidenceTraining(Rules):
    """What the model was fitted on (written by ``notecoder calibrate``; read by no code)."""

    codes: int
    kept: int
    notes: int
    regularization: float
    note_weighted: bool
    corpora: list[str] = []


class ConfidenceModel(Rules):
    """The fitted confidence model (``notecoder.confidence``): which features, their
    coefficients and intercept, and the isotonic map if any."""

    description: str = ""
    method: Literal["logistic", "logistic+isotonic"]
    statement_sections: list[str]
    family_groups: list[str]
    evidence_cap: Annotated[int, Field(ge=1)]
    features: list[str]
    coefficients: list[float]
    intercept: float
    isotonic: IsotonicMap | None = None
    training: ConfidenceTraining | None = None


# -- terminology.json ----------------------------------------------------------
class TerminologyRules(Rules):
    """What ``notecoder.terminology`` derives terminology_patterns.jsonl from."""

    description: str = ""
    nodes: dict[str, str]
    skip: dict[str, str] = {}
    not_derived: dict[str, str] = {}
    #: Region phrases of the tabular list and the region each names (none: no region).
    regions: dict[str, str | None]
    qualifiers: list[str]
    of_adjectives: dict[str, str] = {}
    drop_if_contains: list[str] = []
    stop: list[str] = []
    stop_notes: dict[str, str] = {}


#: The schema of each JSON rule file, by its name in pipelines/spine. Every JSONL
#: rule file is a list of ``Pattern`` lines.
RULE_FILES: dict[str, type[Rules]] = {
    "sentence_rules.json": SentenceRules,
    "section_rules.json": SectionRules,
    "levels.json": LevelRules,
    "entity_attributes.json": EntityAttributes,
    "context_rules.json": ContextRules,
    "code_families.json": CodeFamilies,
    "confidence_model.json": ConfidenceModel,
    "provider_queries.json": ProviderQueries,
    "terminology.json": TerminologyRules,
}


def schema_for(name: str) -> type[Rules] | None:
    """The schema of the rule file of this name; None for a file of data derived by
    code and never edited by hand (pipelines/icd10cm_table.json)."""
    return Pattern if name.endswith(".jsonl") else RULE_FILES.get(name)


def explain(error: ValidationError, text: str) -> tuple[int, str]:
    """The line of ``text`` (a JSON document) where the first error is, and what it is.

    pydantic locates an error by its key path; the line is found by walking the
    text along that path (only when there is an error: reading a valid file
    costs nothing more). Steps of the path that are not keys or indexes of the
    data (the member of a union pydantic tried) are left out of the path shown.
    """
    first = min(error.errors(), key=_telling)
    position, path = _locate(text, first["loc"])
    if first["type"] == "extra_forbidden":
        problem = f"unknown key {path[-1]!r}" + _within(path[:-1])
    elif first["type"] == "missing":
        problem = f"missing key {first['loc'][-1]!r}" + _within(path)
    else:
        message = first["msg"].removeprefix("Value error, ")
        problem = f"{_dotted(path) or 'the document'}: {message}"
    return text.count("\n", 0, position) + 1, problem


def _telling(error: Any) -> tuple[bool, bool, int]:
    """Which of the errors pydantic lists tells the fault best (the least first).

    A misspelt key is also a missing one: "unknown key" names the typo. A value
    that fails a check of its own (a regular expression that does not compile, a
    token pattern spaCy rejects) is not one of the other types of its union
    ("Input should be a valid string"). And the deepest error is the most precise.
    """
    return (error["type"] != "extra_forbidden", error["type"].endswith("_type"), -len(error["loc"]))


def _within(path: Sequence[str | int]) -> str:
    return f" in {_dotted(path)}" if path else ""


def _dotted(path: Sequence[str | int]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(
        "."
    )


_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _locate(text: str, loc: Sequence[str | int]) -> tuple[int, list[str | int]]:
    """The position in ``text`` of the key (or list item) at ``loc``, as far as it
    exists, and the steps of ``loc`` that were keys or indexes of the data."""
    pos = found = _SPACE.match(text).end()
    path: list[str | int] = []
    for step in loc:
        if text.startswith("{", pos) and isinstance(step, str):
            member = _member(text, pos, step)
        elif text.startswith("[", pos) and isinstance(step, int):
            member = _item(text, pos, step)
        else:
            member = None
        if member is None:
            continue  # a union member's name, or a key that is missing
        found, pos = member
        path.append(step)
    return found, path


def _member(text: str, pos: int, key: str) -> tuple[int, int] | None:
    """The positions of ``key`` and of its value in the object at ``pos`` (the last,
    should the key be repeated: JSON readers keep the last)."""
    found = None
    pos = _SPACE.match(text, pos + 1).end()
    while text.startswith('"', pos):
        name, end = json.decoder.scanstring(text, pos + 1)
        value = _SPACE.match(text, _SPACE.match(text, end).end() + 1).end()
        if name == key:
            found = (pos, value)
        pos = _next(text, value)
    return found


def _item(text: str, pos: int, index: int) -> tuple[int, int] | None:
    """The position of the item ``index`` of the list at ``pos`` (as key and value)."""
    pos = _SPACE.match(text, pos + 1).end()
    for _ in range(index):
        if text.startswith("]", pos):
            return None
        pos = _next(text, pos)
    return None if text.startswith("]", pos) else (pos, pos)


def _next(text: str, value: int) -> int:
    """The position after the value at ``value`` and its comma."""
    _, end = _DECODER.raw_decode(text, value)
    end = _SPACE.match(text, end).end()
    return _SPACE.match(text, end + 1).end() if text.startswith(",", end) else end
