"""The medspaCy names notecoder uses, imported without QuickUMLS's dependencies.

``import medspacy`` imports QuickUMLS (``medspacy.util`` registers its factory),
QuickUMLS imports NLTK at the top of ``quickumls.core``, and NLTK's
``__init__`` imports SciPy and scikit-learn: about 1.2 s of CPU and 160 MB
resident per process, more than the rest of this pipeline takes to start, for a component
notecoder never builds. QuickUMLS touches NLTK only inside ``QuickUMLS()``
(stop words). So before medspaCy is first imported, ``nltk`` goes into
``sys.modules`` as a :class:`_Deferred` module that imports the real package on
first attribute use: ``import nltk`` anywhere still works, and any use of it
loads NLTK in full and from then on sees only the real module.

``importlib.util.LazyLoader`` cannot do this: the import statement reads the
module's ``__spec__``, and on Python 3.11 that loads it. Every notecoder module
imports medspaCy through this one, so the deferral is in place whichever is
imported first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

#: Packages a medspaCy import would load for nothing notecoder uses.
DEFERRED = ("nltk",)


class _Deferred(types.ModuleType):
    """A package in ``sys.modules`` that imports itself on first attribute use."""

    _lock = threading.Lock()

    def __init__(self, spec: importlib.machinery.ModuleSpec) -> None:
        super().__init__(spec.name)
        self.__spec__ = spec

    def __getattr__(self, attribute: str) -> Any:
        # Only names the proxy lacks reach here (``__spec__`` and ``__name__`` do not).
        with _Deferred._lock:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            module = importlib.import_module(self.__name__)
        return getattr(module, attribute)


def defer(name: str) -> None:
    """Put ``name`` in ``sys.modules`` as a deferred import, unless it is imported or absent."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is not None:
        sys.modules[name] = _Deferred(spec)


for _name in DEFERRED:
    defer(_name)

from medspacy.common.base_rule import BaseRule  # noqa: E402
from medspacy.common.medspacy_matcher import MedspacyMatcher  # noqa: E402
from medspacy.common.util import overlaps  # noqa: E402
from medspacy.context import ConText, ConTextRule  # noqa: E402
from medspacy.context.context_graph import ConTextGraph  # noqa: E402
from medspacy.context.context_modifier import ConTextModifier  # noqa: E402
from medspacy.section_detection import Sectionizer, SectionRule  # noqa: E402
from medspacy.section_detection.section import Section  # noqa: E402
from medspacy.util import tuple_overlaps  # noqa: E402

__all__ = [
    "BaseRule",
    "ConText",
    "ConTextGraph",
    "ConTextModifier",
    "ConTextRule",
    "MedspacyMatcher",
    "Section",
    "SectionRule",
    "Sectionizer",
    "overlaps",
    "tuple_overlaps",
]
