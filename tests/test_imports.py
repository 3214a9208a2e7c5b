"""What a process pays to code a note: no package it does not use is imported."""

import subprocess
import sys

import pytest


def run(script: str) -> None:
    subprocess.run([sys.executable, "-c", script], check=True)


def test_coding_a_note_leaves_nltk_scipy_and_sklearn_unimported():
    """medspaCy imports QuickUMLS, which imports NLTK, which imports SciPy and scikit-learn."""
    run(
        "import sys, notecoder; notecoder.suggest('low back pain at L4-5'); "
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('scipy', 'sklearn') "
        "or m.startswith('nltk.')]; assert not loaded, loaded; "
        "assert type(sys.modules['nltk']).__name__ == '_Deferred'"
    )


@pytest.mark.parametrize(
    "use",
    [
        "import nltk; assert nltk.edit_distance('disc', 'disk') == 1",
        "from nltk.metrics import edit_distance; assert edit_distance('disc', 'disk') == 1",
        "import nltk.metrics; assert nltk.metrics.edit_distance('disc', 'disk') == 1",
        "import importlib; assert importlib.import_module('nltk').__version__",
    ],
)
def test_nltk_still_works_for_code_that_uses_it_after_notecoder(use):
    run(
        "import sys, notecoder; notecoder.suggest('low back pain'); "
        f"{use}; assert type(sys.modules['nltk']).__name__ == 'module'"
    )


def test_nltk_imported_before_notecoder_stays_as_it_was():
    run(
        "import nltk, sys, notecoder; notecoder.suggest('low back pain'); "
        "assert sys.modules['nltk'] is nltk and type(nltk).__name__ == 'module'"
    )
