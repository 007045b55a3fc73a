"""Test-wide settings: no network, no stray threads, seeded; and the reproducibility check's
pytest plugin (scripts/nbval_book.py: `pytest --nbval` compares with the book build)."""

import os
import sys
from pathlib import Path

# Nothing in the test suite may reach the internet; transformers must not even try.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))
pytest_plugins = ["nbval_book"]
