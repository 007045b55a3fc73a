"""The argument checks the library repeats, written once (no torch, imported by every floor).

Each returns True or False; the caller raises its own ValueError, whose message names the
argument, the rule and the bad value. ``bool`` is a subclass of ``int`` in Python, so
``True`` would pass a plain ``isinstance(x, int)``: these checks refuse it.
"""

from __future__ import annotations

import math


def is_int(value: object, low: int | None = None, high: int | None = None) -> bool:
    """True if ``value`` is an int (not a bool) with low <= value <= high (None = no bound).

    >>> is_int(3, 1), is_int(0, 1), is_int(True, 1), is_int(2.0, 1)
    (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def is_number(value: object) -> bool:
    """True if ``value`` is a finite int or float (not a bool, NaN or infinity).

    >>> is_number(0.5), is_number(float("nan")), is_number(False)
    (True, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)
