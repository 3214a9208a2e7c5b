"""notecoder: dictated spine notes in, ICD-10-CM suggestions with gap flags out."""

from __future__ import annotations

import importlib
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notecoder.api import suggest
    from notecoder.pipeline import build, load

__all__ = ["build", "load", "suggest"]
__version__ = version("notecoder")

#: The module of each public function. They are imported on first use (PEP 562),
#: not here: they load spaCy and the pipeline's components (seconds), which
#: ``notecoder --help`` and every other light submodule must not pay for.
_PUBLIC = {"build": "notecoder.pipeline", "load": "notecoder.pipeline", "suggest": "notecoder.api"}


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        # Also how ``from notecoder import coder`` finds the submodule.
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
