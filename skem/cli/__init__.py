"""The ``skem`` command: ``skem demo`` and one workflow per estimator.

Each subcommand only parses arguments, reads input, fits and writes; all the
modelling lives in the estimators. User errors (a missing file, malformed
input, bad options) end with a one-line message and exit code 2, never a
traceback. Warnings are one ``warning:`` line each. Progress goes to standard
error, results to files and standard output; when standard output is closed
early (``skem quant ... | head``) the command ends quietly with exit code 0.

Start-up: this package and the subcommands' modules import only the
standard library, so that ``skem --help``, ``skem --version`` and ``skem
CMD --help`` answer at once; a command imports what it uses (NumPy, pandas,
scikit-learn, its estimator) when it runs, inside :func:`main`, where
Ctrl-C during those imports ends with one line and exit code 130.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
import zlib

from .. import __version__
from . import _demo, _motif, _nbmix, _quant
from ._common import (
    OutputFolder,
    Progress,
    UserError,
    check_not_a_file,
    first_line,
    is_read_error,
    read_error_message,
)

__all__ = ["main"]

EPILOG = """examples:
  skem demo                                   fit all three estimators on bundled data
  skem nbmix counts.csv --k-range 1-8 -o out  cluster count rows; choose K by BIC and CV
  skem nbmix counts.tsv -k 3 -o out           cluster with a fixed number of components
  skem quant --eq-classes eq_classes.txt.gz --lengths quant.sf -o out
  skem quant --alignments reads.bam --fragment-length 200 -o out
  skem motif promoters.fa -w 12 --both-strands -o out

Run 'skem COMMAND --help' for the options of a command.
"""

#: What reading or parsing the user's input can raise: each is reported as one line.
#: (UnicodeDecodeError is a ValueError; a truncated gzip stream raises EOFError,
#: a corrupt one gzip.BadGzipFile (an OSError) or zlib.error.)
USER_ERRORS = (UserError, ValueError, OSError, EOFError, ImportError, zlib.error)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``skem CMD: error: ...``.

    argparse prints the usage before its message; the usage is one
    ``--help`` away, and one line keeps the command's errors uniform.
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _build_parser():
    parser = _Parser(
        prog="skem",
        description="EM estimators for computational biology, scikit-learn style.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"skem {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for command in (_demo, _nbmix, _quant, _motif):
        command.add_parser(commands)
    for subparser in commands.choices.values():  # -q also after the command's name
        subparser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                               help="no progress messages")
    return parser


def main(argv=None):
    """Run the ``skem`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        The exit code: 0 on success (also when standard output is closed
        before all was written), 2 on a user error, 130 on Ctrl-C.
    """
    try:
        try:
            code = _run(argv)
        except SystemExit:  # --help, --version and argument errors: flush what they printed
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader (``head``) has all it wants. Point standard output at
        # devnull so that the interpreter's final flush does not fail again.
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print("skem: interrupted", file=sys.stderr)
        return 130


def _run(argv):
    parser = _build_parser()
    args = parser.parse_args(argv)
    prog = f"skem {args.command}"
    progress = Progress(args.quiet)
    folder = args.output if isinstance(getattr(args, "output", None), OutputFolder) else None
    try:
        if folder is None:
            if getattr(args, "output", None) is not None:  # skem demo -o
                check_not_a_file(args.output)
        else:  # refuse a non-empty folder without --force before any work
            folder.check(force=args.force, command=prog)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.showwarning = _one_line_warning(prog)
            try:
                args.run(args, print, progress)
            finally:  # list what was written, also when the run failed part-way
                if folder is not None:
                    folder.close()
    except BrokenPipeError:
        raise
    except USER_ERRORS as error:
        print(f"{prog}: error: {_message(error, args)}", file=sys.stderr)
        return 2
    return 0


def _one_line_warning(prog):
    """A ``warnings.showwarning`` that prints ``skem CMD: warning: <message>``, no source line."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).strip().splitlines()
        print(f"{prog}: warning: {text[0] if text else category.__name__}",
              file=file or sys.stderr)

    return show




def _input_files(args):
    """The command's arguments that name existing files (its inputs)."""
    return list(dict.fromkeys(
        value for key, value in vars(args).items()
        if key != "output" and isinstance(value, str) and os.path.isfile(value)
    ))


def _message(error, args):
    """One line for a user error; a reading error names the input file when it does not itself.

    Readers name file and line themselves; decompression, decoding and table
    parsing errors from lower layers (a truncated ``.gz``: "Compressed file
    ended before the end-of-stream marker was reached") do not.
    """
    if is_read_error(error):
        return read_error_message(error, _input_files(args))
    return first_line(error)


def _silence_stdout():
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout has no file descriptor (tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
