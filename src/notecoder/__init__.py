"""notecoder: dictated spine notes in, ICD-10-CM suggestions with gap flags out."""

from notecoder.api import suggest
from notecoder.pipeline import build, load

__all__ = ["build", "load", "suggest"]
__version__ = "0.1.0"
