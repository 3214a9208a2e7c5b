"""The documentation stands alone: no link or path in it leaves the repository.

A user who clones only this repository has no ../shared beside it, so README.md
and docs/ must not send them there for the coding rules or the data formats.
The MTSamples corpora may be named in plain text (they are read from
../shared/corpora when present), never linked.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: Every Markdown file a reader follows links from.
LINKED = [*DOCS, REPO / "corpora" / "gold" / "GUIDELINES.md"]
#: Inline Markdown links and images: [text](target "title").
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: A path up out of the repository; "../shared/corpora" is the one plain-text
#: mention allowed (not a link: links must resolve inside the repository).
_UP = re.compile(r"(?<![.\w])\.\./(?!shared/corpora\b)")


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_rules_and_formats_are_in_the_repository():
    assert {p.name for p in DOCS} >= {"README.md", "coding-rules.md", "formats.md"}


@pytest.mark.parametrize("doc", LINKED, ids=_name)
def test_relative_links_resolve_to_files_of_the_repository(doc: Path):
    for target in _LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:|#", target):  # a URL or an anchor of the page
            continue
        path = (doc.parent / unquote(target.split("#")[0])).resolve()
        assert path.is_relative_to(REPO), (_name(doc), target)
        assert path.exists(), (_name(doc), target)


@pytest.mark.parametrize("doc", LINKED, ids=_name)
def test_no_mention_of_the_shared_spec(doc: Path):
    assert "shared/spec" not in doc.read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_no_path_leaves_the_repository(doc: Path):
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        assert not _UP.search(line), f"{_name(doc)}:{number}"
    for target in _LINK.findall(doc.read_text(encoding="utf-8")):
        assert "../" not in target, (_name(doc), target)
