"""Helpers shared by the sub-commands: JSON output, argument types."""

from __future__ import annotations

import argparse
import json
import sys


def _number(text: str, kind, ok, expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def lanes_option(text: str):
    """argparse type of ``--lanes``: a positive integer, or ``auto`` (a layer graph: the
    lanes of each engine folded to the target's block RAM, rtl/graph_fold.py)."""
    return "auto" if text == "auto" else positive_int(text)


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    return _number(text, float, lambda v: v > 0.0, "a number > 0")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def probability(text: str) -> float:
    """argparse type: a probability in [0, 1)."""
    return _number(text, float, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)")


def clock_mhz(text: str) -> float:
    """argparse type: a clock frequency in (0, 1000] MHz."""
    return _number(text, float, lambda v: 0.0 < v <= 1000.0, "a clock in (0, 1000] MHz")


def emit_json(obj: dict) -> None:
    """Print ``obj`` as one JSON line on standard output (the last line a command prints)."""
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")
    sys.stdout.flush()
