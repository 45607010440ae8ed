"""What the command's subcommands share: the user-error type, option types, progress lines, files and figures.

Option types
------------
``positive_int``, ``non_negative_int``, ``positive_float``,
``non_negative_float``, ``probability`` and ``input_file`` are argparse
``type=`` callables: a bad value stops the command before any work with one
line that names the option, e.g.
``skem motif: error: argument --threshold: must be a probability in [0, 1], got '2'``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
import zlib
from pathlib import Path

import pandas as pd

__all__ = [
    "READ_ERRORS",
    "Progress",
    "UserError",
    "existing",
    "figure",
    "first_line",
    "input_file",
    "non_negative_float",
    "non_negative_int",
    "output_dir",
    "positive_float",
    "positive_int",
    "probability",
    "ratio_below_one",
    "read_error_message",
    "reading",
    "writing",
]

#: Errors of reading a file that do not say which file: decompression (a
#: truncated ``.gz`` raises EOFError), decoding and pandas' table parsing.
READ_ERRORS = (EOFError, OSError, zlib.error, UnicodeDecodeError,
               pd.errors.ParserError, pd.errors.EmptyDataError)


class UserError(Exception):
    """A problem with the user's input or options, reported as one line."""


class Progress:
    """One line per step on standard error, with the elapsed time."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message):
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ option types
# argparse prefixes the message of an ArgumentTypeError with "argument --option:".


def _option_type(name, cast, kind, accept, doc):
    """An argparse type: ``cast(text)``, finite and accepted, else "must be <kind>, got <text>"."""

    def parse(text):
        try:
            value = cast(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not math.isfinite(value) or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}")
        return value

    parse.__name__ = parse.__qualname__ = name
    parse.__doc__ = doc
    return parse


positive_int = _option_type("positive_int", int, "an integer >= 1", lambda v: v >= 1,
                            "An integer >= 1 (a count of components, restarts, motifs).")
non_negative_int = _option_type("non_negative_int", int, "an integer >= 0", lambda v: v >= 0,
                                "An integer >= 0 (a seed, a number of bootstraps or iterations).")
positive_float = _option_type("positive_float", float, "a number > 0", lambda v: v > 0,
                              "A finite number > 0 (a length, a standard deviation).")
non_negative_float = _option_type("non_negative_float", float, "a number >= 0", lambda v: v >= 0,
                                  "A finite number >= 0 (a pseudo-count, a tolerance).")
probability = _option_type("probability", float, "a probability in [0, 1]", lambda v: 0 <= v <= 1,
                           "A number in [0, 1] (a posterior threshold).")
ratio_below_one = _option_type("ratio_below_one", float, "a number in [0, 1)", lambda v: 0 <= v < 1,
                               "A number in [0, 1) (a likelihood ratio threshold).")


def input_file(text):
    """An existing file, checked when the options are parsed (before any work)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a file: {text}")
    return text


# ------------------------------------------------------------------ files


def existing(path):
    """The path of an input file that exists, else a UserError naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{'not a file' if path.exists() else 'no such file'}: {path}")
    return path


def first_line(error):
    """The first line of an exception's message (its type's name when it has none)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def read_error_message(error, paths):
    """One line for an error of reading one of ``paths``; it names the file if the error does not."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    message = first_line(error)
    paths = [str(p) for p in paths]
    if not paths or any(Path(p).name in message for p in paths):
        return message
    where = paths[0] if len(paths) == 1 else f"one of {', '.join(paths)}"
    return f"cannot read {where}: {message}"


@contextlib.contextmanager
def reading(path):
    """Turn an error of reading ``path`` into a UserError whose one line names the file.

    Examples
    --------
    >>> from skem.cli._common import reading
    >>> with reading("counts.csv.gz"):  # doctest: +SKIP
    ...     table = pd.read_csv("counts.csv.gz")
    """
    try:
        yield
    except READ_ERRORS as error:
        if isinstance(error, BrokenPipeError):
            raise
        raise UserError(read_error_message(error, [path])) from error


@contextlib.contextmanager
def writing(path):
    """Turn an error of writing ``path`` (a full disk, a read-only folder) into a UserError naming it.

    Without it, an OSError that does not carry a file name (``No space left
    on device`` when a table is flushed) would be reported against the input.
    """
    try:
        yield
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            raise
        raise UserError(f"cannot write {path}: {error.strerror or first_line(error)}") from error


def output_dir(path):
    """Create the output folder (and its parents) if needed."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {path}: {error.strerror}") from None
    return path


def figure(output, name, draw, progress):
    """Write a figure when matplotlib (and, for logos, logomaker) is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure = draw(plt)
    except ImportError:
        progress(f"skipped {name}: install the plot extra (pip install 'skem[plot]') for figures")
        return
    figure.savefig(output / name, dpi=120, bbox_inches="tight")
    plt.close(figure)
    progress(f"wrote {output / name}")
