"""What the command's subcommands share: the user-error type, option types, progress lines, files and figures.

This module is imported to build the parser (``skem --help``): it imports
nothing heavier than the standard library.

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
import os
import sys
import time
import warnings
import zlib
from pathlib import Path, PurePosixPath

from .. import __version__

__all__ = [
    "MANIFEST",
    "READ_ERRORS",
    "OutputFolder",
    "Progress",
    "UserError",
    "add_output_options",
    "check_not_a_file",
    "existing",
    "figure",
    "first_line",
    "input_file",
    "is_read_error",
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
#: truncated ``.gz`` raises EOFError) and decoding; :func:`is_read_error` adds
#: pandas' table parsing errors.
READ_ERRORS = (EOFError, OSError, zlib.error, UnicodeDecodeError)


def is_read_error(error):
    """Whether ``error`` is an error of reading a file that may not say which file.

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    bool
        True for :data:`READ_ERRORS` and pandas' ``ParserError`` and
        ``EmptyDataError``. pandas is not imported to answer: if it has not
        been imported, none of its errors can have been raised (and
        ``skem --help`` stays fast).
    """
    pandas = sys.modules.get("pandas")
    parse_errors = () if pandas is None else (pandas.errors.ParserError, pandas.errors.EmptyDataError)
    return isinstance(error, READ_ERRORS + parse_errors)


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
    except Exception as error:
        if isinstance(error, BrokenPipeError) or not is_read_error(error):
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


def check_not_a_file(path):
    """An output folder's path that exists and is not a folder: a UserError, before any work."""
    if Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"-o {path}: exists and is not a folder")


def output_dir(path):
    """Create the output folder (and its parents) if needed."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {path}: {error.strerror}") from None
    return path


# ------------------------------------------------------------------ the output folder

#: The file in which skem lists, one per line, the files it wrote in an output folder.
MANIFEST = "skem_files.txt"


def add_output_options(parser):
    """Add ``-o/--output`` (an :class:`OutputFolder`) and ``--force`` to a subcommand."""
    parser.add_argument("-o", "--output", required=True, type=OutputFolder,
                        help="output folder; it must not exist or be empty, unless --force")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that is not empty: first delete the files an "
                             "earlier skem run wrote there (listed in its skem_files.txt); "
                             "other files are kept")


class OutputFolder:
    """The ``-o`` folder of ``skem quant``, ``skem motif`` and ``skem nbmix``: one policy for all.

    As MEME's ``-o`` and ``-oc``: a folder that does not exist or is empty is
    used; one with anything in it is refused before any work unless
    ``--force``. With ``--force``, the files an earlier skem run listed in
    the folder's :data:`MANIFEST` are deleted when the new results are about
    to be written (after the fit, so a run that fails leaves them), so a
    folder never holds the results of two runs; files skem did not write
    are kept and named in a warning. The new run's files are listed in a
    new manifest, also when the run fails part-way.

    Parameters
    ----------
    path : str or path-like
        The folder (argparse's ``type=`` for ``-o``: no file is touched).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = OutputFolder(pathlib.Path(tempfile.mkdtemp()) / "out")
    >>> folder.check(force=False, command="skem quant")
    >>> output = folder.open()
    >>> _ = (output / "table.tsv").write_text("1")
    >>> folder.close()
    >>> (output / "skem_files.txt").read_text().splitlines()[1:]
    ['table.tsv']
    """

    def __init__(self, path):
        self.path = Path(path)
        self.force = self.command = None  # set by check()
        self.kept = None  # files skem did not write, once open

    def __repr__(self):
        return f"OutputFolder({os.fspath(self.path)!r})"

    def check(self, *, force, command):
        """Refuse, before any work, a path that is a file or a non-empty folder without ``force``.

        Parameters
        ----------
        force : bool
            ``--force``: the folder may be non-empty.
        command : str
            The command writing the folder (``"skem quant"``), for the manifest.
        """
        self.force, self.command = force, command
        check_not_a_file(self.path)
        if force or not self.path.is_dir():
            return
        entries = sorted(entry.name for entry in self.path.iterdir())
        if entries:
            what = ("holds the results of an earlier skem run" if MANIFEST in entries
                    else f"is not empty ({_some(entries)})")
            raise UserError(f"-o {self.path}: the folder {what}; give --force to replace "
                            f"skem's results there, or another folder")

    def open(self):
        """Delete the earlier run's files, create the folder, and return its path.

        Returns
        -------
        pathlib.Path
        """
        if self.force is None:
            raise RuntimeError("OutputFolder.check() must come before open()")
        try:
            if self.path.is_dir():
                self._clear()
            self.path.mkdir(parents=True, exist_ok=True)
            self.kept = self._files()
        except OSError as error:
            raise UserError(f"-o {self.path}: {error.strerror or error}") from None
        if self.kept:
            warnings.warn(f"-o {self.path}: kept {_some(sorted(self.kept))}, not written by skem",
                          UserWarning, stacklevel=2)
        self._write_manifest(set())
        return self.path

    def close(self):
        """List in the manifest the files written since :meth:`open` (nothing if not opened)."""
        if self.kept is not None:
            self._write_manifest(self._files() - self.kept - {MANIFEST})

    def _files(self):
        """Every file below the folder, as relative POSIX paths."""
        return {
            PurePosixPath(Path(root, name).relative_to(self.path)).as_posix()
            for root, _, names in os.walk(self.path) for name in names
        }

    def _clear(self):
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            return
        listed = []
        with open(manifest, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                entry = line.rstrip("\n")
                if not entry or entry.startswith("#"):
                    continue
                relative = PurePosixPath(entry)
                if relative.is_absolute() or ".." in relative.parts:
                    raise UserError(f"{manifest}, line {number}: {entry!r} is not a path inside "
                                    f"the folder; delete the folder's files by hand")
                listed.append(self.path / relative)
        for path in listed:
            if path.is_file() or path.is_symlink():
                path.unlink()
        # folders that held only skem's files (aux_info/bootstrap), deepest first
        folders = {parent for path in listed for parent in path.parents if self.path in parent.parents}
        for folder in sorted(folders, key=lambda folder: -len(folder.parts)):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        manifest.unlink()

    def _write_manifest(self, files):
        text = (f"# The files {self.command} wrote in this folder (skem {__version__}); "
                f"'--force' deletes them before writing here again.\n"
                + "".join(f"{name}\n" for name in sorted(files)))
        temporary = self.path / f".{MANIFEST}.tmp"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.path / MANIFEST)  # never half a manifest


def _some(names, shown=3):
    """``"a, b, c and 4 more"``: a few of ``names`` for a one-line message."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


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
