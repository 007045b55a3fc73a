"""``python -m minillm_lib ...``: the same as the ``minillm`` command (see cli.py)."""

from .cli import main

raise SystemExit(main())
