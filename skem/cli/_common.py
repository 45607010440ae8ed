"""What the command's subcommands share: the user-error type, progress lines, files and figures."""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["Progress", "UserError", "existing", "figure", "output_dir"]


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


def existing(path):
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    return path


def output_dir(path):
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
