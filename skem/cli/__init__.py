"""The ``skem`` command: ``skem demo`` and one workflow per estimator.

Each subcommand only parses arguments, reads input, fits and writes; all the
modelling lives in the estimators. User errors (a missing file, malformed
input, bad options) end with a one-line message and exit code 2, never a
traceback. Progress goes to standard error, results to files and standard
output.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from . import _demo, _motif, _nbmix, _quant
from ._common import Progress, UserError

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


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="skem",
        description="EM estimators for computational biology, scikit-learn style.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for command in (_demo, _nbmix, _quant, _motif):
        command.add_parser(commands)
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
        The exit code: 0 on success, 2 on a user error.
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    progress = Progress(args.quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            args.run(args, print, progress)
    except (UserError, ValueError, FileNotFoundError, ImportError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"skem {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
