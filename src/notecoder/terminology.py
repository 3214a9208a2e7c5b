"""CONDITION phrases derived from the ICD-10-CM tabular list, not typed one note at a time.

The hand-made phrase lists (pipelines/spine/entity_patterns.jsonl) cover the
families the coder has rules for. For the other in-scope families, a mention is
recognised by the tabular list's own wording: the descriptions and inclusion
terms of the nodes that pipelines/spine/terminology.json names. Each phrase
gets the concept ``icd:<stem>``, where the stem is the node whose children
differ by region only ("kyphosis" -> ``icd:M40.20``, whose children are
M40.202..M40.209), so the coder resolves it with ``notecoder.codes.resolve``
and the region the note documents, like any other family.

Descriptions are written for coders ("Kyphosis, unspecified", "Ankylosing
hyperostosis [Forestier], thoracic region"), so the region phrase, the
"unspecified" / "other" qualifiers, parentheticals and eponym brackets are
stripped, "X, Y" is inverted to "Y X", and a few cheap variants are added
(singular, possessive without the apostrophe, "of the", "vertebral X" for
"X of vertebra"). Excludes1/Excludes2 terms that contain a derived phrase
("congenital scoliosis", "spasmodic torticollis") become ``icd_excluded:<code>``
mentions: within the CONDITION label the longest span wins, so they keep the
phrase inside them from being read as the excluded condition.

The result is committed data (pipelines/spine/terminology_patterns.jsonl),
written by ``python -m notecoder.terminology``; a test checks it is up to date.
The derivation reads the whole tabular list from simple-icd-10-cm, imported in
the functions that derive: loading the pipeline imports this module (for
``read_patterns``) and must not pay for parsing the list.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import spacy
import srsly
from spacy.language import Language
from spacy.matcher import PhraseMatcher

from notecoder import codes
from notecoder import tokenizer as _tokenizer  # noqa: F401  (registers notecoder.Tokenizer.v1)
from notecoder.rulefile import RULES_DIR, read_rule_file

CONFIG_FILE = RULES_DIR / "terminology.json"
PATTERNS_FILE = RULES_DIR / "terminology_patterns.jsonl"
HAND_MADE_FILE = RULES_DIR / "entity_patterns.jsonl"
FAMILIES_FILE = RULES_DIR / "code_families.json"

LABEL = "CONDITION"
#: Concept prefix of a derived phrase: ``icd:<stem>``, resolved by notecoder.codes.
PREFIX = "icd:"
#: Concept prefix of an excluded term: a mention that is *not* the family around it.
EXCLUDED_PREFIX = "icd_excluded:"

#: "A secondary to B, C and D": an inclusion term that lists several conditions.
_LIST_CONNECTORS = (" secondary to ", " due to ")
_ABBREVIATION = re.compile(r"^[A-Z]{2,}$")
_BRACKET = re.compile(r"\s*\[([^\]]*)\]")
_PARENTHETICAL = re.compile(r"\s*\(([^)]*)\)")
#: An Excludes note: "congenital scoliosis NOS (Q67.5)", "kyphoscoliosis (M41.-)".
_EXCLUDES_NOTE = re.compile(r"^(?P<term>.+?)\s*\((?P<code>[A-Z]\d[0-9A-Z.]*)[^)]*\)$")
_CURLY = "\u2019"


@spacy.registry.readers("notecoder.read_patterns.v1")
def read_patterns(paths: list[str]) -> list[dict[str, Any]]:
    """The patterns of several JSONL files, in order (hand-made first, then derived).

    spaCy's ``srsly.read_jsonl.v1`` reads one file; the entity ruler needs the
    hand-made list and the derived one.
    """
    return [pattern for path in paths for pattern in read_rule_file(path)]


@dataclass
class Stem:
    """A tabular node whose children differ by region only (or a leaf with no region)."""

    code: str
    #: region (None: site unspecified) -> that region's child code; a leaf maps None to itself.
    variants: dict[str | None, str]
    #: The texts phrases come from: its description, inclusion terms, and those of a
    #: parent that has no other stem below it (M48.8's inclusion term for M48.8X).
    texts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Phrase:
    """One derived pattern on its way: rank and order decide collisions."""

    rank: int
    order: int
    concept: str
    pattern: Any
    #: (stem, source text): the phrase and its variants stand or fall together.
    group: tuple[str, str]


@dataclass
class Derivation:
    """The derived patterns and what was left out on the way, for the report."""

    patterns: list[dict[str, Any]] = field(default_factory=list)
    #: stem -> why it was dropped (codes.resolve gives a code that is not its own).
    dropped: dict[str, str] = field(default_factory=dict)
    #: stem -> regions of its own that codes.resolve cannot reach (CodeNotFound).
    unreachable: dict[str, list[str | None]] = field(default_factory=dict)
    #: (phrase, kept concept, lost concept): the same phrase from two stems.
    collisions: list[tuple[str, str, str]] = field(default_factory=list)
    #: (phrase, hand-made label:concept): a hand-made pattern has the same span, so the
    #: phrase and every variant of its source text are left out.
    shadowed: list[tuple[str, str]] = field(default_factory=list)
    #: (derived phrase, hand-made text inside it, its label:concept): where both match,
    #: the longer derived span wins within CONDITION.
    overlaps: list[tuple[str, str, str]] = field(default_factory=list)
    #: (hand-made phrase, derived phrase inside it): the hand-made span wins.
    inside_hand_made: list[tuple[str, str]] = field(default_factory=list)
    #: Texts that gave no phrase (for the report): (node, text, why).
    unused: list[tuple[str, str, str]] = field(default_factory=list)


def load_config(path: str | Path = CONFIG_FILE) -> dict[str, Any]:
    """terminology.json."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def derive_patterns(
    config: dict[str, Any],
    *,
    hand_made: Sequence[dict[str, Any]] | None = None,
    families: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """SpanRuler patterns for the tabular nodes of ``config`` (terminology.json).

    ``hand_made`` defaults to pipelines/spine/entity_patterns.jsonl: a term that
    a hand-made pattern (of any label) already matches as a whole is left out
    with all its variants, since which of two patterns of one span wins is not
    defined. ``families``: see :func:`derive`.
    """
    return derive(config, hand_made=hand_made, families=families).patterns


def derive(
    config: dict[str, Any],
    *,
    hand_made: Sequence[dict[str, Any]] | None = None,
    families: dict[str, Any] | None = None,
) -> Derivation:
    """:func:`derive_patterns`, with what was dropped, shadowed or overlapping.

    ``families`` (default: the ``concepts`` of code_families.json) are the
    hand-made concepts' families: a stem at, above or under one of them is left
    to that concept, so each family has one owner even while both lists grow.
    """
    out = Derivation()
    rules = _Rules(config)
    if families is None:
        families = json.loads(FAMILIES_FILE.read_text(encoding="utf-8"))["concepts"]
    owners = _owners(families)
    stems: list[Stem] = []
    for node in config["nodes"]:
        stems.extend(_stems(node, rules))

    phrases: dict[tuple[str, ...], _Phrase] = {}
    nlp = _blank()
    kept_stems: list[Stem] = []
    for stem in stems:
        owner = next((o for f, o in owners if _related(stem.code, f)), None)
        if owner:
            out.dropped[stem.code] = f"owned by the hand-made concept {owner}"
            continue
        why, unreachable = _check(stem)
        if why:
            out.dropped[stem.code] = why
            continue
        if unreachable:
            out.unreachable[stem.code] = unreachable
        kept_stems.append(stem)
        for text in stem.texts:
            found = rules.phrases(text)
            if not found:
                out.unused.append((stem.code, text, "no phrase left after stripping and stop list"))
            for pattern, rank in found:
                new = _Phrase(rank, len(phrases), PREFIX + stem.code, pattern, (stem.code, text))
                key = _key(nlp, pattern)
                old = phrases.get(key)
                if old is None:
                    phrases[key] = new
                elif old.concept != new.concept:
                    kept, lost = sorted([old, new], key=lambda p: (p.rank, p.order))
                    out.collisions.append((_show(pattern), kept.concept, lost.concept))
                    phrases[key] = kept

    derived_keys = {k for k, v in phrases.items() if isinstance(v.pattern, str)}
    for stem in kept_stems:
        for code, term in _excluded_terms(stem, rules):
            key = _key(nlp, term)
            if key in phrases or not _contains_any(nlp, term, derived_keys):
                continue
            phrases[key] = _Phrase(2, len(phrases), EXCLUDED_PREFIX + code, term, (code, term))

    # A hand-made pattern of the same span, whatever its label, keeps the whole term:
    # which of two patterns of one span wins is not defined, and span extensions
    # (concept, regions) are keyed by offsets, so two mentions of one span share them.
    hand = list(hand_made) if hand_made is not None else list(srsly.read_jsonl(HAND_MADE_FILE))
    ruler = _ruler(nlp, hand)
    matched = {key: ruler.match(nlp.make_doc(_surface(p.pattern))) for key, p in phrases.items()}
    taken: dict[tuple[str, str], str] = {}
    for key, phrase in phrases.items():
        for span in matched[key]:
            if span.start == 0 and span.end == len(key):
                taken.setdefault(phrase.group, f"{span.label_}:{span.id_}")
                out.shadowed.append((_show(phrase.pattern), f"{span.label_}:{span.id_}"))
    derived_matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    for key, phrase in sorted(phrases.items(), key=lambda kv: kv[1].order):
        if phrase.group in taken:
            continue
        if isinstance(phrase.pattern, str):
            derived_matcher.add(phrase.pattern, [nlp.make_doc(phrase.pattern)])
        for span in matched[key]:
            if not (span.start == 0 and span.end == len(key)):
                out.overlaps.append((_show(phrase.pattern), span.text, f"{span.label_}:{span.id_}"))
        out.patterns.append({"label": LABEL, "id": phrase.concept, "pattern": phrase.pattern})
    for entry in hand:
        if entry.get("label") != LABEL or not isinstance(entry["pattern"], str):
            continue
        doc = nlp.make_doc(entry["pattern"])
        for match_id, start, end in derived_matcher(doc):
            if (start, end) != (0, len(doc)):
                out.inside_hand_made.append((entry["pattern"], nlp.vocab.strings[match_id]))
    out.patterns.sort(key=lambda p: (p["id"], _show(p["pattern"])))
    return out


# -- walking the tabular list -----------------------------------------------------------


class _Rules:
    """terminology.json, compiled."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.skip: set[str] = set(config.get("skip", {}))
        self.regions: dict[str, str | None] = config["regions"]
        alternatives = "|".join(re.escape(p) for p in sorted(self.regions, key=len, reverse=True))
        self.region_suffix = re.compile(rf"(?:,\s*|\s+of\s+|\s+)({alternatives})$", re.I)
        self.qualifiers: list[str] = sorted(
            (q.lower() for q in config["qualifiers"]), key=len, reverse=True
        )
        self.of_adjectives: dict[str, str] = config.get("of_adjectives", {})
        self.drop = [
            re.compile(rf"\b{re.escape(w)}\b", re.I) for w in config.get("drop_if_contains", [])
        ]
        self.stop = {s.lower() for s in config.get("stop", [])}

    def region_of(self, code: str) -> tuple[bool, str | None]:
        """(True, region) when the description ends with a region phrase."""
        import simple_icd_10_cm as icd

        match = self.region_suffix.search(icd.get_description(code))
        if not match:
            return False, None
        return True, self.regions[match.group(1).lower()]

    def phrases(self, text: str) -> list[tuple[Any, int]]:
        """The phrases of one description or inclusion term, each with its rank.

        Rank 1 marks a phrase that lost an "Other" qualifier: "Other kyphosis"
        gives "kyphosis" too, but a note that says "kyphosis" means the
        unspecified one, so a rank-0 source of the same phrase wins.
        """
        out: list[tuple[Any, int]] = []
        for abbreviation in _BRACKET.findall(text):
            if _ABBREVIATION.match(abbreviation):
                out.append(([{"ORTH": abbreviation}], 0))
        text = _PARENTHETICAL.sub("", _BRACKET.sub("", text)).strip()
        text = self.region_suffix.sub("", text)
        parts = [p.strip() for p in text.split(",")]
        parts = [p for p in parts if p.lower() not in self.qualifiers]
        bases = self._join(parts)
        for base in bases:
            phrase, rank = self.strip_qualifiers(base)
            if not self._keep(phrase.lower()):  # no variant of a stopped phrase either
                continue
            for variant in self._variants(phrase.lower()):
                if self._keep(variant):
                    out.append((variant, rank))
        return out

    def _join(self, parts: list[str]) -> list[str]:
        """One or more phrases from the comma-separated parts of a text."""
        if len(parts) == 1:
            return parts
        head = next((c for c in _LIST_CONNECTORS if c in parts[0]), None)
        if head:  # "Scoliosis secondary to cerebral palsy, Friedreich's ataxia, polio and ..."
            lead, first = parts[0].split(head, 1)
            items = [i.strip() for i in [first, *parts[1:-1], *parts[-1].split(" and ")]]
            # "... and other neuromuscular disorders" names no condition of its own.
            items = [i for i in items if i.lower().split()[0] not in self.qualifiers]
            return [f"{lead}{head}{item}" for item in items]
        if len(parts) == 2 and len(parts[1].split()) <= 2:  # "Scoliosis, idiopathic"
            return [f"{parts[1]} {parts[0]}"]
        return []

    def strip_qualifiers(self, phrase: str) -> tuple[str, int]:
        rank = 0
        changed = True
        while changed:
            changed = False
            for q in self.qualifiers:
                if phrase.lower().startswith(q + " "):
                    phrase = phrase[len(q) + 1 :]
                    rank = max(rank, int(q.startswith("other")))
                    changed = True
                elif phrase.lower().endswith(" " + q):
                    phrase = phrase[: -len(q) - 1]
                    changed = True
        return " ".join(phrase.split()), rank

    def _variants(self, phrase: str) -> list[str]:
        """The phrase and its cheap variants, the phrase first."""
        forms = [phrase]
        words = phrase.split()
        if " of " in phrase and not phrase.startswith(("of ", "the ")):
            lead, _, tail = phrase.rpartition(" of ")
            if not tail.startswith("the "):
                forms.append(f"{lead} of the {tail}")
            if tail in self.of_adjectives and " of " not in lead:
                forms.append(f"{self.of_adjectives[tail]} {lead}")
        last = words[-1] if words else ""
        singular = _singular(last)
        if singular != last:
            forms += [f"{f[: -len(last)]}{singular}" for f in forms if f.endswith(last)]
        folded = [_fold(f) for f in forms]
        forms += [f for f in folded if f not in forms]
        possessive = [f for f in forms if "'s " in f + " "]
        for f in possessive:
            forms.append(re.sub(r"'s\b", "", f))
            forms.append(f.replace("'s", _CURLY + "s"))
        return list(dict.fromkeys(forms))

    def _keep(self, phrase: Any) -> bool:
        if not isinstance(phrase, str):
            return True
        if not phrase or phrase in self.stop:
            return False
        return not any(rx.search(phrase) for rx in self.drop)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "is", "us", "'s")) and len(word) > 3:
        return word[:-1]
    return word


def _fold(text: str) -> str:
    """ASCII spelling: "calvé's" -> "calve's" (notes are often typed without accents)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _seventh(code: str) -> bool:
    return len(code.replace(".", "")) == 7


def _texts(code: str) -> list[str]:
    import simple_icd_10_cm as icd

    return [icd.get_description(code), *icd.get_inclusion_term(code)]


def _stems(code: str, rules: _Rules) -> Iterator[Stem]:
    """The region-only stems at and under ``code``.

    A node is a stem when it is a leaf (no region character at all: M41.9,
    M43.6) or when children of it differ only by the region phrase of their
    descriptions (M40.20, M46.2). Children that are not region variants (M45.A
    beside M45.0-M45.9) are walked as stems of their own.
    """
    import simple_icd_10_cm as icd

    if code in rules.skip:
        return
    children = [c for c in icd.get_children(code) if not _seventh(c)]
    if not children:
        yield Stem(code, {None: code}, _texts(code))
        return
    variants: dict[str | None, str] = {}
    others: list[str] = []
    for child in children:
        is_region, region = rules.region_of(child)
        if is_region and child not in rules.skip:
            variants[region] = child
        else:
            others.append(child)
    if variants:
        yield Stem(code, variants, _texts(code))
        for child in others:
            yield from _stems(child, rules)
        return
    below = [s for child in others for s in _stems(child, rules)]
    if len(below) == 1:  # M48.8 -> M48.8X: the parent's words are the only stem's
        below[0].texts = [*_texts(code), *below[0].texts]
    yield from below


def _owners(families: dict[str, Any]) -> list[tuple[str, str]]:
    """(family stem, concept) for every family a hand-made concept is coded to."""
    import simple_icd_10_cm as icd

    out = []
    for concept, spec in families.items():
        family = spec.get("family") if isinstance(spec, dict) else None
        for f in family.values() if isinstance(family, dict) else [family]:
            if isinstance(f, str) and icd.is_valid_item(f):
                out.append((f, concept))
    return out


def _related(a: str, b: str) -> bool:
    """The same node, or one above the other."""
    import simple_icd_10_cm as icd

    return a == b or icd.is_descendant(a, b) or icd.is_descendant(b, a)


def _check(stem: Stem) -> tuple[str | None, list[str | None]]:
    """Why codes.resolve cannot code this stem (None if it can), and regions it cannot reach.

    A stem is emitted only if ``codes.resolve(stem, region)`` gives that
    region's own code (or its descendant, for the 7th character) for every
    region it reaches at all; one wrong code drops the stem, since the coder
    would suggest it.
    """
    import simple_icd_10_cm as icd

    good = 0
    wrong: list[str] = []
    unreachable: list[str | None] = []
    for region, code in stem.variants.items():
        try:
            got = codes.resolve(stem.code, region)
        except codes.CodeNotFound:
            unreachable.append(region)
            continue
        if codes.is_billable(got) and (got == code or icd.is_descendant(got, code)):
            good += 1
        else:
            wrong.append(f"{region or 'site unspecified'}: {got} instead of {code}")
    if wrong:
        return "codes.resolve gives " + "; ".join(wrong), unreachable
    if not good:
        return "codes.resolve reaches no region of it", unreachable
    return None, unreachable


def _excluded_terms(stem: Stem, rules: _Rules) -> Iterator[tuple[str, str]]:
    """(code, phrase) of the Excludes1/Excludes2 terms of the stem and its ancestors.

    Both notes say the term is classified elsewhere. "see ..." pointers name no
    term of their own and are left out.
    """
    import simple_icd_10_cm as icd

    nodes = [stem.code, *(a for a in icd.get_ancestors(stem.code) if not icd.is_chapter(a))]
    for node in nodes:
        for note in [*icd.get_excludes1(node), *icd.get_excludes2(node)]:
            match = _EXCLUDES_NOTE.match(note.strip())
            if not match or " see " in note:
                continue
            code = match["code"].rstrip(".-")
            term = _BRACKET.sub("", match["term"])
            forms = {_PARENTHETICAL.sub("", term), _PARENTHETICAL.sub(r" \1", term)}
            for form in forms:
                phrase, _ = rules.strip_qualifiers(form)
                phrase = phrase.lower()
                pair = re.match(r"^(\w+) (\w+) and (\w+)$", phrase)
                found = [f"{pair[1]} {pair[2]}", f"{pair[1]} {pair[3]}"] if pair else [phrase]
                for f in found:
                    yield code, " ".join(f.split())


# -- spaCy helpers ----------------------------------------------------------------------


def _blank() -> Language:
    """A blank English pipeline with the spine pipeline's tokenizer (phrases tokenise alike)."""
    config = {"nlp": {"tokenizer": {"@tokenizers": "notecoder.Tokenizer.v1"}}}
    return spacy.blank("en", config=config)


def _key(nlp: Language, pattern: Any) -> tuple[str, ...]:
    if isinstance(pattern, str):
        return tuple(t.lower_ for t in nlp.make_doc(pattern))
    return ("<token pattern>", json.dumps(pattern, sort_keys=True))


def _surface(pattern: Any) -> str:
    """The text a pattern matches: the phrase, or the ORTH of a token pattern."""
    if isinstance(pattern, str):
        return pattern
    return " ".join(token.get("ORTH", "") for token in pattern)


def _show(pattern: Any) -> str:
    return pattern if isinstance(pattern, str) else json.dumps(pattern)


def _contains_any(nlp: Language, term: str, derived: Iterable[tuple[str, ...]]) -> bool:
    """True if a derived phrase occurs, as whole tokens, inside ``term``."""
    tokens = tuple(t.lower_ for t in nlp.make_doc(term))
    return any(
        tokens[i : i + len(key)] == key
        for key in derived
        for i in range(len(tokens) - len(key) + 1)
    )


def _ruler(nlp: Language, patterns: Iterable[dict[str, Any]]) -> Any:
    """A plain SpanRuler with the hand-made patterns (the entity ruler matches the same way)."""
    ruler = nlp.add_pipe(
        "span_ruler", name="hand_made", config={"phrase_matcher_attr": "LOWER", "validate": False}
    )
    ruler.add_patterns(list(patterns))
    return ruler


# -- command line -----------------------------------------------------------------------


def write(path: str | Path = PATTERNS_FILE, config_path: str | Path = CONFIG_FILE) -> Derivation:
    """Derive the patterns and write them to ``path`` (one JSON object a line)."""
    result = derive(load_config(config_path))
    lines = [json.dumps(p, ensure_ascii=False) for p in result.patterns]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result


def report(result: Derivation) -> str:
    """What was derived and what was left out, for the person regenerating the file."""
    concepts = {p["id"] for p in result.patterns}
    lines = [
        f"{len(result.patterns)} patterns, {len(concepts)} concepts "
        f"({sum(c.startswith(PREFIX) for c in concepts)} icd stems, "
        f"{sum(c.startswith(EXCLUDED_PREFIX) for c in concepts)} excluded codes)"
    ]
    for code, why in result.dropped.items():
        lines.append(f"dropped stem {code}: {why}")
    for code, regions in result.unreachable.items():
        names = ", ".join(r or "site unspecified" for r in regions)
        lines.append(f"stem {code}: codes.resolve cannot reach {names}")
    for phrase, kept, lost in result.collisions:
        lines.append(f"collision {phrase!r}: {kept} kept, {lost} dropped")
    for phrase, concept in result.shadowed:
        lines.append(f"left to the hand-made pattern {phrase!r} ({concept})")
    for phrase, inner, what in result.overlaps:
        lines.append(f"derived {phrase!r} contains hand-made {inner!r} ({what})")
    for outer, inner in result.inside_hand_made:
        lines.append(f"hand-made {outer!r} contains derived {inner!r}")
    for code, text, why in result.unused:
        lines.append(f"unused {code} {text!r}: {why}")
    return "\n".join(lines)


def main() -> None:
    """``python -m notecoder.terminology``: regenerate terminology_patterns.jsonl."""
    result = write()
    print(f"wrote {PATTERNS_FILE}", file=sys.stderr)
    print(report(result), file=sys.stderr)


if __name__ == "__main__":
    main()
