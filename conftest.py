"""Test-wide settings: no network, no stray threads, seeded."""

import os

# Nothing in the test suite may reach the internet; transformers must not even try.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
